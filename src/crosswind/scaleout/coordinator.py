"""The coordinator of a scale-out sync: lists, cuts shards, hands them to Dask,
and is the only writer of the state store.

``DistributedRun`` is a ``SyncRun`` whose march does not copy: it cuts the
merged listing into shards (``shards.py``) and keeps ``shards_per_worker`` of
them per worker on the cluster, submitting the next as each one comes back, so
a fast worker takes more shards and the listing is read only as far ahead as
the cluster works (DistCp's dynamic strategy). Each outcome is written to the
state store as it arrives (verified copies, failures, pending deletes); the
rest of the run is ``SyncRun``'s own: leftover uploads first, the max-delete
guard over the whole run's numbers and the deletes at the end, the run record
and the report. A worker that dies loses nothing: Dask runs its shards again
elsewhere, and a shard's copies are recorded only when its outcome arrives. A
coordinator that dies leaves what arrived recorded; the next run (with or
without workers) skips those copies and checks the rest, as after any crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from distributed import Client, Future

from crosswind.config import Config, ScaleoutConfig
from crosswind.errors import RUN_STOPPED_EXIT, CrosswindError
from crosswind.governance.registry import Registry
from crosswind.model import Direction
from crosswind.observability.stats import SyncStats
from crosswind.scaleout.cluster import dask_client, worker_count
from crosswind.scaleout.merge import add_gate_counters, add_stats, first_by_key
from crosswind.scaleout.shards import Shard, ShardCutter, balanced_limits
from crosswind.scaleout.spec import WorkersSpec
from crosswind.scaleout.task import Schemas, ShardOutcome, ShardTask, run_shard
from crosswind.state import StateStore
from crosswind.stores.base import ObjectStore
from crosswind.sync.engine import MAX_REPORTED_FAILURES, SyncRun
from crosswind.sync.march import Match, march
from crosswind.sync.objects import sync_objects
from crosswind.sync.result import SyncOptions, SyncResult

log = logging.getLogger("crosswind.scaleout")

#: examples of would-copy / would-delete a dry run's report keeps, as the engine
_EXAMPLES = 100
#: keys read ahead at most before the first shard is cut (a big cluster's slots
#: times the shard size could otherwise hold a large part of the listing)
READ_AHEAD_MAX = 100_000


class ShardStopped(CrosswindError):
    """What stopped a shard early, as the worker saw it (its message and exit code)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ShardLost(CrosswindError):
    """A shard that could not be run: its workers kept dying, or the task failed."""

    exit_code = RUN_STOPPED_EXIT


class DistributedRun(SyncRun):
    def __init__(self, src: ObjectStore, dst: ObjectStore, state: StateStore,
                 options: SyncOptions, stats: SyncStats | None, *, client: Client,
                 cfg: Config, direction: Direction, schemas: Schemas,
                 on_submit: Callable[[ShardTask], None] | None = None,
                 on_outcome: Callable[[ShardOutcome], None] | None = None) -> None:
        super().__init__(src, dst, state, options, stats)
        self.client = client
        self.cfg, self.direction = cfg, direction
        self.settings: ScaleoutConfig = cfg.scaleout
        self.schemas = schemas
        #: test seams: every task as it is submitted, every outcome as it is recorded
        self.on_submit, self.on_outcome = on_submit, on_outcome
        self.shards = 0
        #: Dask keys are cluster-wide: two coordinators (other state directories,
        #: the same run id) on one cluster must never share a task
        self._token = uuid.uuid4().hex[:12]
        self._workers, self._workers_checked = 0, -1e9
        # What a worker is sent: the options without the coordinator's governance
        # (open on its state store); the worker builds its own gate
        self._task_options = ShardTask.ship(options)

    def _task(self, shard: Shard) -> ShardTask:
        return ShardTask(self.cfg, self.direction.value, self._task_options, shard,
                         self.cfg.governance.enforce, self.schemas)

    async def _slots(self) -> int:
        """Shards to keep on the cluster: per worker, as many workers as it has now
        (asked again every few seconds: workers may join or leave mid-run)."""
        now = time.monotonic()
        if now >= self._workers_checked + 5.0:
            self._workers, self._workers_checked = await worker_count(self.client), now
        return max(1, self._workers) * self.settings.shards_per_worker

    async def _march_and_copy(self) -> None:
        src, dst, records = self._listings()
        st = self.settings
        cutter = ShardCutter(st.shard_objects, st.shard_bytes)
        running: dict[asyncio.Task[ShardOutcome], Future[ShardOutcome]] = {}
        # Read ahead what the cluster takes at once before cutting anything: if the
        # listing ends within it, it is cut into that many shards (balanced_limits),
        # not into one or two full ones that leave the other workers idle.
        slots = await self._slots()
        ahead: list[Match] | None = []
        ahead_objects = min(slots * st.shard_objects, READ_AHEAD_MAX)
        ahead_bytes = slots * st.shard_bytes
        held_bytes = 0
        try:
            async for m in march(src, dst, records):
                if ahead is not None:
                    ahead.append(m)
                    held_bytes += m.src.size if m.src is not None else 0
                    if len(ahead) < ahead_objects and held_bytes < ahead_bytes:
                        continue
                    await self._cut(ahead, cutter, running)
                    ahead = None
                else:
                    shard = cutter.add(m)
                    if shard is not None:
                        await self._submit(shard, running)
                if self.breaker.tripped is not None:
                    break
            if ahead is not None and self.breaker.tripped is None:
                # The whole listing fitted: cut it evenly over the slots.
                cutter = ShardCutter(*balanced_limits(
                    len(ahead), held_bytes, slots, st.shard_objects, st.shard_bytes))
                await self._cut(ahead, cutter, running)
            if self.breaker.tripped is None:
                last = cutter.finish()
                if last.count:
                    await self._submit(last, running)
            self.stats.listing_done = True
            while running and self.breaker.tripped is None:
                await self._collect(running)
        finally:
            if running:
                # Stopped early (a shard's endpoint down, Ctrl-C, a lost shard): the
                # others are not waited for; what they copied is checked next run.
                for t in running:
                    t.cancel()
                await self.client.cancel(list(running.values()))  # type: ignore[no-untyped-call]

    async def _cut(self, matches: list[Match], cutter: ShardCutter,
                   running: dict[asyncio.Task[ShardOutcome], Future[ShardOutcome]]) -> None:
        for m in matches:
            shard = cutter.add(m)
            if shard is not None:
                await self._submit(shard, running)
            if self.breaker.tripped is not None:
                return

    async def _submit(self, shard: Shard, running: dict[asyncio.Task[ShardOutcome],
                                                       Future[ShardOutcome]]) -> None:
        while len(running) >= await self._slots():
            await self._collect(running)
            if self.breaker.tripped is not None:
                return
        task = self._task(shard)
        if self.on_submit is not None:
            self.on_submit(task)
        key = f"crosswind-shard-{self._token}-{self.run_id}-{shard.index}"
        fut: Future[ShardOutcome] = self.client.submit(run_shard, task, key=key, pure=False)
        running[asyncio.ensure_future(self._result(fut, shard))] = fut
        self.shards += 1

    async def _result(self, fut: Future[ShardOutcome], shard: Shard) -> ShardOutcome:
        try:
            outcome: ShardOutcome = await fut
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # KilledWorker (its workers kept dying) or a worker that cannot run
            # the task (e.g. a tcp:// worker without crosswind installed)
            raise ShardLost(f"shard {shard.index} {shard.range} could not be run: "
                            f"{type(exc).__name__}: {exc}") from None
        return outcome

    async def _collect(self, running: dict[asyncio.Task[ShardOutcome],
                                           Future[ShardOutcome]]) -> None:
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            running.pop(t)
            self._absorb(t.result())

    def _absorb(self, o: ShardOutcome) -> None:
        """One shard's outcome into the run: the state store first (this process
        is its only writer), then the counters and the report's lists."""
        state, run_id = self.state, self.run_id
        state.record_verified_many(self.opts.direction, o.records, run_id)
        for f in o.failures:
            state.record_failure(run_id, f["key"], f["kind"], f["reason"])
        for key, etag, size in o.pending_deletes:
            state.add_pending_delete(run_id, key, etag, size)
        add_stats(self.stats, o.stats)
        self._dst_in_scope += o.dst_in_scope
        self.failures = first_by_key(self.failures, o.failures, MAX_REPORTED_FAILURES)
        self.would_copy = first_by_key(self.would_copy, o.would_copy, _EXAMPLES)
        self.would_delete = sorted(self.would_delete + o.would_delete)[:_EXAMPLES]
        gate = self.opts.governance.schemas
        add_gate_counters(gate.counters, o.schema_counters)
        if gate.on_reject is not None:
            for r in o.rejections:
                gate.on_reject(r.exception())
        if o.stopped is not None and self.breaker.tripped is None:
            kind, message, code = o.stopped
            log.warning("shard %d stopped early (%s): %s", o.index, kind, message)
            self.breaker.tripped = ShardStopped(message, code)
        if self.on_outcome is not None:
            self.on_outcome(o)


def latest_schemas(state: StateStore, enforce: str) -> Schemas:
    """The registry's latest versions, read once for the run's tasks."""
    if enforce == "off":
        return {}
    return {s: (v.version, v.schema) for s, v in Registry(state).latest_all().items()}


async def sync_objects_distributed(
    cfg: Config, direction: Direction, options: SyncOptions, workers: WorkersSpec,
    stats: SyncStats | None = None, **seams: Any,
) -> SyncResult:
    """``crosswind.sync.objects.sync_objects`` with the shards on ``workers``: the
    same lock, governance, stores, preflight and lineage, another runner."""

    async def on_cluster(src: ObjectStore, dst: ObjectStore, state: StateStore,
                         opts: SyncOptions) -> SyncResult:
        schemas = latest_schemas(state, cfg.governance.enforce)
        async with dask_client(workers, cfg.scaleout.connect_timeout_s) as client:
            run = DistributedRun(src, dst, state, opts, stats, client=client, cfg=cfg,
                                 direction=direction, schemas=schemas, **seams)
            result = await run.run()
            log.info("%d shards on %s", run.shards, workers)
            return result

    return await sync_objects(cfg, direction, options, stats, runner=on_cluster)
