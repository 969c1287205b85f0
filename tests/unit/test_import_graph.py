"""The shape of the code (DESIGN.md, "Shape of the code"): imports point down.

The graph is read with ``ast`` from the files under ``src/`` (nothing is
imported, so this takes milliseconds). Every import counts: module level,
inside functions (lazy imports) and under ``if TYPE_CHECKING:``, because a
lazy or type-only import that closes a circle still ties the two modules
together. The parent package a submodule import runs first is not counted as
an edge (``crosswind.cli.__init__`` importing its own commands is not a
circle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

Graph = dict[str, set[str]]


def module_names(src: Path) -> dict[str, Path]:
    """Dotted name → file, for every module under ``src``."""
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def import_graph(src: Path) -> Graph:
    """Module → the modules of the same tree it imports (any import statement)."""
    modules = module_names(src)
    graph: Graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(name, is_package, node.level, node.module)
                for alias in node.names:
                    # `from crosswind.sync import engine` imports the module
                    # crosswind.sync.engine; `from crosswind.sync.engine import SyncRun`
                    # a name of crosswind.sync.engine.
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in modules else target)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan),
    each as a sorted list; empty when the graph has no circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def importers_of(graph: Graph, package: str, allowed: tuple[str, ...]) -> list[str]:
    """``importer -> imported`` for every import of ``package`` from outside ``allowed``."""
    return sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if not any(_within(m, a) for a in allowed)
        for d in deps
        if _within(d, package)
    )


# -- the checks on crosswind -------------------------------------------------------------

GRAPH = import_graph(SRC)


def test_the_graph_is_read() -> None:
    # Guards the checks below against passing on an empty or misread graph.
    assert len(GRAPH) > 50
    assert "crosswind.sync.report" in GRAPH["crosswind.sync.engine"]
    assert "crosswind.keys" in GRAPH["crosswind.config"]
    assert "crosswind.rig.emulators" in GRAPH


def test_no_import_cycles() -> None:
    assert find_cycles(GRAPH) == []


def test_only_the_rig_and_the_cli_import_the_rig() -> None:
    # The rig (emulators, demo data, rclone) is for tests, the demo and benchmarks.
    assert importers_of(GRAPH, "crosswind.rig", ("crosswind.rig", "crosswind.cli")) == []


def test_no_core_module_imports_the_cli() -> None:
    assert importers_of(GRAPH, "crosswind.cli", ("crosswind.cli", "crosswind.__main__")) == []


# Each package, and what sits above it in DESIGN.md's chain
# cli/web → cutover → live → validate/sync/metasync → stores: never imported from below.
ABOVE = {
    "crosswind.stores": ("crosswind.sync", "crosswind.metasync", "crosswind.validate",
                         "crosswind.live", "crosswind.cutover", "crosswind.web",
                         "crosswind.cli", "crosswind.serverless", "crosswind.capacity"),
    "crosswind.sync": ("crosswind.live", "crosswind.cutover", "crosswind.web", "crosswind.cli",
                       "crosswind.serverless", "crosswind.capacity"),
    "crosswind.metasync": ("crosswind.live", "crosswind.cutover", "crosswind.web",
                           "crosswind.cli", "crosswind.serverless"),
    "crosswind.validate": ("crosswind.live", "crosswind.cutover", "crosswind.web",
                           "crosswind.cli", "crosswind.serverless"),
    "crosswind.live": ("crosswind.cutover", "crosswind.web", "crosswind.cli",
                       "crosswind.serverless"),
    # the engines call governance (the schema gate, lineage at their edges): never back
    "crosswind.governance": ("crosswind.sync", "crosswind.metasync", "crosswind.validate",
                             "crosswind.live", "crosswind.cutover", "crosswind.web",
                             "crosswind.cli", "crosswind.serverless"),
}


def test_engines_do_not_import_the_layers_above_them() -> None:
    upward = [
        f"{m} -> {d}"
        for package, above in ABOVE.items()
        for m, deps in GRAPH.items()
        if _within(m, package)
        for d in deps
        if any(_within(d, a) for a in above)
    ]
    assert upward == []


def test_serverless_sits_at_the_edge() -> None:
    # Nothing but the CLI's `crosswind package` imports it ...
    assert importers_of(GRAPH, "crosswind.serverless",
                        ("crosswind.serverless", "crosswind.cli")) == []
    # ... and of the service it takes only the event parsers and their types.
    live = sorted(f"{m} -> {d}" for m, deps in GRAPH.items()
                  if _within(m, "crosswind.serverless") for d in deps
                  if _within(d, "crosswind.live")
                  and d not in ("crosswind.live.events", "crosswind.live.changes"))
    assert live == []
    assert "crosswind.metasync.forward" in GRAPH["crosswind.serverless.aws_lambda"]
    assert "crosswind.metasync.reverse" in GRAPH["crosswind.serverless.azure_function"]


def test_only_the_cli_imports_the_capacity_plan() -> None:
    assert importers_of(GRAPH, "crosswind.capacity",
                        ("crosswind.capacity", "crosswind.cli")) == []
    # its model is pure: no stores, no probe
    assert not [d for d in GRAPH["crosswind.capacity.model"] if d != "crosswind"]


# -- the checker itself finds what it must -------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_lazy_type_only_and_relative_cycles(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg.b import g\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        "pkg/sub/__init__.py": "from . import c\n",
        "pkg/sub/c.py": "from ..sub import d\n",
        "pkg/sub/d.py": "import pkg.sub.c\n",
        "pkg/e.py": "import pkg.a\n",
    })
    graph = import_graph(src)
    assert find_cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.sub.c", "pkg.sub.d"]]
    # A package importing its own submodule is no circle.
    assert graph["pkg.sub"] == {"pkg.sub.c"}


def test_checker_finds_forbidden_importers(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "cw/__init__.py": "",
        "cw/rig/__init__.py": "",
        "cw/rig/emu.py": "",
        "cw/core.py": "def f():\n    from cw.rig.emu import x\n",
        "cw/cli/__init__.py": "from cw.rig import emu\n",
    })
    graph = import_graph(src)
    assert importers_of(graph, "cw.rig", ("cw.rig", "cw.cli")) == ["cw.core -> cw.rig.emu"]
    assert find_cycles(graph) == []
