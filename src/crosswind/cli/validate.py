"""`crosswind validate` (the checks, reports, repair) and `crosswind validate history`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from crosswind.cli.app import (
    JsonOpt,
    app,
    err,
    guarded,
    load,
    print_json,
    quiet_run_error,
    run,
    spinner,
    ticking,
    write_report,
)
from crosswind.errors import ConfigError
from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.validate.findings import JOINS, Check
from crosswind.validate.history import FindingLog
from crosswind.validate.html import render_html

if TYPE_CHECKING:
    from crosswind.validate.run import Live

# validate.run brings the stores and the cloud SDKs: imported when a validation runs.
from crosswind.validate.tally import Targets
from crosswind.validate.terminal import summary

validate_app = typer.Typer(
    help="Prove both sides hold the same data: objects, metadata rows and the join.",
    invoke_without_command=True,
)
app.add_typer(validate_app, name="validate")

OptionalConfig = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file.", envvar="CROSSWIND_CONFIG"),
]
EXIT_TARGET_MISSED = 1


def live_progress(live: Live, enabled: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """A one-line spinner on stderr fed from the run's tallies (read only)."""
    progress = spinner(transient=True)
    task = progress.add_task("starting")

    def refresh() -> None:
        parts = []
        for check, t in list(live.tallies.items()):
            listed = "/".join(f"{n:,}" for n in t.listed.values())
            parts.append(f"{check.value}: {t.items:,} items, {t.failed:,} with discrepancies"
                         + (f" (listed {listed})" if listed else ""))
        progress.update(task, description=f"[bold]{live.phase}[/] " + "; ".join(parts))

    return ticking(progress, refresh, enabled)


def write_html(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    tmp.replace(path)
    return path


@validate_app.callback()
@guarded
def validate_cmd(
    ctx: typer.Context,
    config: OptionalConfig = None,
    direction: Annotated[
        Direction,
        typer.Option("--direction", "-d",
                     help="azure-to-aws before cutover (Azure is the source), aws-to-azure after."),
    ] = Direction.AZURE_TO_AWS,
    objects: Annotated[bool, typer.Option("--objects", help="Check objects.")] = False,
    metadata: Annotated[bool, typer.Option("--metadata", help="Check metadata rows.")] = False,
    join: Annotated[
        bool, typer.Option("--join", help="Check objects against rows, on each side.")
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=0,
                     help="Objects to look at closely (HEAD; bytes with --deep). "
                          "Default: \\[validation].sample_size."),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Look closely at every object.")] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Read and hash the bytes of the objects looked at.")
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sample.")] = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Re-copy what is missing or different (configured "
                                      "direction only), then validate again."),
    ] = False,
    completeness: Annotated[
        float | None, typer.Option("--completeness-target", min=0, max=100,
                                   help="Percent; default \\[validation].completeness_target.")
    ] = None,
    pass_rate: Annotated[
        float | None, typer.Option("--pass-rate-target", min=0, max=100,
                                   help="Percent; default \\[validation].pass_rate_target.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report here.")
    ] = None,
    as_json: JsonOpt = False,
    workers: Annotated[str | None, typer.Option(
        "--workers", help="With --full: the closer looks on Dask, local:N or "
        "tcp://SCHEDULER:8786 (see sync objects --workers).")] = None,
) -> None:
    """Validate: presence, size, hash and metadata of objects; rows field by field;
    every object has its row and every row its object. Without --objects/--metadata/--join,
    every check the config allows. Exit 1 when a target is missed."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise ConfigError("--config is required (or set CROSSWIND_CONFIG)")
    if sample is not None and full:
        raise ConfigError("--sample and --full exclude each other")
    if workers is not None and not full:
        raise ConfigError("--workers needs --full (a sample's closer looks run here)")
    from crosswind.validate.run import (
        Live,
        ValidateOptions,
        available_checks,
        require_checks,
        validate,
    )

    cfg = load(config)
    chosen: set[Check] = set()
    if objects:
        chosen.add(Check.OBJECTS)
    if metadata:
        chosen.add(Check.METADATA)
    if join:
        chosen.update(JOINS)
    checks = frozenset(chosen) if chosen else available_checks(cfg)
    require_checks(cfg, checks)
    v = cfg.validation
    targets = Targets(v.completeness_target if completeness is None else completeness,
                      v.pass_rate_target if pass_rate is None else pass_rate)
    checker = None
    if workers is not None:
        import functools

        from crosswind.scaleout.spec import parse_workers
        from crosswind.scaleout.validation import check_objects_distributed

        checker = functools.partial(check_objects_distributed, cfg, direction,
                                    parse_workers(workers))
    opts = ValidateOptions(direction=direction, checks=checks, sample=sample, full=full,
                           deep=deep, seed=seed, repair=repair, targets=targets,
                           objects_checker=checker)
    live = Live()

    async def go() -> dict[str, Any]:
        async with live_progress(live, enabled=not as_json):
            return await validate(cfg, opts, live)

    report = run(go())
    path = report_file or cfg.state_dir / "reports" / f"validate-{report['run_id']}.json"
    write_report(report, path)
    if html is not None:
        write_html(report, html)
    if as_json:
        print_json(report)
    else:
        err.print(summary(report, str(path)))
        if html is not None:
            err.print(f"html report: {html}")
        quiet_run_error(report)
    raise typer.Exit(0 if report["verdict"] == "pass" else EXIT_TARGET_MISSED)


@validate_app.command("history")
@guarded
def history_cmd(
    config: OptionalConfig = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    run_id: Annotated[
        int | None, typer.Option("--run", help="Show this run's full report instead.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="With --run: write its HTML report here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List past validation runs with their figures, newest first."""
    if config is None:
        raise ConfigError("--config is required (or set CROSSWIND_CONFIG)")
    cfg = load(config)
    state = StateStore(cfg.state_dir)
    try:
        log = FindingLog(state)
        if run_id is not None:
            report = state.run_report(run_id)
            if report is None or report.get("kind") != "validate":
                raise ConfigError(f"--run {run_id}: no validation run with that id")
            if html is not None:
                write_html(report, html)
            if as_json:
                print_json(report, stamp=False)
            else:
                err.print(summary(report))
            return
        rows = log.history(limit)
    finally:
        state.close()
    if as_json:
        print_json({"validations": rows})
        return
    t = Table(title="validation runs")
    for col in ("id", "started_at", "direction", "checks", "verdict", "items",
                "discrepancies", "completeness", "pass rate", "repaired"):
        t.add_column(col, justify="right" if col in ("id", "items", "discrepancies") else "left")
    for r in rows:
        colour = {"pass": "green", "fail": "red"}.get(r["verdict"], "yellow")
        t.add_row(str(r["id"]), str(r["started_at"]), r["direction"], ",".join(r["checks"]),
                  f"[{colour}]{r['verdict']}[/]", _n(r["items"]), _n(r["discrepancies"]),
                  _pct(r["completeness_pct"]), _pct(r["pass_rate_pct"]),
                  "" if r["repaired"] is None else str(r["repaired"]))
    err.print(t)


def _n(v: Any) -> str:
    return "" if v is None else f"{v:,}"


def _pct(v: Any) -> str:
    return "" if v is None else f"{v:.4f} %"
