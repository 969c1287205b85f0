"""``crosswind replicate``: the long-running service that keeps the replica in
step with the primary.

One process per state directory holds the engine lock. The direction comes
from the migration phase (``crosswind.migration``); when the phase flips while
the service runs (a cutover or a rollback), it drains, then starts again in
the new direction. Inside one direction ("an epoch"):

    queue source ──┐
    reconcile ─────┼─► KeyScheduler ─► workers ─► ObjectApplier ─► record, ack
                   │   (per key, coalesced, backoff, breaker-gated)
    row stream (table poll before cutover / change stream after) ─► metasync engines

plus a status publisher (snapshot + heartbeat into the state store every
``status_interval_s``), the local HTTP endpoint (status, metrics, the dashboard)
and the monitor (``live.monitoring``: request stats, alerts, exporters), which
lives as long as the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from crosswind.config import Config
from crosswind.control import ControlQueue, Request
from crosswind.errors import ConfigError, CrosswindError
from crosswind.governance.context import Governance
from crosswind.governance.runs import IntervalLineage
from crosswind.live.breakers import Breakers, Endpoint, GuardedObjectStore
from crosswind.live.changes import Change, ParsedMessage
from crosswind.live.dlq import object_delete_guard
from crosswind.live.lag import LagTracker
from crosswind.live.monitoring import ServiceMonitor
from crosswind.live.objects import ApplyOutcome, ObjectApplier, ReplicaWrites
from crosswind.live.queue_source import QueueSource
from crosswind.live.reconcile import STREAM as RECONCILE_STREAM
from crosswind.live.reconcile import ReconcileResult, reconcile_objects
from crosswind.live.rows import RowStreams
from crosswind.live.scheduler import KeyScheduler
from crosswind.live.status import StatusStore
from crosswind.live.streams import StreamState
from crosswind.live.workers import ApplyWorkers
from crosswind.metasync.context import scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.migration import MigrationStore, Phase
from crosswind.model import Direction
from crosswind.observability.stats import SyncStats
from crosswind.secrets import AUTH_FAILURES, redact
from crosswind.state import StateStore, now_iso
from crosswind.stores.base import ObjectStore
from crosswind.stores.factory import open_object_store
from crosswind.stores.queues import QueueMessage
from crosswind.sync.budget import ByteBudget
from crosswind.sync.engine import StateJournal, abort_leftover_uploads
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import Transfer, TransferSettings

log = logging.getLogger("crosswind.live")

StopReason = Literal["signal", "idle", "phase", "error"]
OBJECT_EVENTS = {Direction.AZURE_TO_AWS: "azure-blob-events",
                 Direction.AWS_TO_AZURE: "s3-events"}
_ENDPOINTS: dict[str, Endpoint] = {"azure": "azure-blob", "aws": "s3"}


#: adds routes to the HTTP endpoint, given a function returning the monitoring document
Dashboard = Callable[[Any, Callable[[], dict[str, Any]]], None]


class SwitchHooks(Protocol):
    """What runs cutovers and rollbacks in the service (``cutover.runner``)."""

    def handles(self, kind: str) -> bool:
        """Is a control request of ``kind`` a switch request?"""
        ...

    def start(self, service: Replicator, request: Request, queue: ControlQueue) -> None:
        """Start it; it finishes the request itself (it may outlive the epoch)."""
        ...

    async def on_status(self, service: Replicator, doc: dict[str, Any]) -> None:
        """Each status tick: rollback triggers after cutover."""
        ...

    def status(self) -> dict[str, Any] | None:
        """The switch under way and the triggers, for the status document."""
        ...

    async def close(self) -> None:
        """The service stops: a switch under way is stopped (journaled)."""
        ...


@dataclass
class ServiceOutcome:
    exit_code: int
    reason: StopReason
    epochs: int
    final_status: dict[str, Any] = field(default_factory=dict)


class Replicator:
    """The service. ``run`` returns when stopped (``stop()``: SIGTERM/SIGINT),
    idle for ``exit_when_idle`` seconds, or on a fatal error."""

    def __init__(self, cfg: Config, *, direction: Direction | None = None,
                 exit_when_idle: float | None = None, switches: SwitchHooks | None = None,
                 dashboard: Dashboard | None = None) -> None:
        self.cfg = cfg
        self.rc = cfg.replicate
        self.asked_direction = direction
        self.exit_when_idle = exit_when_idle
        self._stop = asyncio.Event()
        self.stop_reason: StopReason | None = None
        self.started_at = now_iso()
        #: the epoch running now (None between two, while the direction flips)
        self.epoch: Epoch | None = None
        #: cutovers and rollbacks (``cutover.runner``): they run above the epochs, as a
        #: switch flips the direction under them
        self.switches = switches
        self.state: StateStore | None = None
        #: metrics, alerts and exporters; only reads what the engines count
        self.monitor = ServiceMonitor(cfg)
        #: adds the web dashboard's routes to the HTTP endpoint (``crosswind.web``)
        self.dashboard = dashboard

    def stop(self, reason: StopReason = "signal") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    async def run(self) -> ServiceOutcome:
        state = StateStore(self.cfg.state_dir)
        try:
            state.lock()
            migration = MigrationStore(state)
            record = migration.get()
            if self.asked_direction is not None and self.asked_direction != record.direction:
                raise ConfigError(
                    f"--direction {self.asked_direction.value} disagrees with the migration "
                    f"phase {record.phase.value} (which replicates {record.direction.value})")
            run_id = state.start_run("replicate", record.direction.value, False)
            # Requests a killed service was running: their callers see "abandoned".
            ControlQueue(state).abandon_running()
            epochs = 0
            final: dict[str, Any] = {}
            self.state = state
            try:
                while True:
                    epochs += 1
                    epoch = self.epoch = Epoch(self, state, record.phase, run_id)
                    try:
                        final = await epoch.run()
                    finally:
                        self.epoch = None
                    if self.stop_reason == "phase" and not self._stop.is_set():
                        record = migration.get()
                        log.warning("migration phase is now %s: replicating %s",
                                    record.phase.value, record.direction.value)
                        self.stop_reason = None
                        continue
                    break
            finally:
                if self.switches is not None:
                    # Stopping in the middle of a switch is a crash to it: journaled, and
                    # undone if before its point of no return (see the executor).
                    await self.switches.close()
                await self.monitor.close()
                state.finish_run(run_id, "succeeded" if self.stop_reason != "error"
                                 else "failed", final)
            return ServiceOutcome(0, self.stop_reason or "signal", epochs, final)
        finally:
            state.close()



class Epoch:
    """The service in one direction, until stopped or the phase changes."""

    def __init__(self, service: Replicator, state: StateStore, phase: Phase, run_id: int
                 ) -> None:
        self.service = service
        self.cfg = service.cfg
        self.rc = service.cfg.replicate
        self.state = state
        self.direction = phase.direction
        self.run_id = run_id
        self.status = StatusStore(state)
        self.migration = MigrationStore(state)
        self.ledger = Ledger(state, scope_of(self.cfg))
        self.breakers = Breakers(self.rc.breaker_threshold, self.rc.breaker_reset_s,
                                 requests=service.monitor.requests)
        self.scheduler = KeyScheduler(max_pending=self.rc.max_pending)
        s = self.cfg.sync
        self.keep = KeyFilter(s.include, s.exclude, s.prefix)
        self.guard = object_delete_guard(self.cfg, window_s=self.rc.delete_window_s)
        self.streams: dict[str, StreamState] = {}
        self.queue_source: QueueSource | None = None
        self.rows: RowStreams | None = None
        self.last_reconcile: ReconcileResult | None = None
        self.reconciling = False
        self.replica_in_scope: int | None = None
        self.last_activity = time.monotonic()
        self.started_mono = time.monotonic()
        #: up and replicating (stores checked, streams started)
        self.ready = False
        self.last_validation: dict[str, Any] | None = None
        self.http_url: str | None = None
        self.errors: list[str] = []
        #: validation before write (objects and rows), stewardship, lineage per interval
        self.governance = Governance.open(self.cfg, state)
        self.lineage = IntervalLineage(self.governance, self.cfg, self.direction, run_id,
                                       self._lineage_counts)

    # -- running -------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        stop = self.service._stop
        epoch_stop = asyncio.Event()
        src_side, dst_side = self.direction.source_side, self.direction.destination_side
        self.src_ep: Endpoint = _ENDPOINTS[src_side]
        self.dst_ep: Endpoint = _ENDPOINTS[dst_side]
        src_raw = await open_object_store(self.cfg, src_side)
        dst_raw: ObjectStore | None = None
        http = None
        tasks: list[asyncio.Task[Any]] = []
        workers: list[asyncio.Task[None]] = []
        rows_task: asyncio.Task[None] | None = None
        try:
            dst_raw = await open_object_store(self.cfg, dst_side)
            self.src_raw, self.dst_raw = src_raw, dst_raw
            self.src = GuardedObjectStore(src_raw, self.src_ep, self.breakers)
            self.dst = GuardedObjectStore(dst_raw, self.dst_ep, self.breakers)
            for ep, raw in ((self.src_ep, src_raw), (self.dst_ep, dst_raw)):
                self.service.monitor.requests.track(ep, pool_size=getattr(raw, "pool_size",
                                                                          None))
            await src_raw.check()
            await dst_raw.check(write=True)
            await abort_leftover_uploads(dst_raw, self.state)
            self._build_applier()
            self.streams[RECONCILE_STREAM] = StreamState(
                RECONCILE_STREAM, "objects", f"{self.src.name} ⇄ {self.dst.name}",
                LagTracker(self.rc.lag_window_s))
            await self._open_event_queue()
            await self._open_rows()
            from crosswind.live.http import HttpEndpoint, endpoint_security_of, make_app

            monitor = self.service.monitor
            if self.rc.http != "off":
                dash = self.service.dashboard
                sec = endpoint_security_of(self.cfg, self.rc.http, "[replicate].http")
                http = HttpEndpoint(self.rc.http, make_app(
                    self.status_document, self.problems,
                    metrics=lambda: monitor.metrics_text(self),
                    security=sec, endpoint=f"[replicate].http {self.rc.http}",
                    extend=None if dash is None else
                    (lambda app: dash(app, lambda: monitor.document(self)))), sec)
                await http.start()
                self.http_url = http.url
            # Stop everything when the service stops or the phase changes.
            tasks.append(asyncio.create_task(self._relay(stop, epoch_stop)))
            workers = [asyncio.create_task(self.workers.worker())
                       for _ in range(self.rc.concurrency)]
            if self.queue_source is not None:
                tasks.append(asyncio.create_task(self._guarded_loop(
                    "queue", lambda: self.queue_source.run(epoch_stop))))  # type: ignore[union-attr]
                acker = asyncio.create_task(self.queue_source.acker(epoch_stop))
            else:
                acker = None
            tasks.append(asyncio.create_task(self._guarded_loop(
                "reconcile", lambda: self._reconcile_loop(epoch_stop))))
            tasks.append(asyncio.create_task(self._status_loop(epoch_stop)))
            tasks.append(asyncio.create_task(self._guarded_loop(
                "monitoring", lambda: monitor.run(self, epoch_stop))))
            tasks.append(asyncio.create_task(self._guarded_loop(
                "control", lambda: self._control_loop(epoch_stop))))
            if self.rows is not None:
                rows = self.rows
                rows_task = asyncio.create_task(self._guarded_loop(
                    "rows", lambda: rows.run(epoch_stop)))
            if self.rc.validate_interval_s > 0:
                tasks.append(asyncio.create_task(self._guarded_loop(
                    "validation", lambda: self._validation_loop(epoch_stop))))
            self.ready = True
            self.lineage.open()
            self.publish()
            await epoch_stop.wait()
            self.ready = False
            await self._shutdown(tasks, workers, acker, rows_task)
        finally:
            self.lineage.close(None if sys.exc_info()[0] is None
                               else "the epoch stopped on an error")
            self.governance.close()
            for t in (*tasks, *workers, *([rows_task] if rows_task else [])):
                t.cancel()
            for t in (*tasks, *workers, *([rows_task] if rows_task else [])):
                with contextlib.suppress(BaseException):
                    await t
            if self.queue_source is not None:
                await self.queue_source.queue.close()
            if http is not None:
                await http.stop()
            if dst_raw is not None:
                await dst_raw.close()
            await src_raw.close()
        final = self.status_document(stopped=True)
        self.publish(stopped=True)
        return final

    async def _relay(self, stop: asyncio.Event, epoch_stop: asyncio.Event) -> None:
        await stop.wait()
        epoch_stop.set()

    async def _shutdown(self, tasks: list[asyncio.Task[Any]],
                        workers: list[asyncio.Task[None]], acker: asyncio.Task[None] | None,
                        rows_task: asyncio.Task[None] | None) -> None:
        """Stop taking changes; give in-flight applies (and the row stream's batch)
        the grace to finish; the rest is abandoned (their messages stay
        unacknowledged and come back, the row position was saved after its last
        applied batch)."""
        self.scheduler.close()
        for t in tasks:
            t.cancel()
        finishing = [*workers, *([rows_task] if rows_task is not None else [])]
        if finishing:
            _, late = await asyncio.wait(finishing, timeout=self.rc.shutdown_grace_s)
            for t in late:
                t.cancel()
            for t in late:
                with contextlib.suppress(BaseException):
                    await t
            if late:
                log.warning("shutdown: %d applies abandoned after %.0fs; their changes come "
                            "back on the next start", len(late), self.rc.shutdown_grace_s)
        if acker is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(acker, timeout=5)
            if self.queue_source is not None:
                with contextlib.suppress(CrosswindError):
                    await asyncio.wait_for(self.queue_source.drain_acks(), timeout=5)

    async def _guarded_loop(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """A loop that dies of a bug is logged and started again, not the service."""
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("%s loop failed; restarting it in 5 s", name, exc_info=exc)
                self.errors.append(redact(f"{name}: {type(exc).__name__}: {exc}")[:300])
                del self.errors[:-20]
                await asyncio.sleep(5)

    # -- building ------------------------------------------------------------------
    def _build_applier(self) -> None:
        s = self.cfg.sync
        settings = TransferSettings(s.multipart_threshold, s.part_size, s.part_concurrency,
                                    s.metadata_key_policy, schemas=self.governance.schemas)
        self.sync_stats = SyncStats()
        transfer = Transfer(self.src, self.dst, settings, ByteBudget(s.memory_budget),
                            self.sync_stats, StateJournal(self.state, self.dst.name))
        other = (Direction.AZURE_TO_AWS if self.direction is Direction.AWS_TO_AZURE
                 else Direction.AWS_TO_AZURE)
        # After cutover a write that still reaches Azure is a conflict, never overwritten
        # (CW-4); before it the replica is AWS's and the primary's version wins.
        writes: ReplicaWrites = ("record" if self.direction is Direction.AWS_TO_AZURE
                                 and self.rc.replica_writes == "record" else "overwrite")
        self.applier = ObjectApplier(self.src, self.dst, self.state, self.direction.value,
                                     transfer, self.guard, self._guard_base, self.keep,
                                     attempts=s.attempts, replica_writes=writes,
                                     other_direction=other.value)
        self.workers = ApplyWorkers(self.scheduler, self.applier, self.ledger,
                                    self.direction.value, self.streams,
                                    attempts=self.rc.attempts, run_id=self.run_id,
                                    gate=self._gate, on_applied=self._on_applied,
                                    on_outcome=self._count_replica,
                                    breakers=self.breakers, probe=self._probe)

    async def _probe(self, endpoint: str) -> None:
        for store in (self.src, self.dst):
            if store.endpoint == endpoint:
                await store.check(write=store is self.dst)

    def _on_applied(self, c: Change) -> None:
        src = self.queue_source
        if src is not None and c.stream == src.stream:
            src.sequencers.applied(c.key, c.sequencer)

    def _guard_base(self) -> int:
        """The replica objects in scope, for the delete guard's percentage: as the
        last reconcile listed them, moved by what was copied and deleted since."""
        if self.replica_in_scope is None:
            # Before the first reconcile has listed the replica: what we know we put there.
            row = self.state.db.execute("SELECT count(*) FROM verified WHERE direction=?",
                                        (self.direction.value,)).fetchone()
            self.replica_in_scope = int(row[0])
        return max(0, self.replica_in_scope)

    def _count_replica(self, outcome: ApplyOutcome) -> None:
        self.service.monitor.objects.add(self.direction.value, outcome.result, outcome.size)
        if self.replica_in_scope is None:
            return
        if outcome.result == "copied" and outcome.new_key:
            self.replica_in_scope += 1
        elif outcome.result == "deleted":
            self.replica_in_scope -= 1

    async def _open_event_queue(self) -> None:
        from crosswind.live.breakers import GuardedQueue
        from crosswind.live.events import PoisonMessage, parse_azure_message, parse_s3_message
        from crosswind.stores.factory import open_event_queue

        side = self.direction.source_side
        if not (self.cfg.azure.queue if side == "azure" else self.cfg.aws.sqs_queue_url):
            log.warning("no event queue configured for %s ([azure] queue / [aws] "
                        "sqs_queue_url): changes are found by the reconcile only (every "
                        "%.0f s)", side, self.rc.reconcile_interval_s)
            return
        queue = await open_event_queue(self.cfg, side)
        try:
            await queue.check()
        except BaseException:
            await queue.close()
            raise
        endpoint: Endpoint = "azure-queue" if side == "azure" else "sqs"
        guarded = GuardedQueue(queue, endpoint, self.breakers)
        parse: Callable[[str], ParsedMessage]
        if side == "azure":
            container = self.cfg.azure.container
            account = getattr(queue, "account_name", None)

            def parse(body: str) -> ParsedMessage:
                return parse_azure_message(body, container=container, account=account)
        else:
            bucket = self.cfg.aws.bucket

            def parse(body: str) -> ParsedMessage:
                return parse_s3_message(body, bucket=bucket)
        name = OBJECT_EVENTS[self.direction]
        batch = int(getattr(queue, "max_per_receive", 10))
        src = QueueSource(name, guarded, parse, PoisonMessage, self.scheduler,
                          self._poison, batch=batch,
                          visibility_timeout_s=self.rc.visibility_timeout_s,
                          wait_s=self.rc.receive_wait_s)
        self.queue_source = src
        counters = src.counters
        self.streams[name] = StreamState(
            name, "objects", queue.name, LagTracker(self.rc.lag_window_s),
            backlog=lambda: max(counters.depth or 0, src.outstanding),
            extra=lambda: {"error": counters.error,
                           "events": counters.events, "stale_events": counters.stale,
                           "poison": counters.poison, "ignored": dict(counters.ignored),
                           "messages": {"received": counters.received, "acked": counters.acked,
                                        "outstanding": src.outstanding,
                                        "queue_depth": counters.depth}})

    async def _open_rows(self) -> None:
        """The row streams, when the config names a table and a collection."""
        from crosswind.metasync.runner import opened_row_stores

        if not (self.cfg.azure.table and self.cfg.aws.documentdb_uri):
            return
        async with opened_row_stores(self.cfg, self.direction) as (table, docs):
            await table.check()
            await docs.check()  # fail at start, with one line, not in a retry loop
        self.rows = RowStreams(self.cfg, self.direction, self.ledger, self.guard,
                               self.breakers, self.status, self.run_id,
                               governance=self.governance)
        for st in (self.rows.stream, self.rows.reconcile_stream):
            self.streams[st.name] = st

    # -- applying ------------------------------------------------------------------
    def _gate(self) -> float:
        return max(self.breakers.hold_s(self.src_ep), self.breakers.hold_s(self.dst_ep))

    def _poison(self, m: QueueMessage, reason: str) -> None:
        self.ledger.dlq_put(self.direction.value, "queue-message", m.id, pk=None, rk=None,
                            kind="poison-message", reason=redact(reason)[:500],
                            payload=m.body[:65536], run_id=self.run_id)
        log.warning("poison message %s: %s", m.id, redact(reason)[:200])

    # -- reconcile -----------------------------------------------------------------
    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        interval = self.rc.reconcile_interval_s
        mark = self.status.get_mark(f"reconcile:{self.direction.value}")
        last = datetime.fromisoformat(mark["at"]).timestamp() if mark else 0.0
        while not stop.is_set():
            wait = last + interval - time.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                continue
            last = time.time()
            await self.reconcile_once()

    async def reconcile_once(self) -> ReconcileResult:
        self.reconciling = True
        self.last_activity = time.monotonic()
        try:
            res = await reconcile_objects(
                self.src, self.dst, self.state, self.direction.value, self.keep,
                self.scheduler, drift_grace_s=self.rc.drift_grace_s,
                is_pending=self.scheduler.is_pending)
        except CrosswindError as exc:
            res = ReconcileResult(datetime.now(UTC), datetime.now(UTC), error=redact(str(exc)))
            log.warning("reconcile failed: %s", res.error)
        else:
            self.replica_in_scope = res.replica_in_scope
            if res.drift:
                log.warning("reconcile found %d changes no event had brought", res.drift)
        finally:
            self.reconciling = False
        self.last_reconcile = res
        self.status.mark(f"reconcile:{self.direction.value}", res.as_dict())
        if self.ready:
            self.lineage.roll(res.error)
        return res

    def _lineage_counts(self) -> tuple[int, int, int]:
        """Objects written, bytes moved and rows applied so far (an interval's are
        the difference)."""
        objects = sum(st.applied - st.in_step for st in self.streams.values()
                      if st.kind == "objects")
        rows = sum(st.applied for st in self.streams.values() if st.kind == "rows")
        moved = self.sync_stats.bytes_moved if hasattr(self, "sync_stats") else 0
        return objects, moved, rows

    # -- control requests ----------------------------------------------------------
    async def _control_loop(self, stop: asyncio.Event) -> None:
        queue = ControlQueue(self.state)
        while not stop.is_set():
            request = queue.take()
            if request is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                continue
            self.last_activity = time.monotonic()
            hooks = self.service.switches
            if hooks is not None and hooks.handles(request.kind):
                try:
                    hooks.start(self.service, request, queue)  # it finishes the request
                except CrosswindError as exc:
                    queue.finish(request.id, "failed", {"error": redact(str(exc)),
                                                        "exit_code": exc.exit_code})
                continue
            try:
                result = await self._handle(request, functools.partial(queue.say, request.id))
            except CrosswindError as exc:
                queue.finish(request.id, "failed", {"error": redact(str(exc)),
                                                    "exit_code": exc.exit_code})
            except Exception as exc:
                log.error("control request %s failed", request.kind, exc_info=exc)
                queue.finish(request.id, "failed", {
                    "error": redact(f"internal error {type(exc).__name__}: {exc}"),
                    "exit_code": 70})
            else:
                queue.finish(request.id, "done", result)

    async def _handle(self, request: Request, say: Callable[[str], None]) -> dict[str, Any]:
        if request.kind == "dlq-replay":
            return await self._dlq_replay(request.args, say)
        raise ConfigError(f"this replication service does not know requests of kind "
                          f"{request.kind!r}")

    async def _dlq_replay(self, args: dict[str, Any], say: Callable[[str], None]
                          ) -> dict[str, Any]:
        from crosswind.live.dlq import merged, replay_through
        from crosswind.metasync.repair import already_resolved, replay_items, select_items

        items = select_items(self.ledger, args.get("ids") or [], every=bool(args.get("every")),
                             direction=args.get("direction"), kind=args.get("kind"))
        say(f"replaying {len(items)} entries in the service")
        others = [i for i in items if i.direction != self.direction.value]
        if others:
            raise ConfigError(f"{len(others)} of these entries are {others[0].direction} "
                              f"ones; the service now replicates {self.direction.value} — "
                              "name entries of this direction")
        rows = await replay_items(self.cfg, self.state, self.ledger, items, guard=self.guard)
        objs = await replay_through(self.cfg, self.ledger, self.scheduler, items,
                                    self.direction)
        result = merged(rows, objs)
        result.already_resolved = already_resolved(self.ledger, args.get("ids") or [])
        return result.report()

    # -- status --------------------------------------------------------------------
    async def _status_loop(self, stop: asyncio.Event) -> None:
        next_depth = 0.0
        idle_since: float | None = None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.rc.status_interval_s)
            if stop.is_set():
                return
            now = time.monotonic()
            if self.queue_source is not None and now >= next_depth:
                await self.queue_source.refresh_depth()
                next_depth = now + 5.0
            try:
                self.publish()
                if self.service.switches is not None:
                    await self.service.switches.on_status(self.service,
                                                          self.status_document())
                if self.migration.get().direction is not self.direction:
                    self.service.stop_reason = "phase"
                    stop.set()
                    return
            except Exception as exc:  # the state store is busy: try next tick
                log.warning("could not publish status: %s", exc)
            limit = self.service.exit_when_idle
            if limit is not None:
                if self.is_idle():
                    idle_since = idle_since or now
                    last = max(idle_since, self.last_activity, self.workers.last_activity,
                               self.rows.last_activity if self.rows is not None else 0.0)
                    if now - last >= limit:
                        self.service.stop("idle")
                        return
                else:
                    idle_since = None

    # -- what a switch asks (cutover/controls.py) --------------------------------
    @property
    def phase(self) -> Phase:
        return self.migration.get().phase

    @property
    def last_change_seen(self) -> float:
        """When a change the replica did not have yet last came in (monotonic)."""
        times = [self.started_mono]
        if self.queue_source is not None:
            times.append(self.queue_source.last_fresh)
        if self.rows is not None:
            times.append(self.rows.last_activity)
        return max(times)

    def is_drained(self) -> bool:
        src = self.queue_source
        return (self.scheduler.idle and not self.reconciling
                and (src is None or src.drained())
                and (self.rows is None or (not self.rows.busy and not self.rows.forced)))

    def drain_evidence(self) -> dict[str, Any]:
        src = self.queue_source
        return {"pending_keys": self.scheduler.pending,
                "queue_depth": None if src is None else src.counters.depth,
                "messages_outstanding": None if src is None else src.outstanding,
                "rows_busy": None if self.rows is None else self.rows.busy,
                "lag_p99_s": round(self.lag_p99(), 3)}

    async def refresh_depth(self) -> None:
        if self.queue_source is not None:
            await self.queue_source.refresh_depth()

    async def final_reconcile(self, timeout_s: float) -> int:
        """Objects and rows compared once more (a switch's drain); what it found."""
        res = await self.reconcile_once()
        drift = res.drift if res.error is None else 0
        if res.error is not None:
            raise CrosswindError(f"the final reconcile of objects failed: {res.error}")
        if self.rows is not None:
            before = self.rows.reconciles
            self.rows.reconcile_now()
            deadline = time.monotonic() + timeout_s
            while self.rows.reconciles == before:
                if time.monotonic() > deadline:
                    raise CrosswindError("the final reconcile of rows did not finish in time")
                await asyncio.sleep(0.2)
            drift += int((self.rows.last_reconcile or {}).get("drift") or 0)
        return drift

    async def _validation_loop(self, stop: asyncio.Event) -> None:
        """A sampled validation every ``validate_interval_s``: what the rollback
        trigger "a failed scheduled validation" watches after cutover."""
        from crosswind.validate.run import ValidateOptions, replication_checks, validate

        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.rc.validate_interval_s)
            if stop.is_set():
                return
            try:
                report = await validate(self.cfg, ValidateOptions(
                    self.direction, checks=replication_checks(self.cfg)))
            except CrosswindError as exc:
                self.last_validation = {"run_id": None, "verdict": "error", "at": now_iso(),
                                        "error": redact(str(exc))}
                continue
            self.last_validation = {"run_id": report.get("run_id"),
                                    "verdict": report.get("verdict"), "at": now_iso()}

    def is_idle(self) -> bool:
        src = self.queue_source
        rows = self.rows
        return (self.scheduler.idle and not self.reconciling
                and (src is None or (src.outstanding == 0 and src.last_receive_empty))
                and (rows is None or (not rows.busy and rows.last_reconcile is not None)))

    def slo_target(self) -> float:
        return self.rc.lag_slo_pre_s if self.direction is Direction.AZURE_TO_AWS \
            else self.rc.lag_slo_post_s

    def lag_p99(self) -> float:
        return max((st.lag.window().p99 for st in self.streams.values()), default=0.0)

    def problems(self) -> list[str]:
        out = [f"circuit breaker open: {ep}" for ep, st in self.breakers.states().items()
               if st == "open"]
        if self.rows is not None and self.rows.held:
            out.append(f"row deletes held by the max-delete guard: {self.rows.held}")
        target = self.slo_target()
        p99, oldest = self.lag_p99(), self.scheduler.oldest_pending_s()
        if p99 > target:
            out.append(f"lag p99 {p99:.1f}s over the SLO of {target:g}s")
        if oldest > target:
            out.append(f"oldest pending change waits {oldest:.1f}s, over the SLO of "
                       f"{target:g}s")
        return out

    def snapshot(self) -> dict[str, Any]:
        target = self.slo_target()
        rec = self.last_reconcile
        mark = None if rec is not None else self.status.get_mark(
            f"reconcile:{self.direction.value}")
        return {
            "direction": self.direction.value,
            "lag_p99_s": round(self.lag_p99(), 3),
            "streams": [st.as_dict() for st in self.streams.values()],
            "pending": {"keys": self.scheduler.pending, "in_flight": self.scheduler.in_flight,
                        "oldest_s": round(self.scheduler.oldest_pending_s(), 3)},
            "breakers": self.breakers.states(),
            "breaker_details": self.breakers.details(),
            "last_reconcile": self._reconcile_summary(rec.as_dict() if rec is not None
                                                      else mark),
            "reconciling": self.reconciling,
            "slo": {"target_s": target, "breached": bool(self.problems_lag())},
            "validation": self.last_validation,
            "switch": None if self.service.switches is None else self.service.switches.status(),
            "deletes": {"window_s": self.guard.window_s, "allowed_in_window":
                        self.guard.counted, "max_count": self.guard.max_count,
                        "max_percent": self.guard.max_percent, "base": self._guard_base()},
            "http": self.http_url,
            "errors": list(self.errors),
            "governance": self.governance.status(),
            # refusals of credentials per endpoint and principal (crosswind.secrets)
            "auth_failures": AUTH_FAILURES.snapshot(),
            # monitoring: appliers busy, store requests, objects applied, alerts
            "workers": {"concurrency": self.rc.concurrency, "busy": self.scheduler.in_flight},
            "requests": self.service.monitor.requests.as_dict(),
            "objects": self.service.monitor.objects.as_dict(),
            "alerts": self.service.monitor.status(),
        }

    def _reconcile_summary(self, objects: dict[str, Any] | None) -> dict[str, Any] | None:
        rows = self.rows.last_reconcile if self.rows is not None else None
        if objects is None and rows is None:
            return None
        parts = [p for p in (objects, rows) if p]
        return {"at": max(str(p.get("at")) for p in parts),
                "drift": sum(int(p.get("drift") or 0) for p in parts),
                "found": int((objects or {}).get("found") or 0),
                "drift_examples": (objects or {}).get("drift_examples", []),
                "objects": objects, "rows": rows}

    def problems_lag(self) -> list[str]:
        return [p for p in self.problems() if "SLO" in p]

    def status_document(self, stopped: bool = False) -> dict[str, Any]:
        from crosswind.live.report import status_document

        return status_document(
            phase=self.phase, running=not stopped, pid=os.getpid(),
            since=self.service.started_at, snapshot=self.snapshot(),
            dlq_open=self.ledger.dlq_open_count())

    def publish(self, stopped: bool = False) -> None:
        self.status.publish(pid=os.getpid(), started_at=self.service.started_at,
                            heartbeat_s=self.rc.status_interval_s,
                            snapshot=self.snapshot(), stopped=stopped)
