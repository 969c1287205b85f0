"""Azure Table → DocumentDB (before cutover).

Three ways in, one way out:

* ``scan``: the table, all of it or only rows whose Timestamp is at or after
  the watermark of the last scan (minus an overlap), in pages;
* ``reconcile``: both sides listed and merged in key order, so rows the
  source no longer has are deleted (guarded by the max-delete limits);
* ``objects``: object names → keys (``keys.py``) → one read per row; names
  that do not parse and objects without a row go to the DLQ.

All of them hand batches of entities to ``write_rows``: rows already synced at
their current etag are skipped, the rest go out as one unordered bulk upsert
per batch with ``concurrency`` batches in flight. Rows read one by one (objects,
replays) may race each other, so their upserts never replace a newer version.
A row that fails is a result, not an exception: it lands in the DLQ with its
reason and the batch goes on.
The watermark moves only after a scan finished, so a crash repeats work (the
upserts are idempotent) and never skips it. It moves to when the scan *started*
(the store's own clock, asked before the first page), never to the newest
Timestamp the scan saw: a long scan reads pages in key order, and a row
changed behind its position while it ran has an older Timestamp than rows it
read later. Everything committed after the start has a Timestamp at or after
it, so the next scan (from the watermark less ``watermark_overlap_s``, which
covers skew between the service's clocks and slow commits) reads it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime

from crosswind.entities import EdmDateTime, Entity, doc_id, entity_to_json
from crosswind.errors import (
    CrosswindError,
    EntityMappingError,
    NameParseError,
    NotFound,
)
from crosswind.governance.gate import rejection_payload
from crosswind.keys import KeySpec
from crosswind.metasync.context import RunContext
from crosswind.metasync.ledger import RowRecord
from crosswind.metasync.march import march_rows
from crosswind.metasync.plan import needs_write, next_watermark, scan_since
from crosswind.stores.base import BadRecord, RecordStore, RecordWrite


def _json_payload(e: Entity) -> str:
    return json.dumps(entity_to_json(e))


async def run_batches(batches: AsyncIterator[list[Entity]], concurrency: int,
                      handle: Callable[[list[Entity]], Awaitable[None]]) -> None:
    """Feed batches to ``concurrency`` workers; the first failure stops them all."""
    queue: asyncio.Queue[list[Entity] | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker() -> None:
        while (batch := await queue.get()) is not None:
            await handle(batch)

    async def producer() -> None:
        async for batch in batches:
            await queue.put(batch)
        for _ in range(concurrency):
            await queue.put(None)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(producer())
            for _ in range(concurrency):
                tg.create_task(worker())
    except BaseExceptionGroup as group:
        # One cause is enough for the caller; prefer crosswind's own errors.
        flat = _leaves(group)
        raise next((e for e in flat if isinstance(e, CrosswindError)), flat[0]) from None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


class ForwardSync:
    def __init__(self, src: RecordStore, dst: RecordStore, ctx: RunContext) -> None:
        self.src = src
        self.dst = dst
        self.ctx = ctx
        self.stats = ctx.stats
        self.opts = ctx.opts
        self.ledger = ctx.ledger
        self.since: EdmDateTime | None = None
        self.watermark_before: str | None = None
        self.delete_blocked: str | None = None
        # Only look for DLQ entries to resolve when there are any.
        self.dlq_open = self.ledger.dlq_open_count(ctx.direction) > 0
        #: object-driven: the object names behind each row being written
        self._names: dict[tuple[str, str], list[str]] = {}
        #: called with the rows of each batch once written (the replication service
        #: measures lag from their Timestamps)
        self.on_written: Callable[[list[Entity]], None] | None = None

    # -- the one way out -----------------------------------------------------------
    async def write_rows(self, entities: list[Entity], *, force: bool = False,
                         newer_only: bool = False) -> set[tuple[str, str]]:
        """Upsert what changed (everything if ``force``); returns the keys now in
        step at the destination. ``newer_only``: for rows read one by one, which
        may race each other (never over a newer version)."""
        full = force or self.opts.full
        recs = self.ledger.rows(e.key for e in entities)
        todo = [self._into_its_document(e, recs.get(e.key)) for e in entities
                if needs_write(e, recs.get(e.key), full=full)]
        done = {e.key for e in entities} - {e.key for e in todo}
        self.stats.unchanged += len(entities) - len(todo)
        todo = self._admitted(todo)
        if not todo:
            return done
        if self.opts.dry_run:
            for e in todo:
                self.ctx.example(self.ctx.would_write, doc_id(*e.key))
            self.stats.written += len(todo)
            return done | {e.key for e in todo}
        writes = [RecordWrite("upsert", e, newer_only=newer_only) for e in todo]
        results = await self.ctx.retrying(lambda: self.dst.write_batch(writes))
        self.stats.batches += 1
        synced: list[RowRecord] = []
        written: list[Entity] = []
        for r in results:
            e = r.write.entity
            if r.status == "ok":
                written.append(e)
                synced.append(RowRecord(e.partition_key, e.row_key, e.etag, e.content_hash(),
                                        e.record_id or doc_id(*e.key)))
            elif r.status == "stale":
                self.stats.stale += 1
            else:
                self.ctx.dlq("row", doc_id(*e.key), pk=e.partition_key, rk=e.row_key,
                             error=r.error or f"write {r.status}", payload=_json_payload(e))
        if synced:
            self.ledger.record_rows(synced)
            self.stats.written += len(synced)
            if self.dlq_open:  # DLQ entries of rows are named by their keys
                self.ledger.dlq_resolve(self.ctx.direction, "row", [doc_id(*s.key)
                                                                    for s in synced])
            if self.on_written is not None:
                self.on_written(written)
        return done | {s.key for s in synced}

    def _admitted(self, todo: list[Entity]) -> list[Entity]:
        """Validation before write: the documents the schema gate lets through; the
        rest go to the DLQ (kind ``schema``) with the failing path and rule."""
        ok, refused = self.ctx.governance.schemas.admit(
            todo, self.ctx.governance.schemas.check_document)
        for e, exc in refused:
            self.ctx.dlq("row", doc_id(*e.key), pk=e.partition_key, rk=e.row_key, error=exc,
                         kind="schema", payload=rejection_payload(exc, entity_to_json(e)))
        return ok

    @staticmethod
    def _into_its_document(e: Entity, rec: RowRecord | None) -> Entity:
        """``e``, to be written into the document that holds its row: one with an _id
        of its own (written on the AWS side after a cutover, then rolled back) is
        replaced under that _id, not joined by a second document for the same row."""
        if e.record_id is None and rec is not None and rec.doc_id is not None and (
                rec.doc_id != doc_id(*e.key)):
            return dataclasses.replace(e, record_id=rec.doc_id)
        return e

    def _bad_record(self, r: BadRecord) -> None:
        self.ctx.dlq("row", r.record_id, pk=r.partition_key, rk=r.row_key, error=r.error,
                     payload=r.raw)

    async def _started(self) -> EdmDateTime:
        """When this scan starts, by the source's clock (the one that sets row
        Timestamps), or by ours if it cannot tell; asked before the first page."""
        at = await self.ctx.retrying(self.src.server_time)
        return at if at is not None else EdmDateTime.from_datetime(datetime.now(UTC))

    # -- scan ----------------------------------------------------------------------
    async def scan(self) -> None:
        """Rows changed since the watermark (or all), upserted; then the watermark moves."""
        if self.opts.propagate_deletes:
            await self.reconcile()
            return
        self.watermark_before = self.ledger.watermark("scan")
        self.since = self.opts.since or (None if self.opts.full else scan_since(
            self.watermark_before, self.opts.overlap_s))
        started = await self._started()

        async def batches() -> AsyncIterator[list[Entity]]:
            batch: list[Entity] = []
            async for r in self.src.list(since=self.since):
                self.stats.listed_source += 1
                if isinstance(r, BadRecord):
                    self._bad_record(r)
                    continue
                batch.append(r)
                if len(batch) >= self.opts.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            self.stats.listing_done = True

        await run_batches(batches(), self.opts.concurrency, self._write_only)
        self._move_watermark(started)

    async def _write_only(self, batch: list[Entity]) -> None:
        await self.write_rows(batch)

    def _move_watermark(self, started: EdmDateTime) -> None:
        """To the scan's start (see the module docstring and ``next_watermark``)."""
        if self.opts.dry_run:
            return
        mark = next_watermark(self.watermark_before or self.ledger.watermark("scan"), started,
                              self.since, self.opts.overlap_s)
        if mark is not None:
            self.ledger.set_watermark("scan", mark)

    # -- reconcile (with deletes) --------------------------------------------------
    async def reconcile(self, *, deletes: bool = True) -> None:
        """Both sides merged in key order: write what differs, delete what the
        source no longer has (if the guard allows; ``deletes=False``: only count
        them as ``to_delete``), skip what is in step."""
        self.watermark_before = self.ledger.watermark("scan")
        started = await self._started()
        doomed: list[tuple[str, str]] = []
        # Enough names to do every delete the guard could allow; past that only a count.
        limit = self.ctx.guard.max_count
        listed_here = [0]  # the guard's base: the destination as this reconcile listed it

        async def batches() -> AsyncIterator[list[Entity]]:
            batch: list[Entity] = []
            in_step: list[tuple[Entity, str | None]] = []  # with the document's own _id
            async for m in march_rows(self.src.list(), self.dst.list()):
                if m.src is not None:
                    self.stats.listed_source += 1
                if m.dst is not None:
                    self.stats.listed_destination += 1
                    listed_here[0] += 1
                if isinstance(m.src, BadRecord):
                    self._bad_record(m.src)
                    continue
                if m.src is None:
                    if m.key is not None:
                        self.stats.to_delete += 1
                        if len(doomed) <= limit:
                            doomed.append(m.key)
                    continue
                # In step: same content, and the document says it came from this very
                # version (its _cw.etag), so its sync fields are current too.
                if (isinstance(m.dst, Entity) and m.src.same_content(m.dst)
                        and m.src.etag == m.dst.etag):
                    in_step.append((m.src, m.dst.record_id))
                    if len(in_step) >= self.opts.batch_size:
                        self._baseline(in_step)
                        in_step = []
                    continue
                if isinstance(m.dst, Entity) and m.dst.record_id is not None:
                    # Into the document that is there, whatever its _id.
                    batch.append(dataclasses.replace(m.src, record_id=m.dst.record_id))
                else:
                    batch.append(m.src)
                if len(batch) >= self.opts.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            self._baseline(in_step)
            self.stats.listing_done = True

        await run_batches(batches(), self.opts.concurrency, self._write_all)
        if deletes:
            await self._deletes(doomed, listed_here[0])
        self._move_watermark(started)

    async def _write_all(self, batch: list[Entity]) -> None:
        # Content was compared with the destination itself: a row that differs
        # there is written even if it was synced at this etag (replica drift).
        await self.write_rows(batch, force=True)

    def _baseline(self, rows: list[tuple[Entity, str | None]]) -> None:
        """Rows equal on both sides: nothing to write, but remember the baseline
        (with the _id of the document that holds the row, whatever it is)."""
        if not rows:
            return
        self.stats.unchanged += len(rows)
        if self.opts.dry_run:
            return
        recs = self.ledger.rows(e.key for e, _ in rows)
        fresh = [RowRecord(e.partition_key, e.row_key, e.etag, e.content_hash(),
                           real_id or doc_id(*e.key))
                 for e, real_id in rows
                 if (r := recs.get(e.key)) is None or r.azure_etag != e.etag
                 or r.doc_id != (real_id or doc_id(*e.key))]
        if fresh:
            self.ledger.record_rows(fresh)

    async def _deletes(self, doomed: list[tuple[str, str]], base: int) -> None:
        n = self.stats.to_delete
        if not n:
            return
        # All or none, through the run's one guard (shared with every other delete).
        reason = self.ctx.guard.admit(n, base)
        if reason:
            self.delete_blocked = f"deletes not done: {reason}"
            return
        assert len(doomed) == n  # the guard never allows more than its max_count
        if self.opts.dry_run:
            for k in doomed:
                self.ctx.example(self.ctx.would_delete, doc_id(*k))
            return
        size = self.opts.batch_size
        for i in range(0, len(doomed), size):
            writes = [RecordWrite("delete", Entity(pk, rk)) for pk, rk in doomed[i : i + size]]
            results = await self.ctx.retrying(functools.partial(self.dst.write_batch, writes))
            gone = [r.write.entity.key for r in results if r.status in ("ok", "missing")]
            for r in results:
                if r.status not in ("ok", "missing"):
                    e = r.write.entity
                    self.ctx.dlq("row", doc_id(*e.key), pk=e.partition_key, rk=e.row_key,
                                 error=r.error or f"delete {r.status}")
            self.ledger.forget_rows(gone)
            self.stats.deleted += len(gone)

    # -- object-driven -------------------------------------------------------------
    async def repair(self, keys: Iterable[tuple[str, str]]) -> None:
        """Row repair by key, without a reconcile: each row is read fresh from the
        source and written whatever the ledger says (a validation found it
        missing or different), never over a newer version. A row that is gone
        from the source is counted (``missing_rows``) and left alone: repair
        never deletes."""
        sem = asyncio.Semaphore(max(8, self.opts.concurrency * 8))

        async def fetch(pk: str, rk: str) -> Entity | None:
            async with sem:
                try:
                    return await self.ctx.retrying(lambda: self.src.get(pk, rk))
                except NotFound:
                    self.stats.missing_rows += 1
                except EntityMappingError as exc:
                    self.ctx.dlq("row", doc_id(pk, rk), pk=pk, rk=rk, error=exc)
                return None

        async def batches() -> AsyncIterator[list[Entity]]:
            chunk: dict[tuple[str, str], None] = {}  # one write per key in a batch
            for key in keys:
                chunk[key] = None
                if len(chunk) >= self.opts.batch_size:
                    yield await self._fetch_keys(list(chunk), fetch)
                    chunk = {}
            if chunk:
                yield await self._fetch_keys(list(chunk), fetch)
            self.stats.listing_done = True

        async def write(batch: list[Entity]) -> None:
            await self.write_rows(batch, force=True, newer_only=True)

        await run_batches(batches(), self.opts.concurrency, write)

    async def _fetch_keys(self, keys: list[tuple[str, str]],
                          fetch: Callable[[str, str], Awaitable[Entity | None]]
                          ) -> list[Entity]:
        found = await asyncio.gather(*(fetch(pk, rk) for pk, rk in keys))
        self.stats.listed_source += sum(1 for e in found if e is not None)
        return [e for e in found if e is not None]

    async def objects(self, names: AsyncIterable[str], spec: KeySpec) -> None:
        """For each object name: keys → the row → the document."""
        sem = asyncio.Semaphore(max(8, self.opts.concurrency * 8))

        async def fetch(name: str, pk: str, rk: str) -> Entity | None:
            async with sem:
                try:
                    return await self.ctx.retrying(lambda: self.src.get(pk, rk))
                except NotFound:
                    self.stats.missing_rows += 1
                    self.ctx.dlq("object", name, pk=pk, rk=rk, kind="missing-row",
                                 error=f"object {name!r} has no row ({pk!r}, {rk!r}) in "
                                       f"{self.src.name}")
                except EntityMappingError as exc:
                    self.ctx.dlq("row", doc_id(pk, rk), pk=pk, rk=rk, error=exc)
                return None

        async def batches() -> AsyncIterator[list[Entity]]:
            chunk: list[tuple[str, str, str]] = []
            async for name in names:
                self.stats.objects += 1
                try:
                    keys = spec.keys(name)
                except NameParseError as exc:
                    self.stats.bad_names += 1
                    self.ctx.dlq("object", name, pk=None, rk=None, kind="bad-name", error=exc)
                    continue
                chunk.append((name, keys.partition_key, keys.row_key))
                if len(chunk) >= self.opts.batch_size:
                    yield await self._fetch_chunk(chunk, fetch)
                    chunk = []
            if chunk:
                yield await self._fetch_chunk(chunk, fetch)
            self.stats.listing_done = True

        await run_batches(batches(), self.opts.concurrency, self._write_objects)

    async def _fetch_chunk(self, chunk: list[tuple[str, str, str]],
                           fetch: Callable[[str, str, str], Awaitable[Entity | None]]
                           ) -> list[Entity]:
        by_key: dict[tuple[str, str], list[str]] = {}
        for name, pk, rk in chunk:
            by_key.setdefault((pk, rk), []).append(name)
        found = await asyncio.gather(*(fetch(names[0], pk, rk)
                                       for (pk, rk), names in by_key.items()))
        entities = [e for e in found if e is not None]
        for e in entities:
            self.stats.listed_source += 1
            self._names[e.key] = by_key[e.key]
        return entities

    async def _write_objects(self, batch: list[Entity]) -> None:
        ok = await self.write_rows(batch, newer_only=True)
        names = [n for k in ok for n in self._names.pop(k, [])]
        for e in batch:
            self._names.pop(e.key, None)
        if self.dlq_open and names and not self.opts.dry_run:
            self.ledger.dlq_resolve(self.ctx.direction, "object", names)
