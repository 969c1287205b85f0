"""DocumentDB → Azure Table (after cutover), driven by the change stream.

The resume token is saved after the changes read up to it were applied, so a
restart repeats at most the last batch (the writes are idempotent) and loses
nothing. Without a token (first run) or when the server no longer has the
history behind it (``ChangeHistoryLost``), a new stream is opened first and
a full reconcile (both sides listed and merged) brings Azure in step; the
stream then replays what happened during the reconcile.

Azure is the replica here, and a replica row is only overwritten or deleted
while it is still the version crosswind last synced: every write carries the
recorded etag as its precondition (a never-synced row is only created, never
replaced). A precondition that fails is a *conflict*: the row is left alone
(``conflict_policy = "record"``) or overwritten after recording
(``"overwrite"``), and the conflict is kept with both versions. Our own
writes coming back (a document whose content equals what was last synced)
are recognised by their content hash and skipped.

Every delete on Azure asks the run's one max-delete guard (``ctx.guard``)
first, whichever path found it: the stream, a reconcile, a DLQ replay, a
conflict the ``overwrite`` policy deletes. Deletes the guard refuses are not
done and not lost: the run stops (``delete_blocked``, status ``aborted``)
without saving a stream position after them, so the next run reads them
again (or reconciles, when a reconcile found them).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from crosswind.entities import (
    Entity,
    check_entity_limits,
    doc_id,
    entity_to_json,
    parse_doc_id,
)
from crosswind.errors import ChangeHistoryLost, EntityMappingError, NotFound
from crosswind.metasync.context import RunContext
from crosswind.metasync.ledger import RowRecord
from crosswind.metasync.march import march_rows
from crosswind.metasync.plan import by_partition, reverse_decision
from crosswind.stores.azure_tables import MAX_TRANSACTION
from crosswind.stores.base import BadRecord, RecordOp, RecordStore, RecordWrite, WriteResult
from crosswind.stores.documentdb import (
    ChangeFeed,
    DocumentDBStore,
    RecordChange,
    token_from_text,
    token_text,
)


@dataclass(frozen=True, slots=True)
class _Planned:
    write: RecordWrite
    doc_id: str
    #: content hash of the document version being written (None for deletes)
    doc_hash: str | None


class ReverseSync:
    def __init__(self, docs: DocumentDBStore, table: RecordStore, ctx: RunContext) -> None:
        self.docs = docs
        self.table = table
        self.ctx = ctx
        self.stats = ctx.stats
        self.opts = ctx.opts
        self.ledger = ctx.ledger
        self.reconcile_reasons: list[str] = []
        self.delete_blocked: str | None = None
        self.started_from_token = False
        self.dlq_open = self.ledger.dlq_open_count(ctx.direction) > 0
        #: document _id → other names of DLQ entries its success settles (a replay
        #: of an entry filed under the document's keys rather than its _id)
        self.dlq_aliases: dict[str, list[str]] = {}
        #: called with each batch of changes once it is applied (the replication
        #: service measures lag from the changes' server times)
        self.on_batch: Callable[[list[RecordChange]], None] | None = None

    # -- the loop ------------------------------------------------------------------
    async def run(self, until: Callable[[], bool] | None = None) -> None:
        """Follow the stream until it is quiet (or, with ``follow``, for ever);
        ``until``: also stop, between batches, once it says so (a time budget:
        a batch that was started is applied and its position saved first)."""
        if self.opts.enable_change_streams and not self.opts.dry_run:
            await self.docs.enable_change_streams()
        feed = await self._open()
        try:
            # Deletes the guard held back: stop here (the run is aborted); following
            # on would save a position after them and no later run would do them.
            while not self.delete_blocked:
                if until is not None and until():
                    break
                try:
                    more = await self._follow(feed, until)
                except ChangeHistoryLost as exc:
                    await feed.close()
                    feed = await self._reconciled_feed(f"history lost mid-stream: {exc}")
                    continue
                if not more:
                    break
        finally:
            await feed.close()

    async def _open(self) -> ChangeFeed:
        saved = self.ledger.resume_token()
        if self.opts.full:
            return await self._reconciled_feed("--full asked for a reconcile")
        if saved is None:
            return await self._reconciled_feed("no resume token (first run)")
        try:
            feed = await self.docs.open_changes(token_from_text(saved))
        except ChangeHistoryLost as exc:
            return await self._reconciled_feed(f"resume token no longer valid: {exc}")
        except ValueError:
            return await self._reconciled_feed("saved resume token unreadable")
        self.started_from_token = True
        return feed

    async def _reconciled_feed(self, reason: str) -> ChangeFeed:
        """A stream from now, then a reconcile; changes during it come again after."""
        feed = await self.docs.open_changes(None)
        start = await feed.start_token()
        await self.reconcile(reason)
        if self.delete_blocked:
            # The next run must reconcile again (within the limits it is given),
            # not resume after the deletes that were not done.
            if not self.opts.dry_run:
                self.ledger.clear_resume_token()
            return feed
        if start is not None and not self.opts.dry_run:
            self.ledger.set_resume_token(token_text(start))
        return feed

    async def _follow(self, feed: ChangeFeed, until: Callable[[], bool] | None = None) -> bool:
        """Read and apply changes until quiet for ``idle_timeout_s`` (False) or, with
        ``follow``, until ``until()`` says so (True); each batch is applied, then
        its token saved."""
        quiet_since = time.monotonic()
        while True:
            if until is not None and until():
                return True
            batch: list[RecordChange] = []
            flush_at = time.monotonic() + self.opts.flush_interval_s
            while len(batch) < self.opts.batch_size:
                wait = flush_at - time.monotonic()
                if wait <= 0:
                    break
                change = await feed.next(wait)
                if change is None:
                    continue
                batch.append(change)
                self.stats.changes += 1
            if batch:
                await self.apply(batch)
                if self.delete_blocked:
                    # The guard held deletes of this batch back: its position is not
                    # saved, so the next run reads them again.
                    return False
                if not self.opts.dry_run:
                    self.ledger.set_resume_token(token_text(batch[-1].token))
                if self.on_batch is not None:
                    self.on_batch(batch)
                quiet_since = time.monotonic()
                continue
            # Quiet: keep the saved position fresh so it stays inside the history.
            if feed.token is not None and not self.opts.dry_run:
                self.ledger.set_resume_token(token_text(feed.token))
            if not self.opts.follow and time.monotonic() - quiet_since >= self.opts.idle_timeout_s:
                return False

    # -- applying changes ----------------------------------------------------------
    async def apply(self, changes: list[RecordChange]) -> None:
        """Apply a batch of changes (the last change of a document wins)."""
        latest: dict[str, RecordChange] = {}
        for ch in changes:
            latest.pop(ch.doc_id, None)
            latest[ch.doc_id] = ch
        planned: list[_Planned] = []
        for ch in latest.values():
            planned.extend(await self._plan_change(ch))
        # One write per row: a row another document of this batch writes now is not
        # deleted for the document that left it (deleted, or moved to other keys).
        written = {p.write.entity.key for p in planned if p.write.op != "delete"}
        await self._execute([p for p in planned
                             if p.write.op != "delete" or p.write.entity.key not in written])

    async def _plan_change(self, ch: RecordChange) -> list[_Planned]:
        if ch.op == "delete":
            return await self._plan_delete(ch)
        if ch.entity is None:
            assert ch.error is not None
            pk, rk = ch.key if ch.key else (None, None)
            self.ctx.dlq("document", ch.doc_id, pk=pk, rk=rk, error=ch.error, payload=ch.raw)
            return []
        return self._plan_upsert(ch.entity, ch.doc_id)

    async def _plan_delete(self, ch: RecordChange) -> list[_Planned]:
        """The rows synced with the deleted document, found by its exact ``_id``."""
        recs = self.ledger.rows_by_doc_id(ch.doc_id)
        if not recs and ch.key is not None:
            # The _id looks like PartitionKey/RowKey. It names that row only if the
            # ledger knows no other document for it (rows recorded before real ids
            # were kept have none): an _id is not its document's keys.
            rec = self.ledger.row(*ch.key)
            if rec is None:
                # Never synced: a row there is Azure's own, and stays (a conflict).
                await self._conflict_unknown_delete(ch.key)
                return []
            if rec.doc_id is not None:
                self.stats.unknown_deletes += 1  # that row came from another document
                return []
            recs = [rec]
        if not recs:
            self.stats.unknown_deletes += 1
            return []
        return [self._planned_delete(r, ch.doc_id) for r in recs]

    @staticmethod
    def _planned_delete(rec: RowRecord, source_id: str) -> _Planned:
        return _Planned(RecordWrite("delete", Entity(rec.pk, rec.rk), if_match=rec.azure_etag),
                        source_id, None)

    def _plan_upsert(self, e: Entity, source_id: str) -> list[_Planned]:
        # Rows this document was synced to under other keys: it moved (its
        # PartitionKey/RowKey fields changed), so those rows go, under the guard.
        moved = [self._planned_delete(r, source_id)
                 for r in self.ledger.rows_by_doc_id(source_id) if r.key != e.key]
        try:
            check_entity_limits(e)
        except EntityMappingError as exc:
            self.ctx.dlq("document", source_id, pk=e.partition_key, rk=e.row_key, error=exc,
                         payload=json.dumps(entity_to_json(e)))
            return moved
        rec = self.ledger.row(*e.key)
        h = e.content_hash()
        if rec is not None and rec.doc_hash == h:
            self.stats.echoes += 1  # this content is what Azure holds since the last sync
            if rec.doc_id != source_id and not self.opts.dry_run:
                self.ledger.record_rows([RowRecord(rec.pk, rec.rk, rec.azure_etag, h,
                                                   source_id)])
            self._resolve_dlq([source_id])
            return moved
        if rec is not None and rec.azure_etag:
            return [*moved, _Planned(RecordWrite("upsert", e, if_match=rec.azure_etag),
                                     source_id, h)]
        return [*moved, _Planned(RecordWrite("create", e), source_id, h)]

    async def _conflict_unknown_delete(self, key: tuple[str, str]) -> None:
        row = await self._azure_row(*key)
        if row is None:
            self.stats.unknown_deletes += 1
            return
        self._record_conflict(RecordWrite("delete", Entity(*key)), row, None, "deleted on AWS; "
                              "the Azure row was never synced")

    def _admit_deletes(self, planned: list[_Planned], base: int | None) -> list[_Planned]:
        """``planned`` without its deletes if the guard refuses them (all of them:
        none of a refused request is done, and the run stops); ``base`` is the
        replica population they are a share of, None for the rows the ledger has
        in step (what the stream and replays can delete)."""
        n = sum(p.write.op == "delete" for p in planned)
        if not n:
            return planned
        reason = self.ctx.guard.admit(n, self.ledger.row_count() if base is None else base)
        if reason is None:
            return planned
        self.delete_blocked = self.delete_blocked or f"deletes not done: {reason}"
        return [p for p in planned if p.write.op != "delete"]

    async def _execute(self, planned: list[_Planned], *, base: int | None = None) -> None:
        planned = self._admit_deletes(planned, base)
        if not planned:
            return
        if self.opts.dry_run:
            for p in planned:
                bucket = (self.ctx.would_delete if p.write.op == "delete"
                          else self.ctx.would_write)
                self.ctx.example(bucket, doc_id(*p.write.entity.key))
                if p.write.op == "delete":
                    self.stats.deleted += 1
                else:
                    self.stats.written += 1
            return
        by_key = {p.write.entity.key: p for p in planned}
        batches = by_partition((p.write for p in planned), MAX_TRANSACTION)
        sem = asyncio.Semaphore(self.opts.concurrency)

        async def one(batch: list[RecordWrite]) -> None:
            async with sem:
                results = await self.ctx.retrying(functools.partial(self.table.write_batch,
                                                                    batch))
            self.stats.batches += 1
            synced: list[RowRecord] = []
            gone: list[tuple[str, str]] = []
            for r in results:
                p = by_key[r.write.entity.key]
                if r.status in ("ok", "missing"):  # the common case, recorded in one go
                    e = r.write.entity
                    if r.write.op == "delete":
                        gone.append(e.key)
                        self.stats.deleted += r.status == "ok"
                    else:
                        synced.append(RowRecord(e.partition_key, e.row_key, r.etag, p.doc_hash,
                                                p.doc_id))
                        self.stats.written += 1
                else:
                    await self._outcome(r, p)
            self.ledger.record_rows(synced)
            self.ledger.forget_rows(gone)
            self._resolve_dlq([by_key[k].doc_id for k in gone] + [s.doc_id or "" for s in synced])

        await asyncio.gather(*(one(b) for b in batches))

    async def _outcome(self, r: WriteResult, p: _Planned) -> None:
        w = r.write
        e = w.entity
        if r.status in ("ok", "missing"):
            if w.op == "delete":
                self.ledger.forget_rows([e.key])
                self.stats.deleted += 1 if r.status == "ok" else 0
            else:
                self.ledger.record_rows([RowRecord(e.partition_key, e.row_key, r.etag, p.doc_hash,
                                                   p.doc_id)])
                self.stats.written += 1
            self._resolve_dlq([p.doc_id])
            return
        if r.status == "conflict":
            await self._on_conflict(w, p)
            return
        self.ctx.dlq("document", p.doc_id, pk=e.partition_key, rk=e.row_key,
                     error=r.error or f"write {r.status}",
                     payload=json.dumps(entity_to_json(e)) if w.op != "delete" else None)

    async def _on_conflict(self, w: RecordWrite, p: _Planned) -> None:
        """The precondition failed: look at what Azure holds now before calling it one."""
        e = w.entity
        row = await self._azure_row(*e.key)
        if w.op == "delete" and row is None:
            self.ledger.forget_rows([e.key])  # already gone: nothing to disagree about
            return
        if w.op != "delete" and row is not None and row.same_content(e):
            self.stats.baselined += 1
            self.ledger.record_rows([RowRecord(e.partition_key, e.row_key, row.etag, p.doc_hash,
                                               p.doc_id)])
            return
        why = "deleted on Azure since the last sync" if row is None else (
            "changed on Azure since the last sync" if w.if_match else
            "exists on Azure and was never synced")
        self._record_conflict(w, row, None if w.op == "delete" else e, why)
        if self.opts.conflict_policy == "overwrite":
            forced = RecordWrite("delete" if w.op == "delete" else "upsert", e)
            [r] = await self.ctx.retrying(functools.partial(self.table.write_batch, [forced]))
            if r.status in ("ok", "missing"):
                await self._outcome(r, p)
            else:
                self.ctx.dlq("document", p.doc_id, pk=e.partition_key, rk=e.row_key,
                             error=r.error or f"overwrite {r.status}")

    def _record_conflict(self, w: RecordWrite, row: Entity | None, aws: Entity | None,
                         why: str) -> None:
        e = w.entity
        self.stats.conflicts += 1
        cid = 0
        if not self.opts.dry_run:
            cid = self.ledger.add_conflict(
                e.partition_key, e.row_key, recorded_etag=w.if_match,
                azure_etag=row.etag if row else None,
                azure_version=entity_to_json(row) if row else None,
                aws_version=entity_to_json(aws) if aws else None, run_id=self.ctx.run_id)
        if len(self.ctx.conflict_examples) < self.opts.examples:
            self.ctx.conflict_examples.append({"id": cid, "key": doc_id(*e.key), "why": why})

    async def _azure_row(self, pk: str, rk: str) -> Entity | None:
        try:
            return await self.ctx.retrying(functools.partial(self.table.get, pk, rk))
        except NotFound:
            return None

    def _resolve_dlq(self, ids: list[str]) -> None:
        if self.dlq_open and not self.opts.dry_run:
            names = ids + [a for i in ids for a in self.dlq_aliases.get(i, ())]
            self.ledger.dlq_resolve(self.ctx.direction, "document", names)

    # -- reconcile -----------------------------------------------------------------
    async def reconcile(self, reason: str) -> None:
        """Both sides listed and merged: Azure brought in step with DocumentDB,
        replica-side changes recorded as conflicts, deletes guarded."""
        self.reconcile_reasons.append(reason)
        self.stats.reconciles += 1
        pending: list[tuple[tuple[str, str], Entity | None, Entity | None]] = []
        deletes: list[_Planned] = []
        unkeyed: set[tuple[str, str]] = set()
        # The guard's base is the replica as *this* reconcile listed it: a run that
        # reconciles twice must not count the same rows twice.
        listed_here = 0

        async def flush() -> None:
            recs = self.ledger.rows(k for k, _, _ in pending)
            planned: list[_Planned] = []
            baselines: list[RowRecord] = []
            for key, d, r in pending:
                anchor = d or r
                assert anchor is not None
                rec = recs.get(key)
                # The document's own _id, whatever it is: a later delete from the
                # stream names only that.
                source_id = (d.record_id if d is not None and d.record_id is not None
                             else rec.doc_id if rec is not None and rec.doc_id is not None
                             else doc_id(*key))
                dec = reverse_decision(d, r, rec)
                if dec.action == "skip":
                    self.stats.unchanged += 1
                    if rec is not None and rec.doc_id != source_id:
                        # In step, but recorded under another _id (a document that
                        # replaced it, or a ledger from before real ids were kept).
                        baselines.append(RowRecord(rec.pk, rec.rk, rec.azure_etag,
                                                   rec.doc_hash, source_id))
                elif dec.action == "baseline":
                    self.stats.baselined += 1
                    assert d is not None and r is not None
                    baselines.append(RowRecord(d.partition_key, d.row_key, r.etag,
                                               d.content_hash(), source_id))
                elif dec.action in ("write", "create"):
                    assert d is not None
                    try:
                        check_entity_limits(d)
                    except EntityMappingError as exc:
                        self.ctx.dlq("document", source_id, pk=d.partition_key, rk=d.row_key,
                                     error=exc, payload=json.dumps(entity_to_json(d)))
                        continue
                    op: RecordOp = "upsert" if dec.action == "write" else "create"
                    planned.append(_Planned(RecordWrite(op, d, if_match=dec.if_match),
                                            source_id, d.content_hash()))
                elif dec.action == "delete":
                    assert r is not None
                    self.stats.to_delete += 1
                    deletes.append(_Planned(RecordWrite("delete", r, if_match=dec.if_match),
                                            source_id, None))
                else:  # conflict: both versions are known from the listings
                    w = RecordWrite("upsert" if d else "delete", anchor,
                                    if_match=rec.azure_etag if rec else None)
                    self._record_conflict(w, r, d, dec.why)
                    if self.opts.conflict_policy == "overwrite" and d is not None:
                        planned.append(_Planned(RecordWrite("upsert", d), source_id,
                                                d.content_hash()))
                    elif self.opts.conflict_policy == "overwrite":
                        # A delete all the same: under the max-delete guard like the rest.
                        self.stats.to_delete += 1
                        deletes.append(_Planned(RecordWrite("delete", anchor), source_id, None))
            if baselines and not self.opts.dry_run:
                self.ledger.record_rows(baselines)
            pending.clear()
            await self._execute(planned)

        async for m in march_rows(self.docs.list(), self.table.list()):
            if m.src is not None:
                self.stats.listed_source += 1
            if m.dst is not None:
                self.stats.listed_destination += 1
                listed_here += 1
            if isinstance(m.src, BadRecord):
                self.ctx.dlq("document", m.src.record_id, pk=m.src.partition_key,
                             rk=m.src.row_key, error=m.src.error, payload=m.src.raw)
                if m.key is None:
                    # No key fields, so no row in the listing's order; the row synced
                    # with this very _id (or, never synced, the row it seems to name)
                    # is not "deleted on AWS".
                    recorded = self.ledger.rows_by_doc_id(m.src.record_id)
                    unkeyed.update(r.key for r in recorded)
                    if not recorded and (k := parse_doc_id(m.src.record_id)) is not None:
                        unkeyed.add(k)
                continue
            if isinstance(m.dst, BadRecord):
                self.ctx.dlq("row", m.dst.record_id, pk=m.dst.partition_key, rk=m.dst.row_key,
                             error=m.dst.error, payload=m.dst.raw)
                continue
            assert m.key is not None  # rows without keys are BadRecords, handled above
            pending.append((m.key, m.src, m.dst))
            if len(pending) >= self.opts.batch_size:
                await flush()
        await flush()
        self.stats.listing_done = True
        # A row whose document is there but unreadable was not deleted on AWS.
        await self._execute([p for p in deletes if p.write.entity.key not in unkeyed],
                            base=listed_here)
