"""`crosswind metrics`, `crosswind monitoring export` and `crosswind dashboard`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from crosswind.cli.app import ConfigOpt, JsonOpt, app, err, guarded, load, print_json, run
from crosswind.config import Config

monitoring_app = typer.Typer(help="Alert rules and dashboards for Prometheus/Grafana, "
                             "CloudWatch and Azure Monitor, from the metric catalogue.",
                             no_args_is_help=True)
app.add_typer(monitoring_app, name="monitoring")

OptionalConfig = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="CROSSWIND_CONFIG",
                              help="TOML config file (thresholds, namespace, dimensions); "
                              "the catalogue's defaults without one.")]


def _text(cfg: Config) -> bytes:
    from crosswind.live.monitoring import read_monitoring
    from crosswind.observability.prometheus import exposition

    return exposition(lambda: read_monitoring(cfg))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@app.command("metrics")
@guarded
def metrics_cmd(
    config: ConfigOpt,
    once: Annotated[bool, typer.Option("--once", help="Print (or write) the metrics once and "
                                       "exit.")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the text format to this file (write-then-rename: for "
        "node_exporter's textfile collector) instead of stdout.")] = None,
    interval: Annotated[float, typer.Option("--interval", min=1.0, help="Without --once: "
                                            "rewrite --out this often (seconds).")] = 15.0,
) -> None:
    """The Prometheus metrics of this state directory (service figures as last
    published, one-shot runs, validation history, cutover reports)."""
    cfg = load(config)
    if once:
        data = _text(cfg)
        if out is None:
            sys.stdout.write(data.decode())
        else:
            _write(out, data)
        return
    if out is None:
        raise typer.BadParameter("give --once, or --out FILE to keep a file up to date",
                                 param_hint="--once")
    err.print(f"writing {out} every {interval:g}s (Ctrl-C to stop)")
    try:
        while True:
            _write(out, _text(cfg))
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@monitoring_app.command("export")
@guarded
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the files to.")],
    config: OptionalConfig = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Also put the CloudWatch dashboard and alarms (the [aws] account "
        "and endpoint).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the alert rules (Prometheus with promtool tests, CloudWatch alarms, Azure
    alert rules as ARM) and dashboards (Grafana, CloudWatch, Azure workbook)."""
    from crosswind.observability.export import apply_cloudwatch, write_artefacts

    cfg = load(config) if config is not None else None
    written = write_artefacts(out, cfg)
    report: dict[str, object] = {"out": str(out), "files": [str(p) for p in written]}
    if apply:
        if cfg is None:
            raise typer.BadParameter("--apply needs --config (the AWS account to put to)",
                                     param_hint="--apply")
        report["cloudwatch"] = apply_cloudwatch(cfg)
    if as_json:
        print_json(report)
        return
    for p in written:
        err.print(f"wrote {p}")
    if apply:
        cw = report["cloudwatch"]
        assert isinstance(cw, dict)
        err.print(f"CloudWatch: dashboard {', '.join(cw['dashboards'])}, "
                  f"{len(cw['alarms'])} alarms put")


@app.command("dashboard")
@guarded
def dashboard_cmd(
    config: ConfigOpt,
    bind: Annotated[str | None, typer.Option(
        "--bind", help="HOST:PORT (default [monitoring] dashboard, 127.0.0.1:9465; port 0 "
        "for any free one).")] = None,
) -> None:
    """Serve the web dashboard from the state store alone (the service need not run;
    with it running, `crosswind replicate` serves the same page itself)."""
    from crosswind.web.server import serve

    cfg = load(config)
    where = bind or cfg.monitoring.dashboard

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(url: str) -> None:
            sys.stdout.write(f"{url}/\n")
            sys.stdout.flush()
            err.print(f"dashboard on {url}/ (Ctrl-C to stop)")

        try:
            await serve(cfg, where, stop, ready)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)

    run(go())
