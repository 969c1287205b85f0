"""The worker side: one shard through the ordinary engine, on a Dask worker.

A ``ShardTask`` is all a worker is sent: the config as loaded (its secrets are
references, resolved here, by the worker, with the worker's own environment,
files and identity), the run's options, the shard (its key range with both
listings' entries and the verified records in it) and the registered schemas
the validation before write checks against. The worker runs ``SyncRun`` on
exactly those entries, against a throwaway state store in a temporary
directory, and returns a ``ShardOutcome``: what it verified, what failed, what
it would delete, its counters. It never opens the coordinator's state store.

Why the records travel with the shard: the march needs the verified record of
every key it sees (to skip unchanged objects without a request), the
coordinator reads them in key order anyway while it cuts the shard, and a
shard's records are small (about 150 bytes a key). A worker-side copy of the
state would need a shared file system or a second writer; a worker that reads
nothing but its task also can never see a half-written state.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from crosswind.config import Config
from crosswind.errors import CrosswindError
from crosswind.governance.gate import Enforce, GateCounters, SchemaGate, SchemaRejected, Violation
from crosswind.model import Direction, ObjectMeta
from crosswind.observability.stats import SyncStats
from crosswind.scaleout.shards import Shard
from crosswind.secrets import configure, redact
from crosswind.state import StateStore, VerifiedCopy
from crosswind.stores.base import ObjectStore
from crosswind.sync.engine import SyncRun, VerifiedRecords
from crosswind.sync.objects import opened_stores
from crosswind.sync.result import SyncOptions

#: (subject → (version, schema)): the registry's latest versions, as the gate reads them
Schemas = dict[str, tuple[int, Any]]


@dataclass(frozen=True)
class ShardTask:
    config: Config
    direction: str
    #: ``SyncOptions`` but its governance (the coordinator's, open on its state
    #: store; the worker builds its own gate from ``enforce`` and ``schemas``)
    options: dict[str, Any]
    shard: Shard
    enforce: Enforce = "off"
    schemas: Schemas = field(default_factory=dict)

    @staticmethod
    def ship(options: SyncOptions) -> dict[str, Any]:
        """``options`` as a task carries them: plain data, picklable by ``pickle``."""
        out = {f.name: getattr(options, f.name) for f in fields(options)
               if f.name != "governance"}
        out["transfer"] = replace(options.transfer, schemas=SchemaGate.off())
        return out


@dataclass(frozen=True)
class Rejection:
    """A ``SchemaRejected`` in parts (the exception itself does not unpickle)."""

    subject: str
    version: int
    item: str
    violations: list[Violation]

    def exception(self) -> SchemaRejected:
        return SchemaRejected(self.subject, self.version, self.item, self.violations)


@dataclass
class ShardOutcome:
    index: int
    stats: SyncStats
    records: list[VerifiedCopy]
    #: every failure of the shard (key, kind, reason), redacted
    failures: list[dict[str, str]]
    pending_deletes: list[tuple[str, str | None, int]]
    #: destination entries of the shard inside the prefix and filters
    dst_in_scope: int
    would_copy: list[dict[str, Any]]
    would_delete: list[str]
    schema_counters: GateCounters
    rejections: list[Rejection]
    #: what stopped the shard early (an endpoint down, credentials refused), if anything
    stopped: tuple[str, str, int] | None = None


class _Kept(VerifiedRecords):
    """Verified copies kept for the coordinator instead of written."""

    def __init__(self, state: StateStore, direction: str) -> None:
        super().__init__(state, direction, 0)
        self.kept: list[VerifiedCopy] = []

    def add(self, copy: VerifiedCopy) -> None:
        self.kept.append(copy)

    def flush(self) -> None:
        pass


async def _each(items: Iterable[ObjectMeta]) -> AsyncIterator[ObjectMeta]:
    for m in items:
        yield m


class ShardRun(SyncRun):
    """``SyncRun`` on one shard's entries; deletes are only collected (the
    max-delete guard needs the whole run's numbers: the coordinator applies it)."""

    def __init__(self, src: ObjectStore, dst: ObjectStore, state: StateStore,
                 options: SyncOptions, shard: Shard) -> None:
        super().__init__(src, dst, state, options)
        self.shard = shard
        self.kept = _Kept(state, options.direction)
        self.records = self.kept

    def _listings(self) -> tuple[AsyncIterator[ObjectMeta], AsyncIterator[ObjectMeta],
                                 Iterable[VerifiedCopy]]:
        ms = self.shard.matches
        return (_each(m.src for m in ms if m.src is not None),
                _each(m.dst for m in ms if m.dst is not None),
                [m.record for m in ms if m.record is not None])

    @property
    def dst_in_scope(self) -> int:
        return self._dst_in_scope

    async def run_shard(self) -> tuple[str, str, int] | None:
        """The march and the copies; what stopped them early, if anything."""
        self.run_id = self.state.start_run("objects", self.opts.direction, self.opts.dry_run)
        try:
            await self._march_and_copy()
        except CrosswindError as exc:
            return type(exc).__name__, redact(str(exc)), exc.exit_code
        tripped = self.breaker.tripped
        if tripped is not None:
            return type(tripped).__name__, redact(str(tripped)), tripped.exit_code
        return None


def _gate(task: ShardTask, rejections: list[Rejection]) -> SchemaGate:
    if task.enforce == "off":
        return SchemaGate.off()
    schemas = task.schemas

    def keep(exc: SchemaRejected) -> None:
        rejections.append(Rejection(exc.subject, exc.version, exc.item, exc.violations))

    return SchemaGate(task.enforce, lambda: schemas, lambda: 0, on_reject=keep)


async def shard_outcome(task: ShardTask) -> ShardOutcome:
    """Run ``task`` here (the body of ``run_shard``; async for tests)."""
    configure(task.config)
    rejections: list[Rejection] = []
    gate = _gate(task, rejections)
    shipped = task.options
    opts = SyncOptions(**{**shipped, "transfer": replace(shipped["transfer"], schemas=gate)})
    with tempfile.TemporaryDirectory(prefix="crosswind-shard-") as tmp:
        state = StateStore(Path(tmp))
        try:
            async with opened_stores(task.config, Direction(task.direction)) as (src, dst):
                run = ShardRun(src, dst, state, opts, task.shard)
                stopped = await run.run_shard()
                return ShardOutcome(
                    task.shard.index, run.stats, run.kept.kept, state.failures(run.run_id),
                    list(state.pending_deletes(run.run_id)), run.dst_in_scope,
                    run.would_copy, run.would_delete, gate.counters, rejections, stopped)
        finally:
            state.close()


def run_shard(task: ShardTask) -> ShardOutcome:
    """What the coordinator submits to Dask. A task is a plain function in a
    worker thread: this is the process edge where the async engine starts."""
    return asyncio.run(shard_outcome(task))
