"""Entry point of an object sync for a config: open stores and state, run, close."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from crosswind.config import Config
from crosswind.governance.context import Governance
from crosswind.governance.gate import SchemaRejected, rejection_payload
from crosswind.governance.runs import objects_lineage
from crosswind.model import Direction
from crosswind.observability.stats import SyncStats
from crosswind.state import StateStore
from crosswind.stores.base import ObjectStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncRun
from crosswind.sync.filters import KeyFilter
from crosswind.sync.result import SyncOptions, SyncResult
from crosswind.sync.transfer import TransferSettings


def options_from_config(cfg: Config, direction: Direction, **overrides: object) -> SyncOptions:
    s = cfg.sync
    opts = SyncOptions(
        direction=direction.value,
        filter=KeyFilter(s.include, s.exclude, s.prefix),
        concurrency=s.concurrency,
        memory_budget=s.memory_budget,
        max_delete_count=s.max_delete_count,
        max_delete_percent=s.max_delete_percent,
        attempts=s.attempts,
        transfer=TransferSettings(s.multipart_threshold, s.part_size, s.part_concurrency,
                                  s.metadata_key_policy, s.stamp_metadata),
    )
    return replace(opts, **overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def opened_stores(cfg: Config, direction: Direction) -> AsyncIterator[
    tuple[ObjectStore, ObjectStore]
]:
    src = await open_object_store(cfg, direction.source_side)
    try:
        dst = await open_object_store(cfg, direction.destination_side)
        try:
            yield src, dst
        finally:
            await dst.close()
    finally:
        await src.close()


async def preflight(src: ObjectStore, dst: ObjectStore) -> None:
    """Both ends reachable and the credentials accepted, before anything moves."""
    await src.check()
    await dst.check(write=True)


#: what runs the sync once the state is locked and the stores are open and checked
#: (default: ``SyncRun`` here; the scale-out coordinator passes its own)
Runner = Callable[[ObjectStore, ObjectStore, StateStore, SyncOptions], Awaitable[SyncResult]]


async def sync_objects(
    cfg: Config, direction: Direction, options: SyncOptions, stats: SyncStats | None = None,
    *, runner: Runner | None = None,
) -> SyncResult:
    state = StateStore(cfg.state_dir)
    gov: Governance | None = None
    try:
        state.lock()
        options, gov = governed(cfg, state, direction, options)
        async with opened_stores(cfg, direction) as (src, dst):
            await preflight(src, dst)
            lineage = objects_lineage(gov, cfg, direction, dry_run=options.dry_run)
            try:
                result = await (SyncRun(src, dst, state, options, stats).run() if runner is None
                                else runner(src, dst, state, options))
            except BaseException as exc:
                lineage.fail(f"{type(exc).__name__}: {exc}" if str(exc) else "interrupted")
                raise
            lineage.finish_sync(result.status, result.error, result.run_id,
                                rows=result.stats.copied.count, bytes=result.stats.copied.bytes)
            return result
    finally:
        if gov is not None:
            gov.close()
        state.close()


def governed(cfg: Config, state: StateStore, direction: Direction, options: SyncOptions, *,
             lineage: bool = True) -> tuple[SyncOptions, Governance]:
    """``options`` with the validation before write and the stewardship of ``cfg``
    (rejected objects into the DLQ); the caller closes the ``Governance``."""
    gov = Governance.open(cfg, state, lineage=lineage,
                          on_reject=_quarantine(cfg, state, direction))
    return replace(options, governance=gov,
                   transfer=replace(options.transfer, schemas=gov.schemas)), gov


def _quarantine(cfg: Config, state: StateStore, direction: Direction
                ) -> Callable[[SchemaRejected], None]:
    """Objects the validation before write rejects go to the DLQ (kind ``schema``),
    where ``dlq replay`` finds them, as the replication service files them."""
    from crosswind.metasync.context import scope_of
    from crosswind.metasync.ledger import Ledger

    ledger = Ledger(state, scope_of(cfg))

    def put(exc: SchemaRejected) -> None:
        ledger.dlq_put(direction.value, "object-key", exc.item, pk=None, rk=None,
                       kind="schema", reason=str(exc), payload=rejection_payload(exc),
                       run_id=None)
    return put
