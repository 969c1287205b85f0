"""`crosswind sync metadata`, `crosswind keys parse|check`,
`crosswind dlq list|show|replay|purge`, `crosswind conflicts list|show|resolve`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from crosswind.cli.app import (
    ConfigOpt,
    JsonOpt,
    app,
    err,
    guarded,
    load,
    print_json,
    quiet_run_error,
    run,
    spinner,
    sync_app,
    ticking,
    write_report,
)
from crosswind.config import Config, KeysConfig
from crosswind.entities import EdmDateTime
from crosswind.errors import ConfigError, NameParseError
from crosswind.governance.stewardship import stewardship_fields
from crosswind.keys import KeySpec, fields_json
from crosswind.metasync.context import MetaOptions, scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.metasync.stats import MetaStats
from crosswind.model import Direction
from crosswind.state import StateStore, now_iso

if TYPE_CHECKING:
    from crosswind.metasync.result import MetaResult

keys_app = typer.Typer(help="Object names → PartitionKey / RowKey (the \\[keys] pattern).",
                       no_args_is_help=True)
dlq_app = typer.Typer(help="Metadata rows that failed: list, show, replay, purge.",
                      no_args_is_help=True)
conflicts_app = typer.Typer(help="Rows changed on the replica side: list, show, resolve.",
                            no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")
app.add_typer(conflicts_app, name="conflicts")

OptionalConfig = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file.", envvar="CROSSWIND_CONFIG"),
]


# -- sync metadata ---------------------------------------------------------------------


def parse_since(text: str) -> EdmDateTime:
    """ISO 8601 date or date-time (UTC unless it says otherwise)."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r} is not an ISO 8601 date or time "
                          "(e.g. 2026-11-26 or 2026-11-26T10:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return EdmDateTime.from_datetime(dt.astimezone(UTC))


def live_rows(stats: MetaStats, enabled: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """A spinner with the run's counters (it only reads them)."""
    progress = spinner()
    task = progress.add_task("starting")

    def refresh() -> None:
        rate = (stats.written + stats.unchanged) / max(stats.elapsed(), 1e-6)
        progress.update(task, description=(
            f"listed {stats.listed_source:,} · written {stats.written:,} · unchanged "
            f"{stats.unchanged:,} · DLQ {stats.failed:,} · conflicts {stats.conflicts:,}"
            + (f" · changes {stats.changes:,}" if stats.changes else "")
            + f" · {rate:,.0f} rows/s"))

    return ticking(progress, refresh, enabled)


def _summary(report: dict[str, Any], path: Path) -> None:
    t = Table(title=f"sync metadata {report['direction']} ({report['mode']}) — "
                    f"{report['status']}")
    t.add_column("")
    t.add_column("rows", justify="right")
    rows = [("listed at source", report["listed"]["source"]),
            ("written", report["written"]), ("unchanged", report["unchanged"]),
            ("stale (newer at destination)", report["stale"]),
            ("deleted", report["deleted"]), ("failed → DLQ", report["failed"]),
            ("conflicts", report["conflicts"])]
    if report["dry_run"]:
        rows[1] = ("would write", report["would_write"]["count"])
        rows[4] = ("would delete", report["would_delete"]["count"])
    if report["mode"] == "objects":
        o = report["objects"]
        rows += [("objects read", o["read"]), ("badly named objects", o["bad_names"]),
                 ("objects without a row", o["missing_rows"])]
    if report["mode"] == "changes":
        c = report["changes"]
        rows += [("change events", c["read"]), ("own writes seen again", c["echoes_skipped"]),
                 ("reconciles", c["reconciles"])]
    for name, n in rows:
        t.add_row(name, f"{n:,}")
    err.print(t)
    err.print(f"{report['duration_s']:.1f}s, {report['throughput']['rows_per_s']:,.0f} rows/s; "
              f"DLQ open: {report['dlq']['open']:,}, conflicts open: {report['conflicts_open']:,}")
    for f in report["failures"][:10]:
        # A name error already starts with the name; others get the item in front.
        where = "" if f["reason"].startswith(repr(f["item"])[:20]) else f"{f['item']}: "
        err.print(f"[red]{f['kind']}[/] {where}{f['reason']}", markup=True)
    if report["failed"] > 10:
        err.print(f"… {report['failed'] - 10} more in the report; see `crosswind dlq list`")
    for c in report["conflict_examples"][:10]:
        err.print(f"[yellow]conflict[/] #{c['id']} {c['key']}: {c['why']}", markup=True)
    if report.get("error"):
        err.print(f"[bold red]{report['error']}[/]", markup=True)
    err.print(f"report: {path}")


def exit_code(result: MetaResult) -> int:
    return {"succeeded": 0, "failed": 1, "aborted": 4, "interrupted": 130}.get(result.status, 1)


@sync_app.command("metadata")
@guarded
def sync_metadata_cmd(
    config: ConfigOpt,
    direction: Annotated[Direction, typer.Option(
        "--direction", "-d",
        help="azure-to-aws: table → DocumentDB; aws-to-azure: change stream → table.")],
    mode: Annotated[str, typer.Option(
        "--mode", help="azure-to-aws: scan (the table) or objects (object names → rows).")
    ] = "scan",
    since: Annotated[str | None, typer.Option(
        "--since", help="Scan rows changed at or after this ISO time (overrides the watermark).")
    ] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Every row, whatever the watermark and recorded etags say.")] = False,
    delete: Annotated[bool | None, typer.Option(
        "--delete/--no-delete", help="Delete destination rows the source no longer has "
        "(azure-to-aws: a full reconcile; default from \\[metadata].propagate_deletes).")] = None,
    objects_from: Annotated[str, typer.Option(
        "--objects", help="objects mode: 'synced' (copied by sync objects) or 'listing'.")
    ] = "synced",
    follow: Annotated[bool, typer.Option(
        "--follow", help="aws-to-azure: keep following the change stream until Ctrl-C.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; change nothing.")
                       ] = False,
    report_file: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")
                           ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sync metadata rows: Azure Table ⇄ DocumentDB."""
    if mode not in ("scan", "objects"):
        raise ConfigError("--mode must be scan or objects")
    if objects_from not in ("synced", "listing"):
        raise ConfigError("--objects must be synced or listing")
    if direction is Direction.AWS_TO_AZURE and delete is False:
        raise ConfigError("--no-delete is for azure-to-aws; aws-to-azure applies the change "
                          "stream's deletes (guarded by [metadata].max_delete_count/percent)")
    cfg = load(config)
    opts = MetaOptions.from_config(
        cfg, direction, dry_run=dry_run, full=full or None,
        since=parse_since(since) if since else None, propagate_deletes=delete, follow=follow)
    stats = MetaStats()

    from crosswind.metasync.runner import sync_metadata  # engines load on use (start-up)

    async def go() -> MetaResult:
        async with live_rows(stats, enabled=not as_json):
            return await sync_metadata(cfg, opts, mode=mode,  # type: ignore[arg-type]
                                       objects_from=objects_from,  # type: ignore[arg-type]
                                       stats=stats)

    result = run(go())
    path = report_file or cfg.state_dir / "reports" / f"sync-metadata-{result.run_id}.json"
    write_report(result.report, path)
    if as_json:
        print_json(result.report)
    else:
        _summary(result.report, path)
        quiet_run_error(result.report)
    raise typer.Exit(exit_code(result))


# -- keys ------------------------------------------------------------------------------


def _spec(config: Path | None, pattern: str | None, pk: str | None, rk: str | None) -> KeySpec:
    if pattern is not None:
        if pk is None or rk is None:
            raise ConfigError("--pattern needs --partition-key and --row-key too")
        return KeySpec.from_config(KeysConfig(pattern=pattern, partition_key=pk, row_key=rk))
    if config is None:
        raise ConfigError("give --config (with a [keys] section) or --pattern, --partition-key "
                          "and --row-key")
    cfg = load(config)
    if cfg.keys is None:
        raise ConfigError(f"{config}: has no [keys] section (pattern, partition_key, row_key)")
    return KeySpec.from_config(cfg.keys)


def _parse_one(spec: KeySpec, name: str) -> dict[str, Any]:
    try:
        k = spec.keys(name)
    except NameParseError as exc:
        return {"name": name, "ok": False, "error": str(exc), "segment": exc.segment,
                "offset": exc.offset, "reason": exc.reason}
    return {"name": name, "ok": True, "partition_key": k.partition_key, "row_key": k.row_key,
            "fields": fields_json(k.fields)}


@keys_app.command("parse")
@guarded
def keys_parse_cmd(
    names: Annotated[list[str], typer.Argument(help="Object names to parse.")],
    config: OptionalConfig = None,
    pattern: Annotated[str | None, typer.Option("--pattern", help="Instead of \\[keys].")] = None,
    partition_key: Annotated[str | None, typer.Option("--partition-key")] = None,
    row_key: Annotated[str | None, typer.Option("--row-key")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the typed fields and keys of object names (exit 1 if one does not parse)."""
    spec = _spec(config, pattern, partition_key, row_key)
    results = [_parse_one(spec, n) for n in names]
    if as_json:
        print_json({"pattern": spec.pattern.source, "results": results})
    else:
        for r in results:
            if not r["ok"]:
                err.print(f"[red]✗[/] {r['error']}", markup=True)
                continue
            err.print(f"[green]✓[/] {r['name']}", markup=True)
            err.print(f"  PartitionKey = {r['partition_key']!r}   RowKey = {r['row_key']!r}")
            for k, v in r["fields"].items():
                err.print(f"  {k:<12} {v!r}")
    raise typer.Exit(0 if all(r["ok"] for r in results) else 1)


@keys_app.command("check")
@guarded
def keys_check_cmd(
    config: ConfigOpt,
    side: Annotated[str, typer.Option("--side", help="azure or aws")] = "azure",
    limit: Annotated[int, typer.Option("--limit", min=1, help="Names to check at most.")
                     ] = 10_000,
    prefix: Annotated[str, typer.Option("--prefix")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Parse real object names from a store and report those that do not fit."""
    if side not in ("azure", "aws"):
        raise ConfigError("--side must be azure or aws")
    cfg = load(config)
    if cfg.keys is None:
        raise ConfigError(f"{config}: has no [keys] section (pattern, partition_key, row_key)")
    spec = KeySpec.from_config(cfg.keys)
    from crosswind.stores.factory import open_object_store

    async def go() -> tuple[str, list[str]]:
        store = await open_object_store(cfg, side)  # type: ignore[arg-type]
        names: list[str] = []
        try:
            await store.check()
            async for meta in store.list(prefix):
                names.append(meta.key)
                if len(names) >= limit:
                    break
        finally:
            await store.close()
        return store.name, names

    where, names = run(go())
    results = [_parse_one(spec, n) for n in names]
    bad = [r for r in results if not r["ok"]]
    by_segment: dict[str, int] = {}
    for r in bad:
        by_segment[r["segment"]] = by_segment.get(r["segment"], 0) + 1
    report = {"kind": "keys-check", "store": where, "pattern": spec.pattern.source,
              "checked": len(results), "ok": len(results) - len(bad), "failed": len(bad),
              "failed_by_segment": by_segment, "limit_reached": len(names) >= limit,
              "failures": [{k: r[k] for k in ("name", "segment", "offset", "reason")}
                           for r in bad[:100]]}
    if as_json:
        print_json(report)
    else:
        err.print(f"{where}: {len(results):,} names checked, {len(bad):,} do not fit "
                  f"the pattern" + (" (limit reached)" if report["limit_reached"] else ""))
        for seg, n in sorted(by_segment.items(), key=lambda kv: -kv[1]):
            err.print(f"  {n:>6,} × {seg}")
        for r in bad[:20]:
            err.print(f"[red]✗[/] {r['error']}", markup=True)
    raise typer.Exit(0 if not bad else 1)


# -- dlq -------------------------------------------------------------------------------


@contextlib.contextmanager
def _ledger(cfg: Config) -> Iterator[tuple[StateStore, Ledger]]:
    state = StateStore(cfg.state_dir)
    try:
        yield state, Ledger(state, scope_of(cfg))
    finally:
        state.close()


@dlq_app.command("list")
@guarded
def dlq_list_cmd(
    config: ConfigOpt,
    status: Annotated[str, typer.Option("--status", help="open, resolved or all")] = "open",
    direction: Annotated[Direction | None, typer.Option("--direction", "-d")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="e.g. oversize, unmappable, "
                                             "bad-name, missing-row")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """DLQ entries with their reasons."""
    if status not in ("open", "resolved", "all"):
        raise ConfigError("--status must be open, resolved or all")
    cfg = load(config)
    with _ledger(cfg) as (_, ledger):
        items = ledger.dlq_list(status=None if status == "all" else status,
                                direction=direction.value if direction else None, kind=kind,
                                limit=limit)
        counts = ledger.dlq_counts()
    if as_json:
        print_json({"counts": counts, "items": [i.as_dict() for i in items]})
        return
    t = Table(title=f"DLQ ({status}) — open {counts.get('open', 0):,}, resolved "
                    f"{counts.get('resolved', 0):,}")
    for col in ("id", "direction", "item", "kind", "attempts", "last seen", "reason"):
        t.add_column(col, overflow="fold")
    for i in items:
        t.add_row(str(i.id), i.direction, f"{i.item_kind}: {i.item}", i.kind, str(i.attempts),
                  i.last_seen, i.reason)
    err.print(t)


@dlq_app.command("show")
@guarded
def dlq_show_cmd(config: ConfigOpt, item_id: Annotated[int, typer.Argument(help="DLQ id")],
                 as_json: JsonOpt = False) -> None:
    """One DLQ entry with its payload (the row or document as it failed)."""
    cfg = load(config)
    with _ledger(cfg) as (_, ledger):
        item = ledger.dlq_get(item_id)
    if item is None:
        raise ConfigError(f"no DLQ entry with id {item_id}")
    d = item.as_dict(with_payload=True)
    if as_json:
        print_json(d)
        return
    for k, v in d.items():
        if k != "payload":
            err.print(f"{k:>11}: {v}")
    err.print("    payload:")
    err.print(json.dumps(d["payload"], indent=2, default=str) if d["payload"] is not None
              else "  (none)", markup=False, highlight=False)


@dlq_app.command("replay")
@guarded
def dlq_replay_cmd(
    config: ConfigOpt,
    ids: Annotated[list[int] | None, typer.Argument(help="DLQ ids (or --all)")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every open entry (after filters).")
                     ] = False,
    direction: Annotated[Direction | None, typer.Option("--direction", "-d")] = None,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Try entries again from their current source version (exit 1 if some still fail,
    4 if the max-delete guard held deletes back)."""
    cfg = load(config)
    from crosswind.live.dlq import replay_all
    from crosswind.live.remote import in_service_or_here
    from crosswind.metasync.repair import ReplayResult, already_resolved, select_items

    id_list = list(ids or [])
    where = direction.value if direction else None
    args: dict[str, Any] = {"ids": id_list, "every": every, "direction": where, "kind": kind}

    async def here(state: StateStore) -> dict[str, Any]:
        ledger = Ledger(state, scope_of(cfg))
        items = select_items(ledger, id_list, every=every, direction=where, kind=kind)
        result = await replay_all(cfg, state, ledger, items)
        result.already_resolved = already_resolved(ledger, id_list)
        return result.report()

    report = {**in_service_or_here(cfg, "dlq-replay", args, here, say=err.print),
              **stewardship_fields(cfg)}
    result = ReplayResult(report["replayed"], report["resolved_ids"],
                          report["still_failing"], report.get("deletes_blocked"))
    if as_json:
        print_json(report)
    else:
        for d in report.get("already_resolved") or []:
            err.print(f"#{d['id']} {d['item']}: already resolved at {d['when']} ({d['how']})",
                      markup=False, highlight=False)
        err.print(f"replayed {result.replayed}, resolved {len(result.resolved)}, still failing "
                  f"{len(result.still_open)}")
        for s in result.still_open[:20]:
            err.print(f"[red]#{s['id']}[/] {s['item']}: {s['kind']}: {s['reason']}", markup=True)
        if result.blocked:
            err.print(f"[bold red]{result.blocked}[/]", markup=True)
    raise typer.Exit(4 if result.blocked else 0 if not result.still_open else 1)


@dlq_app.command("purge")
@guarded
def dlq_purge_cmd(
    config: ConfigOpt,
    ids: Annotated[list[int] | None, typer.Argument(help="DLQ ids")] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="All resolved entries.")] = False,
    every: Annotated[bool, typer.Option("--all", help="All entries, open ones too.")] = False,
    older_than_days: Annotated[float | None, typer.Option(
        "--older-than-days", help="Only entries last seen before this many days ago.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Needed to purge open entries.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove DLQ entries for good."""
    if not ids and not resolved and not every:
        raise ConfigError("name DLQ ids, or give --resolved or --all")
    if (every or ids) and not resolved and not yes:
        raise ConfigError("purging open entries forgets failed rows; add --yes if that is meant")
    cfg = load(config)
    before = None
    if older_than_days is not None:
        before = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat(
            timespec="milliseconds")
    with _ledger(cfg) as (state, ledger):
        state.lock()
        n = ledger.dlq_purge(ids=ids or None, status="resolved" if resolved else None,
                             before=before)
    if as_json:
        print_json({"kind": "dlq-purge", "purged": n, "at": now_iso()})
    else:
        err.print(f"purged {n} DLQ entr{'y' if n == 1 else 'ies'}")


# -- conflicts -------------------------------------------------------------------------


@conflicts_app.command("list")
@guarded
def conflicts_list_cmd(
    config: ConfigOpt,
    status: Annotated[str, typer.Option("--status", help="open, resolved or all")] = "open",
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Rows written on the replica side since the last sync (left alone, recorded)."""
    if status not in ("open", "resolved", "all"):
        raise ConfigError("--status must be open, resolved or all")
    cfg = load(config)
    with _ledger(cfg) as (_, ledger):
        items = ledger.conflicts(status=None if status == "all" else status, limit=limit)
    if as_json:
        print_json({"conflicts": [c.as_dict(with_versions=False) for c in items]})
        return
    t = Table(title=f"conflicts ({status})")
    for col in ("id", "PartitionKey", "RowKey", "detected", "Azure now", "AWS now", "status"):
        t.add_column(col, overflow="fold")
    for c in items:
        t.add_row(str(c.id), c.pk, c.rk, c.detected_at,
                  "present" if c.azure_version else "absent",
                  "present" if c.aws_version else "deleted", c.status)
    err.print(t)


@conflicts_app.command("show")
@guarded
def conflicts_show_cmd(config: ConfigOpt, conflict_id: Annotated[int, typer.Argument()],
                       as_json: JsonOpt = False) -> None:
    """Both versions of one conflict."""
    cfg = load(config)
    with _ledger(cfg) as (_, ledger):
        found = ledger.conflicts(status=None, ids=[conflict_id], limit=1)
    if not found:
        raise ConfigError(f"no conflict with id {conflict_id}")
    d = found[0].as_dict()
    if as_json:
        print_json(d)
    else:
        err.print(json.dumps(d, indent=2, default=str), markup=False, highlight=False)


@conflicts_app.command("resolve")
@guarded
def conflicts_resolve_cmd(
    config: ConfigOpt,
    conflict_id: Annotated[int, typer.Argument()],
    keep: Annotated[str, typer.Option("--keep", help="aws or azure: whose current version both "
                                      "sides get")],
    as_json: JsonOpt = False,
) -> None:
    """Give both sides one side's current version and mark the conflict resolved."""
    if keep not in ("aws", "azure"):
        raise ConfigError("--keep must be aws or azure")
    cfg = load(config)
    from crosswind.metasync.repair import resolve_conflict

    out = run(resolve_conflict(cfg, conflict_id, keep))  # type: ignore[arg-type]
    if as_json:
        print_json(out)
    else:
        err.print(f"conflict #{conflict_id}: both sides now hold the {keep} version"
                  + (" (row deleted)" if out["deleted"] else ""))
