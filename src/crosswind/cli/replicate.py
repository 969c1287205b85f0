"""`crosswind replicate` (the service) and `crosswind status`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crosswind.cli.app import ConfigOpt, JsonOpt, app, err, guarded, load, print_json, run
from crosswind.model import Direction

# The status is this command's output: stdout (colour follows NO_COLOR like every console).
out = Console(highlight=False, soft_wrap=True)


def _lag(d: dict[str, Any]) -> str:
    return f"{d['p50']:.1f} / {d['p95']:.1f} / {d['p99']:.1f} / {d['max']:.1f}"


def render_status(doc: dict[str, Any]) -> None:
    svc = doc["service"]
    state = "[green]running[/]" if svc["running"] else "[yellow]not running[/]"
    out.print(f"phase [bold]{doc['phase']}[/] · replicating [bold]{doc['direction']}[/] · "
              f"service {state}" + (f" (pid {svc['pid']}, since {svc['since']})"
                                    if svc["running"] else ""), markup=True)
    if not svc["running"] and svc["figures"] == "last known":
        out.print(f"figures below are the last ones it published ({svc['heartbeat_at']})")
    t = Table(show_header=True)
    for col in ("stream", "kind", "backlog", "applied", "failed", "held",
                "lag s p50/p95/p99/max", "last event"):
        t.add_column(col, justify="right" if col not in ("stream", "kind") else "left")
    for st in doc["streams"]:
        t.add_row(escape(st["name"]), st["kind"], str(st["backlog"] if st["backlog"] is not None
                                                      else "–"),
                  f"{st['applied']:,}", f"{st['failed']:,}", f"{st['held']:,}",
                  _lag(st["lag_s"]), st["last_event_at"] or "–")
    if doc["streams"]:
        out.print(t)
    slo = doc["slo"]
    breached = "[red]BREACHED[/]" if slo["breached"] else "[green]met[/]"
    if slo.get("target_s") is not None:
        out.print(f"lag p99 {doc['lag_p99_s']:.1f}s, SLO {slo['target_s']:g}s: {breached}",
                  markup=True)
    if doc["breakers"]:
        out.print("breakers: " + ", ".join(f"{ep} {st}" for ep, st in doc["breakers"].items()))
    rec = doc["last_reconcile"]
    if rec:
        out.print(f"last reconcile {rec['at']}: drift {rec['drift']} ({rec['found']} found)")
    out.print(f"dead-letter queue: {doc['dlq_open']} open")
    firing = (doc.get("alerts") or {}).get("firing") or []
    for a in firing:
        labels = ", ".join(f"{k}={v}" for k, v in (a.get("labels") or {}).items())
        out.print(f"[red]alert[/] {escape(a['alert'])}{f' ({escape(labels)})' if labels else ''}"
                  f": {escape(a['summary'])}", markup=True)
    for e in doc.get("errors", [])[-3:]:
        out.print(f"[red]error[/] {escape(e)}", markup=True)


@app.command("replicate")
@guarded
def replicate_cmd(
    config: ConfigOpt,
    direction: Annotated[
        Direction | None,
        typer.Option("--direction", "-d",
                     help="Only to assert it: it must agree with the migration phase."),
    ] = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option("--exit-when-idle", min=0.0, metavar="SECONDS",
                     help="Stop after this long with nothing to do (scripts, tests)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the replication service until SIGTERM/Ctrl-C: keep the replica in step."""
    from crosswind.cutover.runner import SwitchRunner
    from crosswind.live.service import Replicator
    from crosswind.web.server import install

    cfg = load(config)
    service = Replicator(cfg, direction=direction, exit_when_idle=exit_when_idle,
                         switches=SwitchRunner(),
                         dashboard=lambda web_app, doc: install(web_app, doc, cfg))

    async def go() -> Any:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            err.print("stopping: finishing what is in flight (Ctrl-C again to abandon it)")
            service.stop("signal")
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        try:
            return await service.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)

    outcome = run(go())
    if as_json:
        print_json(outcome.final_status)
    else:
        err.print(f"replicate stopped ({outcome.reason})")
    raise typer.Exit(outcome.exit_code)


@app.command("status")
@guarded
def status_cmd(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """What the replication service is doing (works whether or not it runs)."""
    from crosswind.live.report import read_status

    doc = read_status(load(config))
    if as_json:
        print_json(doc)
    else:
        render_status(doc)
