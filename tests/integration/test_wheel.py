"""The CLI from the built wheel, installed in a clean virtualenv, run from
outside the checkout: the wheel must carry everything the commands need.

How it stays fast (about 10 s) and honest:

1. The sources (pyproject.toml, README.md, src/crosswind/ without caches) are
   copied to a temporary directory, so the build's ``build/`` and
   ``*.egg-info`` never land in the checkout.
2. ``pip wheel --no-deps --no-build-isolation --no-index`` builds it with the
   setuptools already in the project's venv (pinned in requirements.lock):
   offline, about a second.
3. Every file under src/crosswind/ must be in the wheel: a schema, a static
   asset or any other data file without its ``[tool.setuptools.package-data]``
   line fails here, before anything runs.
4. ``python -m venv --without-pip`` makes an empty venv, and the project venv's
   pip installs the wheel into it (``pip --python NEW install --no-deps``).
5. The dependencies (a hundred packages: minutes and the network to install)
   come from the project venv instead: one ``.pth`` file in the new venv names
   the project venv's site-packages. A directory line in a ``.pth`` file only
   appends that directory to ``sys.path``; the ``.pth`` files inside it are
   not processed, so the project's editable install (its
   ``__editable__.crosswind-*.pth`` puts src/ on the path) is not reached and
   crosswind can only be imported from the wheel. The test checks that it is.
6. The commands run from a temporary directory outside the checkout, with
   PYTHONPATH and the like removed: ``--version``, ``--help``, a command that
   reads a config, commands that open the state store and both stores' SDKs,
   an error path and ``python -m crosswind``.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from crosswind.rig.emulators import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "crosswind"
_CACHES = ("__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")


def source_files() -> list[str]:
    """Every file of the package in the checkout, as its path inside a wheel."""
    return sorted(
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and not any(c in p.parts for c in _CACHES) and p.suffix != ".pyc"
    )


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@dataclass
class Installed:
    wheel: Path
    python: Path
    crosswind: Path
    site_packages: Path
    env: dict[str, str]
    outside: Path  # a working directory far from the checkout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    have = metadata.version("setuptools")
    assert tuple(int(x) for x in have.split(".")[:2]) >= (70, 1), (
        f"setuptools {have} in this venv cannot build a wheel offline: `make setup` "
        "installs the version requirements.lock pins")
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    (tree / "src").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(PACKAGE, tree / "src" / "crosswind",
                    ignore=shutil.ignore_patterns(*_CACHES, "*.pyc"))
    dist = tmp / "dist"
    p = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--quiet", "-w", dist, tree, cwd=tmp)
    assert p.returncode == 0, p.stdout + p.stderr
    [wheel] = dist.glob("crosswind-*.whl")

    venv = tmp / "venv"
    p = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    assert p.returncode == 0, p.stderr
    python = venv / "bin" / "python"
    p = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
            "--no-index", "--quiet", wheel, cwd=tmp)
    assert p.returncode == 0, p.stdout + p.stderr
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                       cwd=tmp).stdout.strip())
    # The project venv's site-packages, for the dependencies only (see the docstring).
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            *site.getsitepackages()}
    (purelib / "zz_project_dependencies.pth").write_text(
        "".join(f"{d}\n" for d in sorted(ours)), encoding="utf-8")

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "CROSSWIND_", "VIRTUAL_ENV", "_CROSSWIND"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    outside = tmp / "elsewhere"
    outside.mkdir()
    yield Installed(wheel, python, venv / "bin" / "crosswind", purelib, env, outside)


def test_the_wheel_holds_every_file_of_the_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as z:
        in_wheel = {n for n in z.namelist() if n.startswith("crosswind/")}
    missing = [f for f in source_files() if f not in in_wheel]
    assert missing == [], f"not in the wheel (add them to [tool.setuptools.package-data]): " \
                          f"{missing}"
    assert "crosswind/py.typed" in in_wheel  # the one data file there is today


def test_crosswind_is_imported_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    p = run(installed.python, "-c",
            "import crosswind.cli, json, sys; print(json.dumps([crosswind.__file__, sys.path]))",
            cwd=installed.outside, env=installed.env)
    assert p.returncode == 0, p.stderr
    where, path = json.loads(p.stdout)
    assert Path(where).is_relative_to(installed.site_packages), where
    assert not Path(where).is_relative_to(REPO), where
    assert str(REPO / "src") not in path  # the editable install's .pth was not processed


def test_version_help_and_python_m(installed: Installed) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    p = run(installed.crosswind, "--version", cwd=installed.outside, env=installed.env)
    assert p.returncode == 0 and p.stdout == f"crosswind {version}\n", p.stderr
    p = run(installed.python, "-m", "crosswind", "-V", cwd=installed.outside, env=installed.env)
    assert p.returncode == 0 and p.stdout == f"crosswind {version}\n", p.stderr
    p = run(installed.crosswind, "--help", cwd=installed.outside, env=installed.env)
    assert p.returncode == 0, p.stderr
    for word in ("sync", "validate", "keys", "dlq", "--quiet", "--install-completion"):
        assert word in p.stdout


def test_commands_that_need_a_config_the_state_and_the_sdks(installed: Installed) -> None:
    cfg = installed.outside / "cw.toml"
    dead = f"http://127.0.0.1:{free_port()}"
    cfg.write_text(textwrap.dedent(f"""
        [azure]
        connection_string = "env:CW_TEST_NEVER_RESOLVED"
        container = "c"
        [aws]
        bucket = "b"
        endpoint_url = "{dead}"
        access_key_id = "test"
        secret_access_key = "test"
        emulator = true
        [keys]
        pattern = "{{a}}/{{n:int}}.json"
        partition_key = "{{a}}"
        row_key = "{{n}}"
        """))
    here = {"cwd": installed.outside, "env": installed.env}
    p = run(installed.crosswind, "keys", "parse", "-c", cfg, "x/7.json", "--json", **here)
    assert p.returncode == 0, p.stderr
    parsed = json.loads(p.stdout)
    assert parsed["results"][0]["row_key"] == "7" and parsed["crosswind_version"]
    p = run(installed.crosswind, "validate", "history", "-c", cfg, "--json", **here)
    assert p.returncode == 0 and json.loads(p.stdout)["validations"] == [], p.stderr
    assert (installed.outside / ".crosswind" / "state.db").exists()
    # The S3 store opens (the CLI has loaded every store's SDK already); nothing listens
    # there: exit 3. (S3 rather than Azure: the Azure SDK retries a refused connection
    # for some 15 s.)
    p = run(installed.crosswind, "inventory", "-c", cfg, "--side", "aws", **here)
    assert p.returncode == 3, p.stdout + p.stderr
    assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr
    # An error path: one line, exit 2.
    p = run(installed.crosswind, "sync", "objects", "-c", installed.outside / "nope.toml",
            "-d", "azure-to-aws", **here)
    assert p.returncode == 2 and p.stderr.startswith("error: cannot read config"), p.stderr
