"""The metadata-row streams of the replication service, on the metasync engines.

* Before cutover (Azure Table → DocumentDB): Azure Tables have no change feed,
  so the table is polled every ``table_poll_interval_s`` for rows whose
  Timestamp is at or after the last poll's start less ``table_poll_overlap_s``
  (``ForwardSync.scan``: the watermark is the poll's start by Azure's clock, so
  a row changed during a long poll is read by the next). Lag is measured from
  each written row's Timestamp.
* After cutover (DocumentDB → Azure Table): the DocumentDB change stream, made
  continuous (``ReverseSync`` following, its resume token saved after each
  applied batch); lag from each change's server time. History lost (error 286,
  an invalidate) falls back to a reconcile, as in the one-shot sync.
* Every ``reconcile_interval_s`` a full reconcile of both sides (deletes only with
  ``[metadata] propagate_deletes`` before cutover; after cutover the stream's
  deletes always apply, under the guard), run in the same loop as the poll or the
  stream so the two never race on a row. What it writes or deletes is drift.

Deletes go through the service's one sliding-window guard. When it holds row
deletes back, nothing after them is acknowledged (no watermark or stream position
moves past them) and the stream waits, retrying every ``_HELD_RETRY_S``, until
the window allows them or an operator raises the limits; status says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from crosswind.config import Config
from crosswind.deleteguard import DeleteGuard
from crosswind.entities import Entity
from crosswind.errors import ChangeHistoryLost, CrosswindError
from crosswind.governance.context import Governance
from crosswind.live.breakers import Breakers, GuardedRecordStore
from crosswind.live.status import StatusStore
from crosswind.live.streams import StreamState
from crosswind.metasync.context import MetaOptions, RunContext
from crosswind.metasync.forward import ForwardSync
from crosswind.metasync.ledger import Ledger
from crosswind.metasync.reverse import ReverseSync
from crosswind.metasync.runner import opened_row_stores
from crosswind.model import Direction
from crosswind.secrets import redact
from crosswind.stores.documentdb import DocumentDBStore, RecordChange

log = logging.getLogger("crosswind.live")

FORWARD_STREAM = "table-poll"
REVERSE_STREAM = "docdb-changes"
RECONCILE_STREAM = "row-reconcile"
_HELD_RETRY_S = 30.0


def _ts(e: Entity) -> float | None:
    return None if e.timestamp is None else e.timestamp.micro_datetime.timestamp()


class RowStreams:
    """Both row streams of one direction; ``run`` until ``stop``."""

    def __init__(self, cfg: Config, direction: Direction, ledger: Ledger, guard: DeleteGuard,
                 breakers: Breakers, status: StatusStore, run_id: int | None, *,
                 governance: Governance | None = None) -> None:
        self.cfg = cfg
        self.governance = governance or Governance.off()
        self.rc = cfg.replicate
        self.direction = direction
        self.ledger = ledger
        self.guard = guard
        self.breakers = breakers
        self.status = status
        self.run_id = run_id
        name = FORWARD_STREAM if direction is Direction.AZURE_TO_AWS else REVERSE_STREAM
        from crosswind.live.lag import LagTracker

        self.stream = StreamState(name, "rows", "", LagTracker(self.rc.lag_window_s),
                                  extra=self._extra)
        self.reconcile_stream = StreamState(RECONCILE_STREAM, "rows", "",
                                            LagTracker(self.rc.lag_window_s))
        self.held: str | None = None
        self.last_reconcile: dict[str, Any] | None = status.get_mark(self._mark)
        self.last_activity = time.monotonic()
        self.busy = False
        self.forced = False
        self.polls = 0
        self.reconciles = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def _mark(self) -> str:
        return f"row-reconcile:{self.direction.value}"

    def _extra(self) -> dict[str, Any]:
        return {"polls": self.polls, "reconciles": self.reconciles,
                "deletes_held": self.held, "errors": self.errors,
                "last_error": self.last_error,
                # failing right now (the cutover's streams gate reads it)
                "error": self.last_error if self.errors else None}

    # -- shared --------------------------------------------------------------------
    def reconcile_now(self) -> None:
        """Reconcile at the next chance (a switch's final reconcile)."""
        self.forced = True

    def _reconcile_due(self) -> bool:
        if self.forced:
            return True
        last = self.last_reconcile
        if not last:
            return True
        at = datetime.fromisoformat(str(last["at"])).timestamp()
        return time.time() >= at + self.rc.reconcile_interval_s

    def _record_reconcile(self, stats_before: tuple[int, int], stats: Any, error: str | None
                          ) -> None:
        drift = (stats.written - stats_before[0]) + (stats.deleted - stats_before[1])
        self.last_reconcile = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "drift": drift, "error": error}
        self.status.mark(self._mark, self.last_reconcile)
        self.reconciles += 1
        self.forced = False
        if drift:
            log.warning("row reconcile found %d rows no poll or change had brought", drift)

    def _rows_written(self, st: StreamState) -> Callable[[list[Entity]], None]:
        def seen(rows: list[Entity]) -> None:
            now = time.time()
            for e in rows:
                st.applied += 1
                st.lag.record_event(_ts(e), now)
                if e.timestamp is not None:
                    st.last_event_at = max(st.last_event_at or 0.0, _ts(e) or 0.0)
            st.last_applied_at = now
            self.last_activity = time.monotonic()
        return seen

    def _changes_applied(self, batch: list[RecordChange]) -> None:
        now = time.time()
        st = self.stream
        for ch in batch:
            st.applied += 1
            at = ch.at.timestamp() if ch.at is not None else None
            st.lag.record_event(at, now)
            if at is not None:
                st.last_event_at = max(st.last_event_at or 0.0, at)
        st.last_applied_at = now
        self.last_activity = time.monotonic()

    def _failed(self, exc: BaseException) -> float:
        """Note a failed round; how long to wait before the next (full jitter)."""
        import random

        self.errors += 1
        self.last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
        log.warning("%s: %s", self.stream.name, self.last_error)
        return random.uniform(0.5, min(30.0, 2.0 ** min(self.errors, 5)))

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    # -- the loops -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        async with opened_row_stores(self.cfg, self.direction) as (table, docs):
            self.stream.source = table.name if self.direction is Direction.AZURE_TO_AWS \
                else docs.name
            self.reconcile_stream.source = f"{table.name} ⇄ {docs.name}"
            gtable = GuardedRecordStore(table, "azure-tables", self.breakers)
            gdocs = GuardedRecordStore(docs, "documentdb", self.breakers)
            if self.direction is Direction.AZURE_TO_AWS:
                await docs.ensure_index()
                await self._forward(stop, gtable, gdocs)
            else:
                await self._reverse(stop, docs, gtable)

    def _ctx(self, **overrides: Any) -> RunContext:
        opts = MetaOptions.from_config(self.cfg, self.direction)
        opts = dataclasses.replace(opts, **overrides)
        return RunContext(self.ledger, self.run_id, opts, guard=self.guard,
                          governance=self.governance)

    async def _forward(self, stop: asyncio.Event, table: GuardedRecordStore,
                       docs: GuardedRecordStore) -> None:
        while not stop.is_set():
            started = time.monotonic()
            wait = self.rc.table_poll_interval_s
            self.busy = True
            try:
                if self._reconcile_due():
                    ctx = self._ctx(propagate_deletes=False)
                    fwd = ForwardSync(table, docs, ctx)
                    fwd.on_written = self._rows_written(self.reconcile_stream)
                    await fwd.reconcile(deletes=self.cfg.metadata.propagate_deletes)
                    self.held = fwd.delete_blocked
                    self._record_reconcile((0, 0), ctx.stats, fwd.delete_blocked)
                else:
                    ctx = self._ctx(propagate_deletes=False, full=False,
                                    overlap_s=self.rc.table_poll_overlap_s)
                    fwd = ForwardSync(table, docs, ctx)
                    fwd.on_written = self._rows_written(self.stream)
                    await fwd.scan()
                    self.polls += 1
                self.stream.failed += ctx.stats.failed
                self.errors = 0
            except CrosswindError as exc:
                wait = self._failed(exc)
            finally:
                self.busy = False
            await self._sleep(stop, max(0.0, wait - (time.monotonic() - started)))

    async def _reverse(self, stop: asyncio.Event, docs: DocumentDBStore,
                       table: GuardedRecordStore) -> None:
        ctx = self._ctx(follow=True)
        if ctx.opts.enable_change_streams:
            await docs.enable_change_streams()
        feed = None
        rev = ReverseSync(docs, table, ctx)
        rev.on_batch = self._changes_applied
        try:
            while not stop.is_set():
                try:
                    if feed is None:
                        self.busy = True
                        rev.delete_blocked = None
                        feed = await rev._open()  # a reconcile if there is no valid position
                        self.busy = False
                    if self._reconcile_due() and not rev.delete_blocked:
                        self.busy = True
                        before = (ctx.stats.written, ctx.stats.deleted)
                        await rev.reconcile("periodic reconcile")
                        self._record_reconcile(before, ctx.stats, rev.delete_blocked)
                        self.busy = False
                    if rev.delete_blocked:
                        self.held = rev.delete_blocked
                        # Nothing after the held deletes is acknowledged: read them
                        # again later, when the guard's window may allow them.
                        await feed.close()
                        feed = None
                        await self._sleep(stop, _HELD_RETRY_S)
                        continue
                    self.held = None
                    await rev._follow(feed, until=lambda: stop.is_set()
                                      or self._reconcile_due() or bool(rev.delete_blocked))
                    self.stream.failed = ctx.stats.failed
                    self.errors = 0
                except ChangeHistoryLost as exc:
                    if feed is not None:
                        await feed.close()
                    self.busy = True
                    feed = await rev._reconciled_feed(f"history lost mid-stream: {exc}")
                    self.busy = False
                except CrosswindError as exc:
                    self.busy = False
                    await self.breakers.note("documentdb", exc)  # the change stream's
                    if feed is not None:
                        with contextlib.suppress(Exception):
                            await feed.close()
                        feed = None
                    await self._sleep(stop, self._failed(exc))
        finally:
            if feed is not None:
                await feed.close()
