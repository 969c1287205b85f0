"""The object-store contract every backend meets.

Small on purpose (after rclone's ``fs.Fs`` and object_store's ``ObjectStore``):
list, head, get, put, multipart upload, delete. What a backend can do beyond
that is declared in ``Capabilities`` so callers ask instead of catching
"not implemented".

Errors: every method raises only ``crosswind.errors`` types —
``NotFound`` (key absent; ``head``/``get``), ``AlreadyExists`` (``PutMode.CREATE``
found an object), ``PreconditionFailed`` (``if_match`` did not hold),
``IntegrityError`` (the store received or reported other bytes than the ones
whose MD5 the caller passed), ``AuthError``, ``EndpointUnreachable``,
``TransientError``, ``InvalidKey``.

Ordering: ``list`` yields keys in Unicode code-point order (= UTF-8 byte order),
whatever the service's native order; backends adapt (see ``ordering.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from crosswind.entities import EdmDateTime, Entity
from crosswind.errors import CrosswindError, EntityMappingError
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt

MetadataFlavor = Literal["azure", "s3", "free"]
#: how a store verifies a write whose bytes stream in one request (``put_stream``):
#: ``"after"``: from its own report of what it stored (S3's ETag is the MD5 of the
#: bytes), so the MD5 need not be known before the bytes are sent;
#: ``"md5_first"``: only from a Content-MD5 sent before the bytes (Azure Put Blob:
#: the service rejects a body that does not match), so the MD5 must be known first;
#: ``"no"``: the store cannot stream a single request.
StreamedPut = Literal["after", "md5_first", "no"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    #: listings carry content headers and user metadata (no HEAD needed)
    listing_has_props: bool
    #: user metadata can be given when a multipart upload completes, so a hash
    #: computed while streaming can be stored on the object itself
    late_metadata: bool
    #: metadata key rules of the backend (see ``mapping.py``)
    metadata_flavor: MetadataFlavor
    #: parts of a multipart upload: limits
    min_part_size: int = 5 * 1024 * 1024
    max_parts: int = 10_000
    #: largest object written in one request
    max_single_put: int = 5 * 1024 * 1024 * 1024
    #: total bytes of user metadata the backend accepts
    max_metadata_bytes: int = 8192
    #: an object's etag changes when only its headers or metadata change (Azure);
    #: S3's ETag is the MD5 of the bytes, so a metadata-only change keeps it
    etag_tracks_metadata: bool = True
    #: whether and how ``put_stream`` (``StreamingPut``) verifies what it wrote
    streamed_put: StreamedPut = "no"


class ObjectReader(Protocol):
    """An open object: its listing entry with props, and its bytes as a stream."""

    meta: ObjectMeta

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read_all(self) -> bytes:
        """All the bytes at once, with as few copies as the backend allows."""
        ...


class StreamBody(Protocol):
    """Bytes of a known size read once, in order, while they are sent.

    Iterating yields the chunks; it raises ``IntegrityError`` when the source
    yields more or fewer bytes than ``size`` (a store must then not make the
    object visible: a request whose body stops short is never stored).
    ``md5()`` is the hex MD5 of the bytes yielded so far (of the whole object
    once the iteration has ended), or None when the caller chose not to hash
    them: it passes the source's MD5 as ``md5`` then, and the destination's
    verification against it is the end-to-end check.
    """

    size: int

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def md5(self) -> str | None: ...


@runtime_checkable
class StreamingPut(Protocol):
    """An optional ability (``Capabilities.streamed_put`` says how it verifies):
    write an object in one request while its bytes arrive, with memory bounded
    by a chunk, not by the object. Callers ask with ``isinstance`` and fall back
    to ``put`` (bytes in memory) or parts; a wrapper store that lacks the method
    simply is not streamed into."""

    async def put_stream(
        self,
        key: str,
        body: StreamBody,
        props: ObjectProps,
        *,
        md5: str | None = None,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> WriteReceipt:
        """Write ``body`` in one request and verify it: the store's report of what
        it stored must equal ``body.md5()`` and ``md5`` (the content's MD5 when
        the caller knew it before sending, sent as Content-MD5; ``"md5_first"``
        stores require it, and so does a body that is not hashed). Raises
        ``IntegrityError`` on a mismatch, after removing what the write made
        where it became visible (as ``put``)."""
        ...


class Upload(Protocol):
    """A multipart upload in progress. Nothing is visible until ``complete``."""

    upload_id: str

    async def put_part(self, number: int, data: bytes, md5: str) -> None:
        """Upload part ``number`` (1-based); raise ``IntegrityError`` if the
        store reports other bytes than those with hex MD5 ``md5``."""
        ...

    async def complete(
        self, size: int, md5: str, part_md5s: list[str], late_metadata: Mapping[str, str]
    ) -> WriteReceipt:
        """Make the object visible; ``late_metadata`` is added when the backend
        declares ``late_metadata``."""
        ...

    async def abort(self) -> None: ...


@runtime_checkable
class ObjectStore(Protocol):
    #: human-readable location for messages, e.g. ``s3://bucket``
    name: str
    capabilities: Capabilities

    def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        """Entries under ``prefix`` in code-point order, page by page."""
        ...

    async def head(self, key: str) -> ObjectMeta:
        """The entry for ``key`` with ``props`` filled."""
        ...

    async def get(
        self, key: str, *, if_match: str | None = None, byte_range: tuple[int, int] | None = None
    ) -> ObjectReader:
        """Open ``key`` (optionally bytes ``[start, end)``); ``if_match`` pins the version.
        The bytes are the stored ones: a ``Content-Encoding`` is never decoded."""
        ...

    async def put(
        self,
        key: str,
        data: bytes,
        props: ObjectProps,
        *,
        md5: str,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> WriteReceipt:
        """Write ``data`` in one request and verify it against hex ``md5``.
        Never split by an SDK; more than ``capabilities.max_single_put`` is
        refused (``StoreError``): the caller sends such objects in parts."""
        ...

    async def start_upload(
        self,
        key: str,
        props: ObjectProps,
        *,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> Upload: ...

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an upload left open by an earlier, crashed run (no-op if gone)."""
        ...

    async def abort_uploads_of(self, key: str) -> int:
        """Abort every open upload of exactly ``key``: one a run was killed in
        the middle of creating (the service made it, the run never learned or
        recorded its id). Returns how many. Called only for keys with such a
        recorded intent; a key crosswind replicates into has no other writer
        (a write on the replica side is a conflict)."""
        ...

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove ``key``; absent keys are not an error."""
        ...

    async def check(self, *, write: bool = False) -> None:
        """Probe that the container/bucket exists and that the credentials work
        (and, where the credential says so without writing, that they allow writes)."""
        ...

    async def close(self) -> None: ...


# -- record stores: metadata rows (Azure Tables, DocumentDB) -------------------------
#
# Both sides speak ``crosswind.entities.Entity``; each backend maps its own
# rows (SDK entities, BSON documents) at its boundary. Errors are the same
# ``crosswind.errors`` types as above; per-row failures of a batch are
# *results*, never exceptions, so one poison row cannot abort a batch.

RecordOp = Literal["upsert", "create", "delete"]
WriteStatus = Literal["ok", "stale", "conflict", "missing", "failed"]


@dataclass(frozen=True, slots=True)
class RecordCapabilities:
    #: most writes one ``write_batch`` call takes
    max_batch: int
    #: all writes of a batch must share one PartitionKey (Azure transactions)
    batch_one_partition: bool
    #: writes honour ``RecordWrite.if_match`` (etag preconditions)
    conditional_writes: bool
    #: ``list(since=...)`` filters on the server by the row's change time
    since_filter: bool
    #: the store can stream its own changes (DocumentDB change streams)
    change_stream: bool
    #: largest row the store holds, in bytes of its own measure
    max_record_bytes: int
    #: ``list`` yields rows in (PartitionKey, RowKey) code-point order
    sorted_listing: bool = True


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One write of a batch.

    ``upsert`` replaces the whole row (creating it if absent); ``create`` only
    if absent; ``delete`` removes it (only the keys of ``entity`` matter).
    ``if_match``: only if the row's current etag is this one.
    ``newer_only`` (upserts): not over a stored row whose source Timestamp is
    newer than ``entity.timestamp``; the result is then ``stale``. For reads that
    can race each other (one per object); a table scan reads each row once.
    """

    op: RecordOp
    entity: Entity
    if_match: str | None = None
    newer_only: bool = False


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to one ``RecordWrite``.

    ``ok``: applied (``etag`` is the row's new version when the store has one);
    ``stale``: not applied, the store holds a newer version of the source row;
    ``conflict``: a precondition failed (``if_match`` or ``create`` on an existing row);
    ``missing``: a delete found no row (nothing to do);
    ``failed``: not applied, ``error`` says why (``error.retryable`` tells if worth retrying).
    """

    write: RecordWrite
    status: WriteStatus
    etag: str | None = None
    error: CrosswindError | None = None


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A row the store holds but cannot present as an ``Entity``
    (e.g. a document with an array field); listings yield it in place."""

    partition_key: str | None
    row_key: str | None
    record_id: str
    error: EntityMappingError
    #: the raw row as text (extended JSON for documents), for the DLQ
    raw: str


@runtime_checkable
class RecordStore(Protocol):
    #: human-readable location, e.g. ``azure-table://account/table``
    name: str
    capabilities: RecordCapabilities

    def list(
        self, *, partition: str | None = None, since: EdmDateTime | None = None
    ) -> AsyncIterator[Entity | BadRecord]:
        """Rows (of one partition), streamed page by page in (PartitionKey, RowKey)
        code-point order. ``since``: only rows changed at or after it (needs
        ``since_filter``; other stores raise ``ConfigError``)."""
        ...

    async def get(self, partition_key: str, row_key: str) -> Entity:
        """The row, with its etag; ``NotFound`` if absent, ``EntityMappingError``
        if the store holds it in a form that cannot map."""
        ...

    async def write_batch(self, writes: Sequence[RecordWrite]) -> Sequence[WriteResult]:
        """Apply ``writes`` (within the capabilities; at most one write per key);
        one result per write, in order. Raises only when the store cannot be
        reached or refuses the credentials, never for one row's problem."""
        ...

    async def delete(self, partition_key: str, row_key: str, *, if_match: str | None = None
                     ) -> None:
        """Remove the row; an absent row is not an error. ``PreconditionFailed``
        if ``if_match`` does not hold."""
        ...

    async def check(self) -> None:
        """Probe that the table/collection is reachable and the credentials work."""
        ...

    async def server_time(self) -> EdmDateTime | None:
        """The store's own clock now, the one its rows' change times (``list(since=)``)
        are set by, never later than it; None if the store cannot tell. A scan by
        change time asks before it starts: its watermark may not pass this."""
        ...

    async def close(self) -> None: ...
