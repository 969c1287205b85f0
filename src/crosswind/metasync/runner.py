"""Entry point of a metadata sync for a config: open state and stores, run one
engine, record the run. The CLI calls this; so can a daemon or a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from crosswind.config import Config
from crosswind.deleteguard import DeleteGuard
from crosswind.errors import ConfigError, CrosswindError
from crosswind.governance.context import Governance
from crosswind.governance.runs import metadata_lineage
from crosswind.keys import KeySpec
from crosswind.metasync.context import MetaOptions, RunContext, scope_of
from crosswind.metasync.forward import ForwardSync
from crosswind.metasync.ledger import Ledger
from crosswind.metasync.report import metadata_report
from crosswind.metasync.result import MetaResult
from crosswind.metasync.reverse import ReverseSync
from crosswind.metasync.stats import MetaStats
from crosswind.model import Direction
from crosswind.secrets import configure, redact
from crosswind.state import RunStatus, StateStore
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_tables import AzureTableStore, open_table_store
from crosswind.stores.documentdb import DocumentDBStore

#: ``keys``: row repair of the given (PartitionKey, RowKey) pairs (azure-to-aws)
Mode = Literal["scan", "objects", "changes", "keys"]
ObjectsFrom = Literal["synced", "listing"]


@contextlib.asynccontextmanager
async def opened_row_stores(cfg: Config, direction: Direction
                            ) -> AsyncIterator[tuple[AzureTableStore, DocumentDBStore]]:
    configure(cfg)
    m = cfg.metadata
    table = open_table_store(resolve_auth(cfg.azure), cfg.azure.table, page_size=m.page_size,
                             writable=direction is Direction.AWS_TO_AZURE)
    try:
        docs = DocumentDBStore.open(cfg.aws, page_size=m.page_size, max_batch=m.batch_size)
        try:
            yield table, docs
        finally:
            await docs.close()
    finally:
        await table.close()


def key_spec(cfg: Config) -> KeySpec:
    if cfg.keys is None:
        raise ConfigError("[keys] (pattern, partition_key, row_key) is required to find the "
                          "rows of objects")
    return KeySpec.from_config(cfg.keys)


async def _names_synced(ledger: Ledger, prefix: str, since: str | None,
                        newest: list[str]) -> AsyncIterator[str]:
    for key, at in ledger.verified_since(Direction.AZURE_TO_AWS.value, since, prefix):
        if not newest or at > newest[0]:
            newest[:] = [at]
        yield key


async def _names_listed(cfg: Config, prefix: str) -> AsyncIterator[str]:
    from crosswind.stores.factory import open_object_store

    store = await open_object_store(cfg, "azure")
    try:
        async for meta in store.list(prefix):
            yield meta.key
    finally:
        await store.close()


async def _names_given(names: Iterable[str]) -> AsyncIterator[str]:
    for n in names:
        yield n


async def sync_metadata(
    cfg: Config, opts: MetaOptions, *, mode: Mode = "scan", objects_from: ObjectsFrom = "synced",
    names: Iterable[str] | None = None, stats: MetaStats | None = None,
    guard: DeleteGuard | None = None, keys: Iterable[tuple[str, str]] | None = None,
) -> MetaResult:
    """One run. Azure → AWS: ``scan`` (the table) or ``objects`` (object names →
    rows). AWS → Azure: the change stream (``changes``), with a reconcile when
    there is no valid resume token.

    ``guard``: the max-delete guard every delete of the run asks (the
    replication service passes its sliding-window one); by default one for
    this run, with the limits of ``opts``."""
    direction = opts.direction
    if direction is Direction.AWS_TO_AZURE:
        if opts.since is not None:
            raise ConfigError("--since is for azure-to-aws table scans; aws-to-azure resumes "
                              "from its saved change-stream position")
        if mode in ("objects", "keys"):
            raise ConfigError("aws-to-azure follows the DocumentDB change stream; --mode "
                              f"{mode} is for azure-to-aws")
        mode = "changes"
    elif mode == "changes":
        raise ConfigError("--mode changes is for aws-to-azure (the DocumentDB change stream)")
    spec = key_spec(cfg) if mode == "objects" else None
    state = StateStore(cfg.state_dir)
    gov: Governance | None = None
    try:
        state.lock()
        ledger = Ledger(state, scope_of(cfg))
        gov = Governance.open(cfg, state)
        ctx = RunContext(ledger, None, opts, stats or MetaStats(),
                         guard=guard if guard is not None else opts.one_run_guard(),
                         governance=gov)
        async with opened_row_stores(cfg, direction) as (table, docs):
            await table.check()
            await docs.check()
            src, dst = (table, docs) if direction is Direction.AZURE_TO_AWS else (docs, table)
            run_id = state.start_run("metadata", direction.value, opts.dry_run)
            ctx.run_id = run_id
            lineage = metadata_lineage(gov, cfg, direction, mode, dry_run=opts.dry_run)
            started = datetime.now(UTC)
            status: RunStatus = "succeeded"
            error: str | None = None
            details: dict[str, Any] = {}
            engine: ForwardSync | ReverseSync | None = None
            try:
                if direction is Direction.AZURE_TO_AWS:
                    if not opts.dry_run:
                        await docs.ensure_index()
                    fwd = engine = ForwardSync(table, docs, ctx)
                    if mode == "objects":
                        assert spec is not None
                        await _run_objects(cfg, fwd, ledger, spec, objects_from, names, details)
                    elif mode == "keys":
                        await fwd.repair(keys or ())
                    else:
                        await fwd.scan()
                else:
                    engine = ReverseSync(docs, table, ctx)
                    await engine.run()
                if ctx.stats.failed:
                    status = "failed"
                if engine.delete_blocked:
                    status, error = "aborted", engine.delete_blocked
            except CrosswindError as exc:
                status, error = "failed", redact(str(exc))
            except asyncio.CancelledError:
                status, error = "interrupted", "interrupted"
                raise
            except Exception as exc:  # a bug or an untranslated error: never "succeeded"
                status, error = "failed", redact(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                if engine is not None:
                    details.update(_engine_details(engine, mode))
                result = MetaResult(run_id, status, error, mode, src.name, dst.name, started,
                                    datetime.now(UTC), ctx, details)
                result.report = metadata_report(result)
                state.finish_run(run_id, status, result.report)
                lineage.finish_sync(status, error, run_id, rows=ctx.stats.written)
            return result
    finally:
        if gov is not None:
            gov.close()
        state.close()


async def _run_objects(cfg: Config, fwd: ForwardSync, ledger: Ledger, spec: KeySpec,
                       objects_from: ObjectsFrom, names: Iterable[str] | None,
                       details: dict[str, Any]) -> None:
    prefix = cfg.metadata.object_prefix
    if names is not None:
        await fwd.objects(_names_given(names), spec)
        details["objects_from"] = "given"
        return
    if objects_from == "listing":
        details["objects_from"] = "listing"
        await fwd.objects(_names_listed(cfg, prefix), spec)
        return
    since = None if fwd.opts.full else fwd.ledger.watermark("objects")
    newest: list[str] = []
    details.update({"objects_from": "synced", "objects_since": since})
    await fwd.objects(_names_synced(ledger, prefix, since, newest), spec)
    if newest and not fwd.opts.dry_run:
        fwd.ledger.set_watermark("objects", newest[0])


def _engine_details(engine: ForwardSync | ReverseSync, mode: str) -> dict[str, Any]:
    if isinstance(engine, ForwardSync):
        return {"scan": {"since": engine.since.iso if engine.since else None,
                         "watermark_before": engine.watermark_before,
                         "watermark_after": engine.ledger.watermark("scan"),
                         "reconcile": engine.opts.propagate_deletes}}
    return {"change_stream": {"resumed_from_token": engine.started_from_token,
                              "reconciles": engine.reconcile_reasons}}
