"""`crosswind sync objects`, `crosswind inventory`, `crosswind runs`, `crosswind preflight`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from crosswind.cli.app import (
    ConfigOpt,
    JsonOpt,
    app,
    err,
    fail,
    guarded,
    load,
    print_json,
    quiet_run_error,
    run,
    sync_app,
    ticking,
    write_report,
)
from crosswind.errors import ConfigError
from crosswind.governance.stewardship import stewardship_fields
from crosswind.inventory import human_bytes
from crosswind.model import Direction
from crosswind.observability.stats import SyncStats
from crosswind.state import StateStore
from crosswind.sync.filters import KeyFilter

if TYPE_CHECKING:
    from crosswind.sync.result import SyncResult

# The stores and engines (and the cloud SDKs under them, most of a command's
# start-up) are imported by the commands that use them, not by every command.

DirectionOpt = Annotated[
    Direction,
    typer.Option("--direction", "-d", help="azure-to-aws before cutover, aws-to-azure after."),
]


def live_progress(stats: SyncStats, enabled: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """A rich progress bar fed from the run's counters (it only reads them)."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[objects]}"),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = progress.add_task("listing", total=None, objects="")

    def refresh() -> None:
        done = stats.copied.count + stats.failed.count
        progress.update(
            task,
            description="copying" if stats.listing_done else "listing+copying",
            total=max(stats.planned.bytes, 1) if stats.listing_done else None,
            completed=stats.bytes_moved,
            objects=f"{done}/{stats.planned.count} objects, {stats.skipped.count} unchanged",
        )

    return ticking(progress, refresh, enabled)


def _summary(report: dict[str, Any], path: Path) -> None:
    t = Table(title=f"sync objects {report['direction']} — {report['status']}", show_header=True)
    t.add_column("")
    t.add_column("objects", justify="right")
    t.add_column("bytes", justify="right")
    rows = [("copied", report["copied"]), ("unchanged (skipped)", report["skipped"]),
            ("failed", report["failed"]), ("deleted", report["deleted"]),
            ("extra at destination", report["extra_on_destination"])]
    if report["dry_run"]:
        rows.insert(0, ("would copy", report["would_copy"]))
        rows.insert(1, ("would delete", report["would_delete"]))
    for name, tally in rows:
        t.add_row(name, f"{tally['count']:,}", human_bytes(tally["bytes"]))
    err.print(t)
    tp = report["throughput"]
    err.print(
        f"listed {report['listed']['source']:,} at source, "
        f"{report['listed']['destination']:,} at destination in {report['duration_s']:.1f}s; "
        f"{tp['objects_per_s']:.1f} objects/s, {human_bytes(tp['bytes_per_s'])}/s"
    )
    md = report["metadata"]
    if md["keys_renamed"] or md["keys_dropped"]:
        err.print(f"metadata names renamed: {md['keys_renamed']}, dropped: {md['keys_dropped']} "
                  f"(policy {md['policy']})")
    for f in report["failures"][:10]:
        err.print(f"[red]failed[/] {escape(f['key'])}: {escape(f['reason'])}", markup=True,
                  soft_wrap=True)
    if report["failed"]["count"] > 10:
        err.print(f"… {report['failed']['count'] - 10} more failures in the report")
    if report.get("engine") == "datasync":
        _datasync_summary(report)
    if report.get("error"):
        err.print(f"[bold red]{escape(report['error'])}[/]", markup=True, soft_wrap=True)
    err.print(f"report: {path}")


def _datasync_summary(report: dict[str, Any]) -> None:
    ds = report["datasync"]
    for line in ds.get("actions", []):
        err.print(f"DataSync: {escape(line)}", markup=True, soft_wrap=True)
    if ds.get("execution"):
        p = ds.get("progress") or {}
        err.print(f"DataSync execution {escape(ds['execution'])}: {p.get('status')}, "
                  f"{p.get('files_transferred', 0):,} files, "
                  f"{human_bytes(p.get('bytes_transferred', 0))}", markup=True, soft_wrap=True)
    check = ds.get("crosswind_check")
    if check:
        err.print(f"crosswind confirmed {check['confirmed']:,} of the copies DataSync verified "
                  f"({check['unconfirmed']:,} left to validation)")
    for name in ("metadata_ingestion", "validation"):
        if report.get(name):
            r = report[name]
            err.print(f"{name.replace('_', ' ')}: {r.get('verdict') or r.get('status')} "
                      f"(run {r.get('run_id')})")


@sync_app.command("objects")
@guarded
def sync_objects_cmd(
    config: ConfigOpt,
    direction: DirectionOpt,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; change nothing.")] = False,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete destination objects absent at the source.")
    ] = False,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Glob of keys to sync (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Glob of keys to leave alone.")
    ] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only keys under this.")] = None,
    max_delete: Annotated[
        int | None, typer.Option("--max-delete", help="Abort if more deletes than this.")
    ] = None,
    max_delete_percent: Annotated[
        float | None, typer.Option("--max-delete-percent", help="…or more than this % of dest.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1)] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report here.")
    ] = None,
    as_json: JsonOpt = False,
    workers: Annotated[str | None, typer.Option(
        "--workers", help="Shard the run over Dask: local:N (N worker processes here) or "
        "tcp://SCHEDULER:8786 (an existing cluster). Default: [scaleout] workers, else "
        "one process.")] = None,
) -> None:
    """Copy new and changed objects from one side to the other, verified."""
    from crosswind.scaleout.spec import parse_workers
    from crosswind.sync.objects import options_from_config, sync_objects
    from crosswind.sync.report import sync_report

    spec = parse_workers(workers) if workers is not None else None
    cfg = load(config)
    if spec is None and cfg.scaleout.workers is not None:
        spec = parse_workers(cfg.scaleout.workers, where="[scaleout] workers")
    overrides: dict[str, Any] = {"dry_run": dry_run, "delete": delete}
    if include or exclude or prefix is not None:
        s = cfg.sync
        overrides["filter"] = KeyFilter(
            tuple(include or s.include), tuple(exclude or s.exclude),
            s.prefix if prefix is None else prefix,
        )
    if max_delete is not None:
        overrides["max_delete_count"] = max_delete
    if max_delete_percent is not None:
        overrides["max_delete_percent"] = max_delete_percent
    if concurrency is not None:
        overrides["concurrency"] = concurrency
    opts = options_from_config(cfg, direction, **overrides)
    stats = SyncStats()

    if cfg.sync.engine == "datasync":
        from crosswind.datasync.run import DataSyncOutcome, sync_with_datasync

        if spec is not None:
            raise ConfigError("--workers / [scaleout] workers does not apply with [sync] engine "
                              "= \"datasync\": DataSync moves the bytes")

        async def go_datasync() -> DataSyncOutcome:
            async with live_progress(stats, enabled=not as_json):
                return await sync_with_datasync(cfg, direction, opts, stats)

        outcome = run(go_datasync())
        result, report = outcome.result, outcome.report()
    else:
        async def go() -> SyncResult:
            async with live_progress(stats, enabled=not as_json):
                if spec is not None:
                    from crosswind.scaleout.coordinator import sync_objects_distributed

                    return await sync_objects_distributed(cfg, direction, opts, spec, stats)
                return await sync_objects(cfg, direction, opts, stats)

        result = run(go())
        report = sync_report(result)
    path = report_file or cfg.state_dir / "reports" / f"sync-objects-{result.run_id}.json"
    write_report(report, path)
    if as_json:
        print_json(report)
    else:
        _summary(report, path)
        quiet_run_error(report)
    raise typer.Exit(result.exit_code)


def _rates(cfg_dir: Path) -> tuple[float, float, str]:
    """Rates for the duration estimate: the last real sync's, else a stated assumption."""
    state = StateStore(cfg_dir)
    try:
        for r in state.runs("objects", limit=50):
            if r["status"] != "succeeded" or r["dry_run"]:
                continue
            rep = state.run_report(int(r["id"])) or {}
            copied = rep.get("copied", {}).get("count", 0)
            if copied >= 100:
                tp = rep["throughput"]
                return (tp["objects_per_s"], max(tp["bytes_per_s"], 1.0),
                        f"measured by sync run {r['id']}")
    finally:
        state.close()
    return 300.0, 100 * 1024 * 1024, "assumed 300 objects/s and 100 MiB/s (no sync measured yet)"


@app.command("inventory")
@guarded
def inventory_cmd(
    config: ConfigOpt,
    side: Annotated[str, typer.Option("--side", help="azure or aws")],
    prefix: Annotated[str, typer.Option("--prefix")] = "",
    depth: Annotated[int, typer.Option("--depth", help="Path segments per prefix.", min=1)] = 2,
    top: Annotated[int, typer.Option("--top", help="How many prefixes to show.")] = 20,
    plan: Annotated[bool, typer.Option(
        "--plan", help="Probe both endpoints and estimate the full copy and its validation "
        "(probe objects under .crosswind-probe/ on the other side, removed after).")] = False,
    workers: Annotated[str | None, typer.Option(
        "--workers", help="With --plan: worker processes (N or local:N; default 1).")] = None,
    concurrency: Annotated[str | None, typer.Option(
        "--concurrency", help="With --plan: copies in flight per worker "
        "(default [sync] concurrency).")] = None,
    probe_seconds: Annotated[str | None, typer.Option(
        "--probe-seconds", help="With --plan: seconds of request bursts in all (default 6).")
    ] = None,
    serverless: Annotated[bool, typer.Option(
        "--serverless", help="With --plan: the Lambda concurrency the metadata handler "
        "needs at the planned copy rate (probes [azure] table and DocumentDB).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Count objects and bytes, a size histogram and the largest prefixes (capacity planning);
    with --plan, measured durations and resources for a full copy to the other side."""
    if side not in ("azure", "aws"):
        raise typer.BadParameter("--side must be azure or aws")
    if plan or workers or concurrency or probe_seconds or serverless:
        from crosswind.cli.capacity import plan_cmd

        plan_cmd(config, side, prefix, depth, top, workers, concurrency, probe_seconds,
                 serverless, as_json, plan)
        return
    from crosswind.inventory import take_inventory
    from crosswind.stores.factory import open_object_store

    cfg = load(config)

    async def go() -> tuple[str, Any]:
        store = await open_object_store(cfg, side)  # type: ignore[arg-type]
        try:
            await store.check()
            return store.name, await take_inventory(store, prefix, depth)
        finally:
            await store.close()

    name, inv = run(go())
    report = {**inv.report(name, _rates(cfg.state_dir), top), **stewardship_fields(cfg)}
    if as_json:
        print_json(report)
        return
    err.print(f"[bold]{name}[/]: {inv.count:,} objects, {human_bytes(inv.bytes)}", markup=True)
    h = Table(title="sizes")
    for col in ("size", "objects", "bytes"):
        h.add_column(col, justify="right")
    for row in report["size_histogram"]:
        h.add_row(row["range"], f"{row['objects']:,}", human_bytes(row["bytes"]))
    err.print(h)
    p = Table(title=f"top prefixes (depth {depth})")
    for col in ("prefix", "objects", "bytes"):
        p.add_column(col, justify="right" if col != "prefix" else "left")
    for row in report["top_prefixes"]:
        p.add_row(row["prefix"], f"{row['objects']:,}", human_bytes(row["bytes"]))
    err.print(p)
    est = report["estimate"]
    err.print(f"estimated copy time: {est['duration_s'] / 60:.1f} min ({est['basis']})")


@app.command("runs")
@guarded
def runs_cmd(
    config: ConfigOpt,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs recorded in the state store."""
    cfg = load(config)
    state = StateStore(cfg.state_dir)
    try:
        rows = state.runs(limit=limit)
    finally:
        state.close()
    if as_json:
        print_json({"runs": rows})
        return
    t = Table()
    for col in ("id", "kind", "direction", "started_at", "finished_at", "status", "dry_run"):
        t.add_column(col)
    for r in rows:
        t.add_row(*(str(r[c]) for c in ("id", "kind", "direction", "started_at", "finished_at",
                                          "status", "dry_run")))
    err.print(t)


PreflightDirection = Annotated[
    str, typer.Option("--direction", "-d",
                      help="azure-to-aws, aws-to-azure, or both (the cutover and its rollback).")]


@app.command("preflight")
@guarded
def preflight_cmd(config: ConfigOpt, direction: PreflightDirection = "azure-to-aws",
                  as_json: JsonOpt = False) -> None:
    """Probe every permission the direction(s) need on every store, with harmless
    probe objects and rows that are removed afterwards; exit 3 naming what is missing."""
    if direction not in ("azure-to-aws", "aws-to-azure", "both"):
        raise typer.BadParameter("--direction must be azure-to-aws, aws-to-azure or both")
    cfg = load(config)
    from crosswind.preflight import run_preflight

    directions = list(Direction) if direction == "both" else [Direction(direction)]
    report = run(run_preflight(cfg, directions))
    if as_json:
        print_json(report.to_json())
    else:
        _preflight_table(report)
    if not report.ok:
        raise fail(f"preflight {direction}: {report.summary()}", 3)


def _preflight_table(report: Any) -> None:
    for name, who in report.identities.items():
        err.print(f"{name} identity: {escape(who)}", markup=True, soft_wrap=True)
    t = Table(title=f"preflight {', '.join(report.directions)}")
    for col in ("store", "permission", "result", "detail"):
        t.add_column(col)
    colour = {"ok": "green", "missing": "red", "error": "red", "skipped": "yellow"}
    for p in report.probes:
        t.add_row(escape(p.store), escape(p.permission),
                  f"[{colour[p.result]}]{p.result}[/]", escape(p.detail))
    err.print(t)
    for w in report.warnings:
        err.print(f"[yellow]warning[/] {escape(w)}", markup=True, soft_wrap=True)
    if report.ok:
        err.print(f"ok: {report.summary()}")
