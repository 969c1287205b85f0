"""The terminal summary of a validation report (rich renderables)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from crosswind.validate.html import KIND_TITLES

MAX_EXAMPLES_SHOWN = 5


def _mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[bold red]MISSED[/]"


def repair_line(rep: dict[str, Any]) -> str:
    parts = [f"repair of run {rep['validation_run_id']}:"]
    if "objects" in rep:
        o = rep["objects"]
        parts.append(f"objects {o['copied']} copied, {o['failed']} failed "
                     f"(sync run {o['sync_run_id']});")
    if "metadata" in rep:
        m = rep["metadata"]
        parts.append(f"rows not repaired: {m['skipped']};" if "skipped" in m else
                     f"rows {m['written']} written, {m['failed']} failed "
                     f"(metadata run {m['sync_run_id']});")
    left = rep.get("not_repairable") or {}
    parts.append("not repairable: " + (", ".join(f"{k} {v}" for k, v in left.items())
                                       or "none"))
    return " ".join(parts)


def summary(r: dict[str, Any], report_path: str | None = None) -> RenderableType:
    verdict = r["verdict"]
    colour = {"pass": "green", "fail": "red"}.get(verdict, "yellow")
    parts: list[RenderableType] = []
    t = Table(title=f"validate {r['direction']} — run {r['run_id']} — "
                    f"[bold {colour}]{verdict.upper()}[/]")
    for col in ("check", "items", "failed", "completeness", "pass rate"):
        t.add_column(col, justify="left" if col == "check" else "right")
    for name, c in r["checks"].items():
        t.add_row(name, f"{c['items']:,}", f"{c['failed']:,}",
                  f"{c['completeness_pct']:.4f} % {_mark(c['meets_completeness'])}",
                  f"{c['pass_rate_pct']:.4f} % {_mark(c['meets_pass_rate'])}")
    tot = r["totals"]
    tg = r["targets"]
    t.add_row("[bold]all[/]", f"{tot['items']:,}", f"{tot['failed']:,}",
              f"{tot['completeness_pct']:.4f} %", f"{tot['pass_rate_pct']:.4f} %")
    t.caption = (f"targets: completeness ≥ {tg['completeness_pct']} %, "
                 f"pass rate ≥ {tg['pass_rate_pct']} %")
    parts.append(t)
    if r["discrepancy_counts"]:
        d = Table(title="discrepancies")
        d.add_column("check")
        d.add_column("class")
        d.add_column("count", justify="right")
        d.add_column("examples")
        for name, c in r["checks"].items():
            for kind, x in c["discrepancies"].items():
                ex = [e["key"] for e in x["examples"][:MAX_EXAMPLES_SHOWN]]
                d.add_row(name, KIND_TITLES.get(kind, kind), f"{x['count']:,}",
                          Text(", ".join(ex) + (" …" if x["count"] > len(ex) else "")))
        parts.append(d)
    for name, c in r["checks"].items():
        cov = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in c["coverage"].items())
        if cov:
            parts.append(Text(f"{name}: {cov}", style="dim"))
    rep = r.get("repair")
    if rep:
        parts.append(Text(repair_line(rep)))
    parts.append(Text(f"{r['duration_s']:.1f} s, {r['throughput']['items_per_s']:,} items/s"
                      + (f"; report: {report_path}" if report_path else ""), style="dim"))
    if r.get("error"):
        parts.append(Text(f"error: {r['error']}", style="bold red"))
    return Group(*parts)
