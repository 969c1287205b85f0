"""Copy one object from a source store to a destination store, verified.

Three ways, decided here (``write_way``), never by an SDK:

* **whole**: objects below ``stream_threshold`` are read whole, hashed and
  written in one request (for small objects the fewest requests and copies,
  through the Rust clients);
* **stream**: objects up to ``multipart_threshold`` stream in one request:
  bytes flow from the source GET into the destination's request body as they
  arrive, hashed on the way (``stream.py``), with one chunk in memory. S3
  verifies such a write by its ETag after the fact (the MD5 of what it
  stored), Azure only by a Content-MD5 sent first, so into Azure only objects
  whose source MD5 is known stream (``Capabilities.streamed_put``);
* **parts**: larger objects, and those that cannot stream verified, are read
  in parallel ranged GETs and written as parallel parts; parts are hashed in
  order as they arrive, so the whole-object MD5 is known before the upload
  completes.
 Every read is pinned to the listed version (``if_match``);
every write carries the MD5 of the bytes read, and the destination's answer
is checked against it (see the stores). A mismatch raises ``IntegrityError``
and aborts the upload: nothing unverified becomes visible or is recorded.
The bytes held in memory are leases on the run's ``ByteBudget``, given back
on every way out (see ``budget.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from crosswind.errors import CrosswindError, IntegrityError, TransientError
from crosswind.governance.gate import SchemaGate
from crosswind.mapping import (
    Policy,
    check_metadata_size,
    map_metadata,
    metadata_size,
    reserved_name,
    split_reserved,
)
from crosswind.model import ObjectMeta, ObjectProps, WriteReceipt
from crosswind.observability.stats import SyncStats
from crosswind.secrets import redact
from crosswind.stores.base import Capabilities, ObjectStore, StreamingPut
from crosswind.stores.common import md5_hex
from crosswind.sync.budget import ByteBudget, Lease, LeaseSet
from crosswind.sync.stream import SourceStream, return_chunks_to_the_os

MiB = 1024 * 1024
log = logging.getLogger("crosswind.sync")


@dataclass(frozen=True)
class TransferSettings:
    multipart_threshold: int = 512 * MiB
    part_size: int = 8 * MiB
    part_concurrency: int = 4
    metadata_policy: Policy = "rename"
    #: write crosswind's own md5/mtime entries on destination objects
    stamp_metadata: bool = True
    #: validation before write: the source's props are checked against the
    #: object-metadata schema before anything is written (``SchemaRejected``)
    schemas: SchemaGate = field(default_factory=SchemaGate.off, compare=False)
    #: objects at least this big stream (one request, one chunk in memory);
    #: smaller ones are read whole first (see README "Performance" for why 1 MiB)
    stream_threshold: int = 1 * MiB
    #: bytes read from the source per chunk of a streamed copy
    stream_chunk: int = 1 * MiB
    #: attempts of a streamed copy whose request failed transiently: a streamed
    #: body cannot be replayed by an SDK, so the source is read again
    stream_attempts: int = 3
    #: largest object held whole in memory where the destination cannot stream
    #: (a store wrapper without ``put_stream``); larger ones go in parts
    max_whole: int = 100 * MiB
    #: hash a streamed body here even when the source's MD5 is known and the
    #: destination verifies what it stored against it (the same proof, computed
    #: twice; see README "How streaming verification works")
    stream_hash_known: bool = False


WriteWay = Literal["whole", "stream", "parts"]


@dataclass(frozen=True)
class CopyOutcome:
    receipt: WriteReceipt
    renamed: int
    dropped: int
    #: last-modified of the source version whose bytes and props were copied
    #: (the read's, not the listing's: a pinned read of an S3 object whose
    #: metadata changed since listing gets the new version, same ETag)
    source_modified: datetime | None = None
    #: when reading that version began (epoch seconds, this machine's clock)
    read_at: float | None = None


def destination_props(
    props: ObjectProps,
    meta: ObjectMeta,
    dst: ObjectStore,
    policy: Policy,
    md5: str | None,
    *,
    stamp: bool = True,
) -> tuple[ObjectProps, int, int]:
    """Source props mapped for ``dst``; with ``stamp``, plus crosswind's md5 and
    mtime entries where they fit within the destination's metadata limit. Pure.

    Those entries are never copied on (``map_metadata`` drops every reserved
    entry and re-adds its own), so a round trip does not accumulate them; the
    mtime entry keeps the first origin's time.
    """
    flavor = dst.capabilities.metadata_flavor
    limit = dst.capabilities.max_metadata_bytes
    mapped = map_metadata(props.metadata, flavor, policy)
    md = dict(mapped.metadata)
    # The user's metadata (and the keymap that restores its names) must fit.
    check_metadata_size(md, limit, meta.key)
    if stamp:
        ours: dict[str, str] = {}
        # The first origin's mtime survives a round trip; otherwise the source's own.
        mtime = split_reserved(props.metadata)[1].get("mtime")
        if mtime is None and meta.last_modified is not None:
            mtime = meta.last_modified.isoformat()
        if mtime:
            ours[reserved_name(flavor, "mtime")] = mtime
        # Counted even when the md5 comes only at completion (multipart uploads).
        ours[reserved_name(flavor, "md5")] = md5 or "0" * 32
        # crosswind's entries are optional: they are left out rather than fail
        # an object whose own metadata fits.
        if metadata_size({**md, **ours}) <= limit:
            if not md5:
                del ours[reserved_name(flavor, "md5")]
            md.update(ours)
    return replace(props, metadata=md), len(mapped.renamed), len(mapped.dropped)


def write_way(size: int, md5_known: bool, settings: TransferSettings, budget_total: int,
              caps: Capabilities, can_stream: bool = True) -> WriteWay:
    """How an object is written. Crosswind's decision alone (no SDK may split a
    request on its own). Parts at or above ``multipart_threshold`` and above
    what the destination takes in one request; below ``stream_threshold`` (and
    the memory budget) read whole; in between streamed in one request where
    the destination can verify it (``streamed_put``: after the fact, or with
    the source's MD5 known first), else held whole when it fits the budget
    and ``max_whole`` (a destination that cannot stream), else parts. Pure."""
    if size >= settings.multipart_threshold or size > caps.max_single_put:
        return "parts"
    if size < settings.stream_threshold and size < budget_total:
        return "whole"
    if can_stream and (caps.streamed_put == "after"
                       or (caps.streamed_put == "md5_first" and md5_known)):
        return "stream"
    if ((not can_stream or caps.streamed_put == "no")
            and size < min(budget_total, settings.max_whole)):
        return "whole"
    return "parts"


def in_one_request(size: int, settings: TransferSettings, budget_total: int,
                   caps: Capabilities, md5_known: bool = True) -> bool:
    """Whether an object is written in one request (whole or streamed), rather
    than in parts (see ``write_way``). Pure."""
    return write_way(size, md5_known, settings, budget_total, caps) != "parts"


class UploadJournal:
    """Where the multipart uploads in flight are written down, so that a run
    killed at any moment leaves a trace the next one can clean up. ``intend``
    comes first: the service names the upload only once it exists."""

    def intend(self, key: str) -> str:
        """Before the upload is created; returns a token for ``started``."""
        return ""

    def started(self, key: str, upload_id: str, intent: str) -> None: ...

    def ended(self, key: str, upload_id: str) -> None: ...


class Transfer:
    def __init__(
        self,
        src: ObjectStore,
        dst: ObjectStore,
        settings: TransferSettings,
        budget: ByteBudget,
        stats: SyncStats,
        journal: UploadJournal | None = None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.settings = settings
        self.budget = budget
        self.stats = stats
        self.journal = journal or UploadJournal()
        self._streams: tuple[object, bool] | None = None
        return_chunks_to_the_os()

    async def _source_props(self, meta: ObjectMeta, from_get: ObjectProps | None) -> ObjectProps:
        if meta.props is not None:
            return meta.props
        if from_get is not None:
            return from_get
        return (await self.src.head(meta.key)).props or ObjectProps()

    def _dst_streams(self) -> bool:
        # Asked once per destination (callers may swap ``dst``): isinstance on a
        # runtime-checkable Protocol costs ~15 us a call.
        if self._streams is None or self._streams[0] is not self.dst:
            self._streams = (self.dst, isinstance(self.dst, StreamingPut))
        return self._streams[1]

    def way(self, meta: ObjectMeta) -> WriteWay:
        return write_way(meta.size, meta.content_md5 is not None, self.settings,
                         self.budget.total, self.dst.capabilities, self._dst_streams())

    async def copy(self, meta: ObjectMeta) -> CopyOutcome:
        way = self.way(meta)
        if way == "whole":
            return await self._copy_whole(meta)
        if way == "stream":
            return await self._copy_streamed(meta)
        return await self._copy_parts(meta)

    # -- one streamed request --------------------------------------------------
    async def _copy_streamed(self, meta: ObjectMeta) -> CopyOutcome:
        attempts = max(1, self.settings.stream_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await self._stream_once(meta)
            except TransientError as exc:
                # An SDK would have replayed bytes in memory; a stream is read again.
                if attempt == attempts:
                    raise
                log.info("streamed copy of %s failed (%s); reading it again", meta.key,
                         redact(str(exc)))
                await asyncio.sleep(min(4.0, 0.2 * 2 ** attempt))
        raise AssertionError("unreachable")

    async def _stream_once(self, meta: ObjectMeta) -> CopyOutcome:
        dst = self.dst
        assert isinstance(dst, StreamingPut)
        # What is held is the chunk in flight and the one being read, not the object.
        async with self.budget.hold(min(max(meta.size, 1), 2 * self.settings.stream_chunk)):
            read_at = time.time()
            reader = await self.src.get(meta.key, if_match=meta.etag)
            if hasattr(reader, "chunk_size"):
                reader.chunk_size = self.settings.stream_chunk
            props = await self._source_props(meta, reader.meta.props)
            # Checked before a byte is sent: a rejected object leaves nothing behind.
            self.settings.schemas.check_object(meta.key, meta.size, props)
            # The stamp can carry the MD5 only when it is known before the bytes
            # are sent (the listing's); S3's single-part ETag is the MD5 anyway.
            dst_props, renamed, dropped = destination_props(
                props, meta, dst, self.settings.metadata_policy, meta.content_md5,
                stamp=self.settings.stamp_metadata,
            )
            # With the source's MD5 known, the destination's check of what it
            # stored against it (S3: ETag; Azure: Content-MD5) is end to end.
            hash_here = meta.content_md5 is None or self.settings.stream_hash_known
            body = SourceStream(reader.chunks(), meta.size, meta.key, hash_md5=hash_here)
            try:
                receipt = await dst.put_stream(meta.key, body, dst_props, md5=meta.content_md5)
            except CrosswindError:
                # A source that failed or sent the wrong length is the cause, not
                # the broken request it left behind.
                body.raise_own_error()
                raise
            if not body.complete:
                # A store must have read the whole body; one that did not wrote
                # something else than what was read.
                raise IntegrityError(f"{meta.key}: the destination took {body.read} of "
                                     f"{meta.size} bytes")
            self._check_read(meta, meta.size, body.md5() or receipt.md5)
            self.stats.bytes_moved += meta.size
            return CopyOutcome(receipt, renamed, dropped,
                               reader.meta.last_modified or meta.last_modified, read_at)

    # -- one request -----------------------------------------------------------
    async def _copy_whole(self, meta: ObjectMeta) -> CopyOutcome:
        async with self.budget.hold(max(meta.size, 1)):
            read_at = time.time()
            reader = await self.src.get(meta.key, if_match=meta.etag)
            data = await reader.read_all()
            # hashlib releases the GIL: a big object is hashed off the event loop.
            digest = md5_hex(data) if len(data) < MiB else await asyncio.to_thread(md5_hex, data)
            md5 = self._check_read(meta, len(data), digest)
            props = await self._source_props(meta, reader.meta.props)
            self.settings.schemas.check_object(meta.key, meta.size, props)
            dst_props, renamed, dropped = destination_props(
                props, meta, self.dst, self.settings.metadata_policy, md5,
                stamp=self.settings.stamp_metadata,
            )
            receipt = await self.dst.put(meta.key, data, dst_props, md5=md5)
            self.stats.bytes_moved += len(data)
            return CopyOutcome(receipt, renamed, dropped,
                               reader.meta.last_modified or meta.last_modified, read_at)

    @staticmethod
    def _check_read(meta: ObjectMeta, size: int, md5: str) -> str:
        if size != meta.size:
            raise IntegrityError(
                f"{meta.key}: read {size} bytes from the source, its listing says {meta.size}"
            )
        if meta.content_md5 and meta.content_md5 != md5:
            raise IntegrityError(
                f"{meta.key}: bytes read from the source do not match its own MD5 "
                f"({md5} vs {meta.content_md5})"
            )
        return md5

    # -- parts -----------------------------------------------------------------
    def part_size_for(self, size: int) -> int:
        caps = self.dst.capabilities
        ps = max(self.settings.part_size, caps.min_part_size, math.ceil(size / caps.max_parts))
        return math.ceil(ps / MiB) * MiB if ps > MiB else ps

    async def _copy_parts(self, meta: ObjectMeta) -> CopyOutcome:
        size = meta.size
        ps = self.part_size_for(size)
        n = math.ceil(size / ps)
        k = self.settings.part_concurrency
        late = self.dst.capabilities.late_metadata
        # The listing's props when it has them (Azure: its etag pins them too);
        # else a HEAD's, and then that HEAD is the version whose props are copied.
        read_at = time.time()
        version = meta if meta.props is not None else await self.src.head(meta.key)
        props = await self._source_props(meta, version.props)
        self.settings.schemas.check_object(meta.key, meta.size, props)
        dst_props, renamed, dropped = destination_props(
            props, meta, self.dst, self.settings.metadata_policy,
            None if late else meta.content_md5, stamp=self.settings.stamp_metadata,
        )
        # The whole-object MD5 is stored at completion only where the stamps fit.
        late_md5 = late and self.settings.stamp_metadata and metadata_size(
            {**dst_props.metadata, reserved_name(self.dst.capabilities.metadata_flavor,
                                                 "md5"): "0" * 32}
        ) <= self.dst.capabilities.max_metadata_bytes
        # If start_upload fails, the intent stays: the service may have created
        # the upload all the same (a lost response), and the next run looks.
        intent = self.journal.intend(meta.key)
        upload = await self.dst.start_upload(meta.key, dst_props)
        self.journal.started(meta.key, upload.upload_id, intent)

        async def fetch(i: int) -> bytes:
            start = i * ps
            end = min(size, start + ps)
            reader = await self.src.get(meta.key, if_match=meta.etag, byte_range=(start, end))
            data = await reader.read_all()
            if len(data) != end - start:
                raise IntegrityError(
                    f"{meta.key}: part {i + 1} read {len(data)} bytes, expected {end - start}"
                )
            return data

        async def put(i: int, data: bytes, md5: str, lease: Lease) -> None:
            try:
                await upload.put_part(i + 1, data, md5)
                self.stats.bytes_moved += len(data)
            finally:
                lease.release()  # early, so the next parts can be read

        # Every part's bytes are a lease in ``leases`` from the moment they are
        # taken: whichever task owns them at the time (a fetch, the loop below,
        # a put, or none, if a put was cancelled before it started), leaving
        # this method releases what is still out.
        leases = LeaseSet(self.budget)
        fetches: deque[tuple[asyncio.Task[bytes], Lease]] = deque()
        puts: set[asyncio.Task[None]] = set()
        whole = hashlib.md5(usedforsecurity=False)
        part_md5s: list[str] = []
        launched = 0

        async def launch() -> None:
            nonlocal launched
            lease = await leases.acquire(min(ps, size - launched * ps))
            fetches.append((asyncio.create_task(fetch(launched)), lease))
            launched += 1

        try:
            while launched < min(k, n):
                await launch()
            for i in range(n):
                task, lease = fetches.popleft()
                data = await task
                pm = md5_hex(data)
                whole.update(data)
                part_md5s.append(pm)
                while len(puts) >= k:
                    done, _ = await asyncio.wait(puts, return_when=asyncio.FIRST_COMPLETED)
                    for t in done:
                        puts.discard(t)
                        t.result()
                puts.add(asyncio.create_task(put(i, data, pm, lease)))
                del data  # the put task owns the bytes now
                if launched < n:
                    await launch()
            await asyncio.gather(*puts)
            puts.clear()
            md5 = whole.hexdigest()
            if meta.content_md5 and meta.content_md5 != md5:
                raise IntegrityError(
                    f"{meta.key}: bytes read from the source do not match its own MD5 "
                    f"({md5} vs {meta.content_md5})"
                )
            late_md = {reserved_name(self.dst.capabilities.metadata_flavor, "md5"): md5}
            receipt = await upload.complete(size, md5, part_md5s, late_md if late_md5 else {})
        except BaseException:
            pending: list[asyncio.Task[Any]] = [f for f, _ in fetches] + list(puts)
            for p in pending:
                p.cancel()
            for p in pending:
                with contextlib.suppress(BaseException):
                    await p
            # The bytes are gone: give them back before the abort's round trip.
            leases.release_all()
            try:
                await upload.abort()
            except Exception as exc:
                # Still open: it stays recorded and the next run aborts it.
                log.warning("could not abort the upload of %s: %s", meta.key,
                            redact(str(exc)))
            else:
                self.journal.ended(meta.key, upload.upload_id)
            raise
        finally:
            # Also when the cleanup above was itself interrupted (a second cancel).
            leases.release_all()
        self.journal.ended(meta.key, upload.upload_id)
        return CopyOutcome(receipt, renamed, dropped,
                           version.last_modified or meta.last_modified, read_at)
