"""One object sync run: list both sides, march, plan, transfer, then deletes.

Listing, deciding and transferring overlap: copies start as soon as the march
reaches them, through a bounded queue, so memory does not grow with the
estate. Deletes are held back (in the state store) until both listings have
finished and the max-delete guard has passed; a listing that fails part-way
therefore never turns into deletes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from crosswind.deleteguard import DeleteGuard
from crosswind.errors import (
    RUN_STOPPED_EXIT,
    AuthError,
    CrosswindError,
    DeleteLimitExceeded,
    EndpointUnreachable,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    TransientError,
)
from crosswind.model import ObjectMeta, ObjectProps
from crosswind.observability.stats import SyncStats
from crosswind.props_compare import props_differences
from crosswind.secrets import redact
from crosswind.state import RunStatus, StateStore, VerifiedCopy
from crosswind.stores.base import ObjectStore
from crosswind.sync.budget import ByteBudget
from crosswind.sync.filters import KeyFilter
from crosswind.sync.march import Match, march
from crosswind.sync.plan import UNPROVEN, Action, decide, mtime_of
from crosswind.sync.report import sync_report
from crosswind.sync.result import SyncOptions, SyncResult
from crosswind.sync.transfer import Transfer, UploadJournal

log = logging.getLogger("crosswind.sync")

# A run stops when this many objects in a row fail because an endpoint is
# down or refuses the credentials: the rest would only fail the same way.
BREAKER_THRESHOLD = 10
MAX_REPORTED_FAILURES = 1000


class _Breaker:
    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.consecutive = 0
        self.tripped: CrosswindError | None = None

    def success(self) -> None:
        self.consecutive = 0

    def failure(self, exc: CrosswindError) -> None:
        # Transient errors reach us only after the SDK's own retries gave up.
        if isinstance(exc, (EndpointUnreachable, AuthError, TransientError)):
            self.consecutive += 1
            if self.consecutive >= self.threshold and self.tripped is None:
                self.tripped = exc
        else:
            self.consecutive = 0


async def _filtered(
    items: AsyncIterable[ObjectMeta], keep: KeyFilter, stats: SyncStats, side: str
) -> AsyncIterator[ObjectMeta]:
    # Per-key work here is paid on every key of both listings: keep it minimal.
    everything = keep.selects_all
    source = side == "source"
    async for m in items:
        if source:
            stats.listed_source += 1
        else:
            stats.listed_destination += 1
        if everything or keep(m.key):
            yield m


async def abort_leftover_uploads(dst: ObjectStore, state: StateStore) -> None:
    """Multipart uploads a crashed run left open: never visible, but billed.
    Recorded ones by their id; one a run was killed before it could record
    (only its intent is) by listing that key's open uploads."""
    for key, token in state.upload_intents(dst.name):
        try:
            n = await dst.abort_uploads_of(key)
        except CrosswindError as exc:
            # E.g. no ListMultipartUploads right: keep it, try next run.
            log.warning("could not look for unrecorded uploads of %s yet: %s", key, exc)
            continue
        if n:
            log.info("aborted %d unrecorded upload(s) of %s", n, key)
        state.upload_intent_done(dst.name, key, token)
    for key, upload_id in state.open_uploads(dst.name):
        try:
            await dst.abort_upload(key, upload_id)
        except NotFound:
            pass  # already gone
        except CrosswindError as exc:
            # Not worth failing the run (e.g. no AbortMultipartUpload right):
            # keep the record and try again next time.
            log.warning("could not abort upload %s of %s yet: %s", upload_id, key, exc)
            continue
        state.upload_ended(dst.name, key, upload_id)


class VerifiedRecords:
    """Verified copies on their way to the state store, written in batches: one
    transaction per ``max_batch`` copies or ``max_delay_s``, whichever comes
    first, and everything at the end of the march (also when the run stops).
    A copy is only ever recorded after it was verified; what a killed process
    had not written yet is simply not recorded, so the next run checks those
    objects again (a HEAD where both MD5s are known, else a copy), as for any
    object without a record."""

    def __init__(self, state: StateStore, direction: str, run_id: int, *,
                 max_batch: int = 100, max_delay_s: float = 0.25) -> None:
        self.state, self.direction, self.run_id = state, direction, run_id
        self.max_batch, self.max_delay_s = max_batch, max_delay_s
        self._pending: list[VerifiedCopy] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, copy: VerifiedCopy) -> None:
        self._pending.append(copy)
        if len(self._pending) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        self.state.record_verified_many(self.direction, pending, self.run_id)


class StateJournal(UploadJournal):
    """Uploads in flight, in the state store (see ``StateStore.upload_intended``)."""

    def __init__(self, state: StateStore, store: str) -> None:
        self.state, self.store = state, store

    def intend(self, key: str) -> str:
        return self.state.upload_intended(self.store, key)

    def started(self, key: str, upload_id: str, intent: str) -> None:
        self.state.upload_started(self.store, key, upload_id, intent)

    def ended(self, key: str, upload_id: str) -> None:
        self.state.upload_ended(self.store, key, upload_id)


class SyncRun:
    def __init__(
        self,
        src: ObjectStore,
        dst: ObjectStore,
        state: StateStore,
        options: SyncOptions,
        stats: SyncStats | None = None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.state = state
        self.opts = options
        self.stats = stats or SyncStats()
        self.budget = ByteBudget(options.memory_budget)
        # With few workers, fewer failures in a row already mean every worker saw it.
        self.breaker = _Breaker(max(3, min(BREAKER_THRESHOLD, options.concurrency)))
        self.run_id = 0
        self._started_at = time.time()
        #: destination entries inside the prefix and filters: the delete guard's base
        self._dst_in_scope = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        #: set when the run ends early: queued work is dropped, not started
        self._stopping = False
        self.failures: list[dict[str, str]] = []
        self.would_copy: list[dict[str, Any]] = []
        self.would_delete: list[str] = []
        self.transfer = Transfer(
            src, dst, options.transfer, self.budget, self.stats,
            journal=StateJournal(state, dst.name),
        )
        self.records = VerifiedRecords(state, options.direction, 0)

    # -- the run -----------------------------------------------------------------
    async def run(self) -> SyncResult:
        started = datetime.now(UTC)
        self._started_at = started.timestamp()
        self.run_id = self.state.start_run("objects", self.opts.direction, self.opts.dry_run)
        self.records.run_id = self.run_id
        status: RunStatus = "succeeded"
        error: str | None = None
        exit_code = 0
        try:
            if not self.opts.dry_run:
                await self._abort_leftover_uploads()
            await self._march_and_copy()
            if self.breaker.tripped is not None:
                raise self.breaker.tripped
            await self._deletes()
            if self.stats.failed.count:
                status, exit_code = "failed", 1
        except DeleteLimitExceeded as exc:
            status, error, exit_code = "aborted", str(exc), exc.exit_code
        except CrosswindError as exc:
            # The run stopped early (an endpoint down, credentials refused, a
            # listing out of order, ...). Exit 1 is "some objects failed" only.
            status, error = "failed", redact(str(exc))
            exit_code = exc.exit_code if exc.exit_code != 1 else RUN_STOPPED_EXIT
        except asyncio.CancelledError:
            status, error, exit_code = "interrupted", "interrupted", 130
            raise
        finally:
            result = SyncResult(
                self.run_id, status, self.stats, self.src.name, self.dst.name, self.opts,
                started, datetime.now(UTC), self.failures, error,
                self.would_copy, self.would_delete, exit_code,
            )
            self.state.finish_run(self.run_id, status, sync_report(result))
        return result

    async def _abort_leftover_uploads(self) -> None:
        await abort_leftover_uploads(self.dst, self.state)

    def _listings(self) -> tuple[AsyncIterator[ObjectMeta], AsyncIterator[ObjectMeta],
                                 Iterable[VerifiedCopy]]:
        """What the march merges: both listings (filtered) and the verified records,
        all in key order. A scale-out shard replaces them with its key range's."""
        keep = self.opts.filter
        prefix = keep.prefix
        src = _filtered(self.src.list(prefix), keep, self.stats, "source")
        dst = _filtered(self.dst.list(prefix), keep, self.stats, "destination")
        return src, dst, self.state.iter_verified(self.opts.direction, prefix)

    async def _march_and_copy(self) -> None:
        src, dst, records = self._listings()
        queue: asyncio.Queue[tuple[Action, Match] | None] = asyncio.Queue(
            self.opts.concurrency * 4)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.opts.concurrency)]
        try:
            await self._march_copy_work(queue, workers, src, dst, records)
        finally:
            # Whatever ended the march, what was verified is recorded now.
            self.records.flush()

    async def _march_copy_work(self, queue: asyncio.Queue[tuple[Action, Match] | None],
                               workers: list[asyncio.Task[None]],
                               src: AsyncIterator[ObjectMeta], dst: AsyncIterator[ObjectMeta],
                               records: Iterable[VerifiedCopy]) -> None:
        try:
            try:
                await self._plan_into(march(src, dst, records), queue)
            except BaseException:
                # The listing failed (or the run was cancelled): what is queued
                # must not start. Copies in flight finish and are recorded.
                self._stopping = True
                raise
            self.stats.listing_done = True
            # Normal end: the workers copy what is queued, then meet a sentinel each.
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            # Ctrl-C (or a caller's cancel), while listing or while the last
            # queued copies run: start nothing more and stop the copies in
            # flight now (their uploads are aborted); the next run resumes.
            await self._stop_workers(workers, cancel_copies=True)
            raise
        except BaseException:
            await self._stop_workers(workers, cancel_copies=False)
            raise

    async def _plan_into(self, matches: AsyncIterator[Match],
                         queue: asyncio.Queue[tuple[Action, Match] | None]) -> None:
        tracks = self.src.capabilities.etag_tracks_metadata
        async for m in matches:
            if self.breaker.tripped is not None:
                break
            if m.dst is not None:
                self._dst_in_scope += 1
            d = decide(m, delete=self.opts.delete, etag_tracks_metadata=tracks)
            if d.action is Action.COPY:
                assert m.src is not None
                self.stats.planned.add(m.src.size)
                self.stats.copy_reasons[d.reason] += 1
                if self.opts.dry_run:
                    if len(self.would_copy) < 100:
                        self.would_copy.append({"key": m.key, "size": m.src.size,
                                                "reason": d.reason})
                else:
                    await queue.put((Action.COPY, m))
            elif d.action is Action.CHECK:
                await queue.put((Action.CHECK, m))  # read-only, so dry runs check too
            elif d.action is Action.SKIP:
                assert m.src is not None
                self.stats.skipped.add(m.src.size)
            elif d.action is Action.DELETE:
                assert m.dst is not None
                self.stats.to_delete.add(m.dst.size)
                if self.opts.dry_run:
                    if len(self.would_delete) < 100:
                        self.would_delete.append(m.key)
                else:
                    self.state.add_pending_delete(self.run_id, m.key, m.dst.etag, m.dst.size)
            else:
                assert m.dst is not None
                self.stats.extra.add(m.dst.size)

    async def _stop_workers(self, workers: list[asyncio.Task[None]], *,
                            cancel_copies: bool) -> None:
        """Workers stop taking work at once, whatever is still queued; the copies
        in flight are cancelled or, with ``cancel_copies=False``, awaited."""
        self._stopping = True
        for w in workers:
            w.cancel()
        copies = list(self._in_flight)
        if cancel_copies:
            for t in copies:
                t.cancel()
        await asyncio.gather(*workers, *copies, return_exceptions=True)

    async def _worker(self, queue: asyncio.Queue[tuple[Action, Match] | None]) -> None:
        while (item := await queue.get()) is not None:
            if self._stopping or self.breaker.tripped is not None:
                continue  # drain without copying; the run is stopping
            action, m = item
            task = asyncio.create_task(self._job(action, m))
            # The set tracks the copy, not the worker: a worker cancelled while
            # it waits must not lose sight of a copy that is still running.
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            await asyncio.wait({task})
            if self.breaker.tripped is not None:
                # The endpoint is down: the copies still waiting on it would only
                # fail after their retries. Stop them now (uploads are aborted).
                for other in self._in_flight:
                    other.cancel()

    async def _job(self, action: Action, m: Match) -> None:
        assert m.src is not None
        try:
            if action is Action.CHECK:
                assert m.dst is not None
                await self._check_one(m.src, m.dst, m.record)
            else:
                await self._copy_one(m.src)
        except Exception as exc:
            # A bug of ours must not stop the workers: the march would then
            # wait forever on a full queue. The object fails, with the error.
            log.error("internal error on %s", m.key, exc_info=exc)
            self._failed(m.src, "InternalError", f"{type(exc).__name__}: {exc}")

    async def _check_one(self, s: ObjectMeta, d: ObjectMeta, record: VerifiedCopy | None
                         ) -> None:
        """Equal bytes (same content MD5, or a verified copy that may predate a
        metadata change in its own second): compare headers and metadata; record
        the pair as verified when they agree, copy when they do not."""
        # The listing was read after the run started: a lower bound of when the
        # props were read, unless a HEAD reads them now.
        read_at = self._started_at if s.props is not None else time.time()
        try:
            src = s if s.props is not None else await self.src.head(s.key)
            dst = d if d.props is not None else await self.dst.head(d.key)
        except NotFound:
            # One side went away; the copy path sorts it out.
            await self._copy_checked(s, UNPROVEN.reason)
            return
        except CrosswindError as exc:
            self._failed(s, type(exc).__name__, str(exc))
            self.breaker.failure(exc)
            return
        if (src.etag, src.size, dst.etag) != (s.etag, s.size, d.etag):
            await self._copy_checked(s, UNPROVEN.reason)  # changed since listed
            return
        diffs = props_differences(src.props or ObjectProps(), dst.props or ObjectProps(),
                                  self.dst.capabilities.metadata_flavor,
                                  self.opts.transfer.metadata_policy)
        if diffs:
            await self._copy_checked(s, "metadata differs")
            return
        md5 = s.content_md5 or (record.md5 if record is not None else None)
        if not self.opts.dry_run and md5 is not None:
            self.records.add(
                VerifiedCopy(s.key, s.etag, s.size, md5, d.etag, mtime_of(src), read_at))
        self.breaker.success()
        self.stats.skipped.add(s.size)

    async def _copy_checked(self, s: ObjectMeta, reason: str) -> None:
        """A checked pair turned out to need a copy: plan it, and copy unless dry."""
        self.stats.planned.add(s.size)
        self.stats.copy_reasons[reason] += 1
        if self.opts.dry_run:
            if len(self.would_copy) < 100:
                self.would_copy.append({"key": s.key, "size": s.size, "reason": reason})
            return
        await self._copy_one(s)

    async def _copy_one(self, meta: ObjectMeta) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self.transfer.copy(meta)
            except PreconditionFailed:
                # Changed at the source since it was listed: copy the new version.
                try:
                    meta = await self.src.head(meta.key)
                except NotFound:
                    self.stats.vanished.add(meta.size)
                    return
                if attempt < self.opts.attempts:
                    self.stats.retries += 1
                    continue
                self._failed(meta, "changed", "source kept changing during the copy")
                return
            except NotFound as exc:
                if await self._source_gone(meta):
                    self.stats.vanished.add(meta.size)
                    return
                self._failed(meta, type(exc).__name__, str(exc))
                self.breaker.failure(exc)
                return
            except IntegrityError as exc:
                # Corruption in transit may not repeat; anything else will.
                if attempt < self.opts.attempts:
                    self.stats.retries += 1
                    log.warning("retrying %s after integrity error: %s", meta.key, exc)
                    continue
                self._failed(meta, "IntegrityError", str(exc))
                return
            except CrosswindError as exc:
                # Transient errors were already retried by the SDK clients.
                self._failed(meta, type(exc).__name__, str(exc))
                self.breaker.failure(exc)
                return
            self.breaker.success()
            r = outcome.receipt
            self.records.add(
                VerifiedCopy(meta.key, meta.etag, meta.size, r.md5, r.etag,
                             mtime_of(replace(meta, last_modified=outcome.source_modified)),
                             outcome.read_at))
            self.stats.copied.add(meta.size)
            self.stats.metadata_renamed += outcome.renamed
            self.stats.metadata_dropped += outcome.dropped
            return

    async def _source_gone(self, meta: ObjectMeta) -> bool:
        try:
            await self.src.head(meta.key)
        except NotFound:
            return True
        except CrosswindError:
            return False
        return False

    def _failed(self, meta: ObjectMeta, kind: str, reason: str) -> None:
        reason = redact(reason)
        self.stats.failed.add(meta.size)
        self.state.record_failure(self.run_id, meta.key, kind, reason)
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append({"key": meta.key, "kind": kind, "reason": reason})
        log.info("failed %s: %s", meta.key, reason)

    # -- deletes ---------------------------------------------------------------
    def _check_delete_limit(self) -> None:
        """The shared max-delete guard (``deleteguard.py``), one window per run.
        The base is the destination as this run found it, before its copies:
        the entries the march saw inside the prefix and filters (not the whole
        destination: a broken source listing must not wipe a small filtered
        set). The objects the run copies in are not counted: a wrong source
        (another container, another prefix) copies many new keys and would
        otherwise dilute the share of the replica it deletes (tested in
        ``test_deleteguard.py``). A destination entry is counted when the march
        reaches it, which is always before the run writes that key, so a copy
        never shows up in the base."""
        n, base = self.stats.to_delete.count, self._dst_in_scope
        DeleteGuard(self.opts.max_delete_count, self.opts.max_delete_percent).require(
            n, base, f"to delete {n} objects of the {base} in scope at the destination")

    async def _deletes(self) -> None:
        if not self.opts.delete or self.stats.to_delete.count == 0:
            return
        try:
            self._check_delete_limit()
        except DeleteLimitExceeded:
            self.state.clear_pending_deletes(self.run_id)
            raise
        if self.opts.dry_run:
            return
        pending = iter(self.state.pending_deletes(self.run_id))

        async def worker() -> None:
            for key, etag, size in pending:
                try:
                    # Only the version that was listed: a newer write wins.
                    await self.dst.delete(key, if_match=etag)
                except PreconditionFailed:
                    continue
                except CrosswindError as exc:
                    self._failed(ObjectMeta(key, size), type(exc).__name__, str(exc))
                    continue
                self.state.forget_verified(self.opts.direction, key)
                self.stats.deleted.add(size)

        await asyncio.gather(*(worker() for _ in range(self.opts.concurrency)))
        self.state.clear_pending_deletes(self.run_id)
