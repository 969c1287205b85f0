"""Amazon DocumentDB collection as a ``RecordStore``, plus its change feed
(pymongo's ``AsyncMongoClient``; SecantusDB in tests).

Only what DocumentDB has is used: unordered ``bulk_write``, a unique compound
index on (PartitionKey, RowKey), ``find`` sorted on it, change streams with
``fullDocument: updateLookup`` (no pre-images), ``retryWrites=false``.

Writes asked to (``RecordWrite.newer_only``) never move a row backwards: the
upsert only replaces a document whose ``_cw.ts`` (source Timestamp) is not
newer, else it reports ``stale``. So an old read (one object-driven read
racing another of the same row) cannot undo a newer one.

Change streams on real DocumentDB must be enabled per collection with the
admin command ``modifyChangeStreams``; MongoDB and SecantusDB do not know the
command (error 59) and need nothing. A resume token older than the history the
server keeps raises ``ChangeHistoryLost`` (server error 286); the caller then
reconciles by listing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from bson import json_util
from pymongo import AsyncMongoClient, DeleteOne, InsertOne, ReplaceOne, uri_parser
from pymongo import errors as pe

from crosswind.config import AwsConfig, is_loopback
from crosswind.entities import (
    EXTENDED_JSON,
    MAX_DOCUMENT_BYTES,
    EdmDateTime,
    Entity,
    document_to_entity,
    entity_to_document,
    id_text,
    id_value,
    parse_doc_id,
    sort_key,
)
from crosswind.errors import (
    AlreadyExists,
    AuthError,
    ChangeHistoryLost,
    ConfigError,
    CrosswindError,
    EndpointUnreachable,
    EntityMappingError,
    NotFound,
    SecretError,
    StoreError,
    TransientError,
)
from crosswind.secrets import REDACTOR, Renewal, is_reference, redact, resolve
from crosswind.secrets.renewal import renewing, renewing_listing
from crosswind.stores.base import BadRecord, RecordCapabilities, RecordWrite, WriteResult
from crosswind.tls import pymongo_kwargs

INDEX_NAME = "crosswind_pk_rk"
# ChangeStreamHistoryLost, ChangeStreamFatalError, CappedPositionLost
_HISTORY_LOST = {286, 280, 136}
_AUTH = {13, 18}  # Unauthorized, AuthenticationFailed
_TRANSIENT = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 16500}
_TOO_LARGE = {10334, 17419, 17420, 10329}
_BAD_FIELD = {2, 52, 56, 57}  # BadValue, DollarPrefixedFieldName, EmptyFieldName, DottedFieldName
_NOT_SUPPORTED = {59, 115}  # CommandNotFound, CommandNotSupported


# -- configuration ---------------------------------------------------------------------


#: URI options naming files the TLS set-up reads (pymongo opens them while parsing)
_TLS_FILES = ("tlsCAFile", "tlsCertificateKeyFile", "tlsCRLFile")
#: URI options that switch certificate or host-name verification off
_TLS_UNVERIFIED = ("tlsInsecure", "tlsAllowInvalidCertificates", "tlsAllowInvalidHostnames")
_WHERE = "[aws].documentdb_uri"


def _given_options(uri: str) -> dict[str, str]:
    """The options as written in the URI's query (lower-case names), before
    pymongo expands any (``tlsInsecure`` implies two more)."""
    query = uri.split("?", 1)[1] if "?" in uri else ""
    return {k.lower(): v for k, v in parse_qsl(query.replace(";", "&"))}


def _check_tls_files(given: Mapping[str, str]) -> None:
    """Each TLS file the URI names must be a readable file: one clear line naming
    the option and the path (pymongo says "The tlscafile file is not readable",
    or fails later with an SSL error)."""
    for name in _TLS_FILES:
        value = given.get(name.lower())
        if value is None:
            continue
        path = Path(str(value))
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            rel = "" if path.is_absolute() else " (relative to the working directory)"
            raise ConfigError(f"{_WHERE}: {name} = {str(path)!r}{rel} cannot be read: "
                              f"{exc.strerror or type(exc).__name__}") from None


def resolve_uri(cfg: AwsConfig, *, refresh: bool = False) -> str:
    """The connection URI: a reference (env:/file:) or a literal without a password
    (a literal password only for a loopback emulator); TLS unless loopback, and
    always with verification. Every problem is a ``ConfigError`` naming the
    setting (never the password)."""
    raw = cfg.documentdb_uri
    if not raw:
        raise ConfigError(f"{_WHERE} is required for metadata rows")
    where = _WHERE
    uri = resolve(raw, where=where, allow_literal=True, refresh=refresh).get_secret_value() \
        if is_reference(raw) else raw
    # First without validation (which opens files and resolves SRV records), so the
    # password is known to the redactor before any message about the URI is made.
    try:
        loose = uri_parser.parse_uri(uri, validate=False, warn=False)
    except (pe.InvalidURI, pe.ConfigurationError, ValueError) as exc:
        raise ConfigError(f"{where}: not a valid MongoDB URI: {redact(str(exc))}") from None
    password = loose.get("password")
    if password:
        REDACTOR.register(password)
    given = _given_options(uri)
    _check_tls_files(given)
    try:
        parsed = uri_parser.parse_uri(uri, validate=True, warn=False)
    except pe.ConfigurationError as exc:
        if "DNS" in str(exc):  # mongodb+srv: the SRV/TXT lookup failed
            raise EndpointUnreachable(f"{where}: cannot resolve the host: "
                                      f"{redact(str(exc))}") from None
        raise ConfigError(f"{where}: not a valid MongoDB URI: {redact(str(exc))}") from None
    except (pe.InvalidURI, ValueError, TypeError, OSError) as exc:
        raise ConfigError(f"{where}: not a valid MongoDB URI: {redact(str(exc))}") from None
    if password and not is_reference(raw) and not cfg.emulator:
        raise SecretError(f"{where}: a literal password is refused; give a reference "
                          "(env:NAME or file:PATH) or set emulator = true for a local emulator")
    nodes = parsed["nodelist"]
    if not nodes or any(not h for h, _ in nodes):
        raise ConfigError(f"{where}: names no host")
    loopback = all(is_loopback(f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}")
                   for h, p in nodes)
    opts = parsed.get("options", {})
    if not loopback and not (opts.get("tls") or opts.get("ssl")):
        raise ConfigError(f"{where}: DocumentDB needs TLS; add tls=true to the URI")
    off = [f"{n}=true" for n in _TLS_UNVERIFIED if given.get(n.lower(), "").lower() == "true"]
    if off and not (loopback and cfg.emulator):
        raise ConfigError(f"{where}: {' and '.join(off)} would switch TLS certificate "
                          "checks off, which is refused (name the CA with tlsCAFile instead)")
    if opts.get("retrywrites"):
        raise ConfigError(f"{where}: DocumentDB does not support retryable writes; "
                          "use retryWrites=false")
    return uri


def _tls_hint(uri: str, exc: BaseException) -> str:
    """Which TLS file option an SSL error is likely about (the SSL module does not
    say which file it was reading)."""
    import ssl

    if not isinstance(exc, ssl.SSLError) and "PEM" not in str(exc) and "key" not in str(exc):
        return ""
    try:
        named = [n for n in _TLS_FILES if n.lower() in _given_options(uri)]
    except ValueError:
        return ""
    return f" (check {' and '.join(named)})" if named else ""


def _host_label(uri: str) -> str:
    try:
        nodes = uri_parser.parse_uri(uri, validate=False, warn=False)["nodelist"]
    except (pe.InvalidURI, pe.ConfigurationError, ValueError):
        return "documentdb"
    return ",".join(f"{h}:{p}" for h, p in nodes)


# -- errors ----------------------------------------------------------------------------


def translate(exc: BaseException, where: str) -> StoreError:
    msg = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:300]
    code = getattr(exc, "code", None)
    if isinstance(exc, (pe.ServerSelectionTimeoutError, pe.ConnectionFailure,
                        pe.NetworkTimeout)):
        return EndpointUnreachable(f"{where}: cannot reach the server: {msg}")
    if code in _AUTH or (isinstance(exc, pe.ConfigurationError) and "auth" in msg.lower()):
        return AuthError(f"{where}: credentials rejected or not allowed ({code}): {msg}")
    if code in _HISTORY_LOST:
        return ChangeHistoryLost(f"{where}: the change stream history is gone ({code}): {msg}")
    if code == 11000:
        return AlreadyExists(f"{where}: duplicate key: {msg}")
    if code in _TRANSIENT or (isinstance(exc, pe.PyMongoError)
                              and exc.has_error_label("RetryableWriteError")):
        return TransientError(f"{where}: server busy or failing over ({code}): {msg}")
    return StoreError(f"{where}: {code or type(exc).__name__}: {msg}")


@contextlib.contextmanager
def mongo_errors(where: str) -> Iterator[None]:
    try:
        yield
    except pe.PyMongoError as exc:
        raise translate(exc, where) from None


def raw_text(doc: Mapping[str, Any], limit: int = 64 * 1024) -> str:
    text = json_util.dumps(doc, json_options=EXTENDED_JSON)
    return text if len(text) <= limit else text[:limit] + "…(truncated)"


def _bad(doc: Mapping[str, Any], exc: EntityMappingError) -> BadRecord:
    pk, rk = doc.get("PartitionKey"), doc.get("RowKey")
    return BadRecord(pk if isinstance(pk, str) else None, rk if isinstance(rk, str) else None,
                     id_text(doc.get("_id")), exc, raw_text(doc))


# -- the change feed -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One change of the collection, already mapped.

    ``doc_id`` is the document's ``_id`` (``id_text``). ``op`` ``upsert``:
    ``entity`` is the document now (``error``/``raw`` instead when it cannot
    map); ``delete``: only ``doc_id`` is known, as DocumentDB keeps no
    pre-images; ``key`` is then only what the ``_id`` would name if crosswind had
    made it (``parse_doc_id``), a guess the ledger's record of the ``_id``
    overrides. ``token`` resumes the stream just after this change.
    """

    op: Literal["upsert", "delete"]
    doc_id: str
    key: tuple[str, str] | None
    entity: Entity | None
    error: EntityMappingError | None
    raw: str | None
    token: Mapping[str, Any]
    #: when the change was made on the server (``wallTime``, else ``clusterTime``):
    #: where the replication lag of a change-stream event is measured from
    at: datetime | None = None


def _change_time(change: Mapping[str, Any]) -> datetime | None:
    wall = change.get("wallTime")
    if isinstance(wall, datetime):
        return wall if wall.tzinfo else wall.replace(tzinfo=UTC)
    ct = change.get("clusterTime")
    as_dt = getattr(ct, "as_datetime", None)
    return as_dt() if callable(as_dt) else None


class ChangeFeed:
    """An open change stream. ``next`` waits at most ``wait_s`` seconds."""

    def __init__(self, stream: Any, where: str) -> None:
        self.stream = stream
        self.where = where
        self._peeked: list[dict[str, Any]] = []

    @property
    def token(self) -> Mapping[str, Any] | None:
        tok = self.stream.resume_token
        return dict(tok) if tok is not None else None

    async def start_token(self) -> Mapping[str, Any] | None:
        """Where the stream starts, before any change is read (for a reconcile)."""
        if self.token is None:
            with mongo_errors(self.where):
                change = await self.stream.try_next()
            if change is not None:
                self._peeked.append(change)
                # The token of the change before it is not known; start from this one
                # (it is applied again after the reconcile; writes are idempotent).
        return self.token

    async def next(self, wait_s: float) -> RecordChange | None:
        deadline = time.monotonic() + wait_s
        while True:
            if self._peeked:
                change: dict[str, Any] | None = self._peeked.pop(0)
            else:
                with mongo_errors(self.where):
                    change = await self.stream.try_next()
            if change is not None:
                mapped = self._map(change)
                if mapped is not None:
                    return mapped
                continue
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0)

    def _map(self, change: Mapping[str, Any]) -> RecordChange | None:
        kind = change.get("operationType")
        token = dict(change["_id"])
        if kind in ("invalidate", "drop", "rename", "dropDatabase"):
            raise ChangeHistoryLost(f"{self.where}: the change stream ended ({kind}); "
                                    "a reconcile is needed")
        _id = (change.get("documentKey") or {}).get("_id")
        doc_id = id_text(_id)
        key = parse_doc_id(_id)
        if kind == "delete":
            return RecordChange("delete", doc_id, key, None, None, None, token,
                                _change_time(change))
        if kind not in ("insert", "update", "replace"):
            return None
        doc = change.get("fullDocument")
        if doc is None:
            return None  # deleted since; its delete event follows
        try:
            entity = document_to_entity(doc)
        except EntityMappingError as exc:
            pk, rk = doc.get("PartitionKey"), doc.get("RowKey")
            if isinstance(pk, str) and isinstance(rk, str):
                key = (pk, rk)
            return RecordChange("upsert", doc_id, key, None, exc, raw_text(doc), token,
                                _change_time(change))
        return RecordChange("upsert", doc_id, entity.key, entity, None, None, token,
                            _change_time(change))

    async def close(self) -> None:
        with contextlib.suppress(pe.PyMongoError):
            await self.stream.close()


# -- the store -------------------------------------------------------------------------


class DocumentDBStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str,
                 collection: str, label: str, *, page_size: int = 1000,
                 max_batch: int = 1000) -> None:
        self.client = client
        self.db = client[database]
        self.coll = self.db[collection]
        self.database = database
        self.collection = collection
        self.page_size = page_size
        self.name = f"documentdb://{label}/{database}.{collection}"
        self.capabilities = RecordCapabilities(
            max_batch=max_batch, batch_one_partition=False, conditional_writes=False,
            since_filter=False, change_stream=True, max_record_bytes=MAX_DOCUMENT_BYTES,
        )
        self._cfg: AwsConfig | None = None
        self._uri: str | None = None
        self._retired: list[AsyncMongoClient[dict[str, Any]]] = []
        self.renewal = Renewal(self.name, "mongodb", ())

    @classmethod
    def open(cls, cfg: AwsConfig, *, page_size: int = 1000, max_batch: int = 1000
             ) -> DocumentDBStore:
        uri = resolve_uri(cfg)
        store = cls(_mongo_client(uri), cfg.database, cfg.collection, _host_label(uri),
                    page_size=page_size, max_batch=max_batch)
        store._cfg, store._uri = cfg, uri
        refs = (f"{_WHERE} ({cfg.documentdb_uri})",) if cfg.documentdb_uri and is_reference(
            cfg.documentdb_uri) else ()
        store.renewal = Renewal(store.name, _principal(uri), refs, store._renew)
        return store

    async def _renew(self) -> bool:
        """The credentials were refused: resolve the URI again; a new client if it changed."""
        if self._cfg is None:
            return False
        uri = await asyncio.to_thread(resolve_uri, self._cfg, refresh=True)
        if uri == self._uri:
            return False
        # The old client stays open for calls and change streams in flight until close.
        self._retired.append(self.client)
        self._uri = uri
        self.client = _mongo_client(uri)
        self.db = self.client[self.database]
        self.coll = self.db[self.collection]
        return True

    # -- reads ---------------------------------------------------------------------
    @renewing_listing(lambda r: sort_key(r.partition_key or "", r.row_key or ""))
    async def list(self, *, partition: str | None = None, since: EdmDateTime | None = None
                   ) -> AsyncIterator[Entity | BadRecord]:
        if since is not None:
            raise ConfigError(f"{self.name}: listing by change time is not supported here")
        query = {} if partition is None else {"PartitionKey": partition}
        with mongo_errors(self.name):
            cursor = self.coll.find(query).sort([("PartitionKey", 1), ("RowKey", 1)]).batch_size(
                self.page_size)
            async for doc in cursor:
                try:
                    yield document_to_entity(doc)
                except EntityMappingError as exc:
                    yield _bad(doc, exc)

    @renewing
    async def get(self, partition_key: str, row_key: str) -> Entity:
        doc = await self.get_document(partition_key, row_key)
        return document_to_entity(doc)

    @renewing
    async def get_document(self, partition_key: str, row_key: str) -> dict[str, Any]:
        with mongo_errors(self.name):
            doc = await self.coll.find_one({"PartitionKey": partition_key, "RowKey": row_key})
        if doc is None:
            raise NotFound(f"{self.name}: no document for ({partition_key!r}, {row_key!r})")
        return doc

    @renewing
    async def get_by_id(self, doc_id: str) -> dict[str, Any]:
        """The document whose ``_id`` is ``doc_id`` (``id_text`` form)."""
        _id = id_value(doc_id)
        with mongo_errors(self.name):
            doc = await self.coll.find_one({"_id": _id})
        if doc is None:
            raise NotFound(f"{self.name}: no document with _id {doc_id!r}")
        return doc

    @renewing
    async def count(self) -> int:
        with mongo_errors(self.name):
            return int(await self.coll.estimated_document_count())

    # -- writes --------------------------------------------------------------------
    @renewing
    async def write_batch(self, writes: Sequence[RecordWrite]) -> Sequence[WriteResult]:
        results: builtins.list[WriteResult | None] = [None] * len(writes)
        ops: builtins.list[Any] = []
        where: builtins.list[int] = []  # op index → write index
        for i, w in enumerate(writes):
            e = w.entity
            if w.op == "delete":
                ops.append(DeleteOne({"PartitionKey": e.partition_key, "RowKey": e.row_key}))
                where.append(i)
                continue
            try:
                doc = entity_to_document(e)
            except EntityMappingError as exc:
                results[i] = WriteResult(w, "failed", error=exc)
                continue
            if w.op == "create":
                ops.append(InsertOne(doc))
            else:
                flt: dict[str, Any] = {"_id": doc["_id"]}
                # Only when asked: the extra condition costs SecantusDB a third of
                # its upsert rate.
                if w.newer_only and e.timestamp is not None:
                    # "not newer" (a missing _cw.ts matches too). Not an $or: with one,
                    # SecantusDB stops using the _id index and scans (30 vs 3,000/s).
                    flt["_cw.ts"] = {"$not": {"$gt": e.timestamp.iso}}
                ops.append(ReplaceOne(flt, doc, upsert=True))
            where.append(i)
        errors: dict[int, Mapping[str, Any]] = {}
        if ops:
            try:
                with mongo_errors(self.name):
                    try:
                        await self.coll.bulk_write(ops, ordered=False)
                    except pe.BulkWriteError as exc:
                        if exc.details.get("writeConcernErrors"):
                            raise TransientError(f"{self.name}: write concern not met") from None
                        errors = {int(we["index"]): we for we in exc.details["writeErrors"]}
            except AlreadyExists:  # a bulk error pymongo did not itemise
                raise StoreError(f"{self.name}: bulk write failed without per-write details"
                                 ) from None
        dup_upserts: builtins.list[int] = []
        for op_index, i in enumerate(where):
            we = errors.get(op_index)
            w = writes[i]
            if we is None:
                results[i] = WriteResult(w, "ok")
            elif int(we.get("code", 0)) == 11000 and w.op == "upsert":
                dup_upserts.append(i)
            else:
                results[i] = self._failure(w, we)
        if dup_upserts:
            await self._classify_duplicates(writes, dup_upserts, results)
        return [r for r in results if r is not None]

    async def _classify_duplicates(self, writes: Sequence[RecordWrite],
                                   idx: builtins.list[int],
                                   results: builtins.list[WriteResult | None]) -> None:
        """A duplicate key on an upsert: either the stored document is newer (the
        upsert's condition did not hold) or another ``_id`` holds these keys."""
        ids = [entity_to_document(writes[i].entity)["_id"] for i in idx]
        with mongo_errors(self.name):
            found = {d["_id"]: d async for d in self.coll.find({"_id": {"$in": ids}},
                                                               {"_cw.ts": 1})}
        for i, _id in zip(idx, ids, strict=True):
            w = writes[i]
            if _id in found:
                results[i] = WriteResult(w, "stale")
            else:
                results[i] = WriteResult(w, "failed", error=AlreadyExists(
                    f"{self.name}: another document (other _id) already holds PartitionKey "
                    f"{w.entity.partition_key!r} / RowKey {w.entity.row_key!r}"))

    def _failure(self, w: RecordWrite, we: Mapping[str, Any]) -> WriteResult:
        code = int(we.get("code", 0))
        msg = redact(str(we.get("errmsg", "")))[:300]
        where = f"{self.name} ({w.entity.partition_key!r}, {w.entity.row_key!r})"
        if code == 11000:
            return WriteResult(w, "conflict", error=AlreadyExists(f"{where}: already exists"))
        err: CrosswindError
        if code in _TOO_LARGE:
            err = EntityMappingError("oversize", f"{where}: the server refused the document as "
                                     f"too large ({code}): {msg}")
        elif code in _BAD_FIELD:
            err = EntityMappingError("unmappable", f"{where}: the server refused the document "
                                     f"({code}): {msg}")
        else:
            err = translate(pe.OperationFailure(msg, code), where)
        return WriteResult(w, "failed", error=err)

    @renewing
    async def delete(self, partition_key: str, row_key: str, *, if_match: str | None = None
                     ) -> None:
        with mongo_errors(self.name):
            await self.coll.delete_one({"PartitionKey": partition_key, "RowKey": row_key})

    # -- admin ---------------------------------------------------------------------
    @renewing
    async def check(self) -> None:
        with mongo_errors(self.name):
            await self.db.command("ping")

    @renewing
    async def server_time(self) -> EdmDateTime | None:
        """The server's clock (``hello``'s ``localTime``), or None; documents have
        no server-set change time, so nothing here depends on it."""
        with mongo_errors(self.name):
            hello = await self.db.command("hello")
        when = hello.get("localTime")
        return EdmDateTime.from_datetime(when) if isinstance(when, datetime) else None

    @renewing
    async def ensure_index(self) -> None:
        """The unique (PartitionKey, RowKey) index: idempotent upserts and sorted listings."""
        keys = [("PartitionKey", 1), ("RowKey", 1)]
        try:
            with mongo_errors(self.name):
                await self.coll.create_index(keys, unique=True, name=INDEX_NAME)
        except StoreError:
            # The same index under another name is fine; anything else is not.
            with mongo_errors(self.name):
                info = await self.coll.index_information()
            if not any(v.get("key") == keys and v.get("unique") for v in info.values()):
                raise

    async def enable_change_streams(self) -> bool:
        """``modifyChangeStreams`` (DocumentDB); False where the server has no such
        command because its change streams are always on (MongoDB, SecantusDB)."""
        try:
            await self.client.admin.command({
                "modifyChangeStreams": 1, "database": self.database,
                "collection": self.collection, "enable": True})
        except pe.OperationFailure as exc:
            if exc.code in _NOT_SUPPORTED:
                return False
            raise translate(exc, f"{self.name}: modifyChangeStreams") from None
        except pe.PyMongoError as exc:
            raise translate(exc, self.name) from None
        return True

    @renewing
    async def open_changes(self, resume_token: Mapping[str, Any] | None = None,
                           max_await_ms: int = 200) -> ChangeFeed:
        """A change feed from ``resume_token`` (or from now); ``ChangeHistoryLost``
        if the token is older than the history the server keeps."""
        kw: dict[str, Any] = {"full_document": "updateLookup", "max_await_time_ms": max_await_ms}
        if resume_token is not None:
            kw["resume_after"] = resume_token
        with mongo_errors(self.name):
            stream = await self.coll.watch(**kw)
        return ChangeFeed(stream, self.name)

    async def close(self) -> None:
        for old in self._retired:
            await old.close()
        await self.client.close()


def _mongo_client(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    # Fail in seconds when the server is unreachable, unless the URI says otherwise.
    given = {k.lower() for k in uri_parser.parse_uri(uri, validate=False, warn=False)
             .get("options", {})}
    timeouts: dict[str, Any] = {k: 10_000 for k in ("serverSelectionTimeoutMS",
                                                    "connectTimeoutMS")
                                if k.lower() not in given}
    opts = _given_options(uri)
    tls: dict[str, Any] = {}
    if opts.get("tls", opts.get("ssl", "")).lower() == "true":
        tls = pymongo_kwargs(opts)  # [tls] ca_bundle, unless the URI names its own CA file
    try:
        return AsyncMongoClient(uri, uuidRepresentation="standard", tz_aware=True, tzinfo=UTC,
                                retryWrites=False, **timeouts, **tls)
    except (pe.ConfigurationError, ValueError, TypeError, OSError) as exc:
        # Options that parse but cannot work together, or TLS files that are
        # not what they say (the SSL context is built here).
        raise ConfigError(f"{_WHERE}: the client refuses these settings: "
                          f"{redact(str(exc))}{_tls_hint(uri, exc)}") from None


def _principal(uri: str) -> str:
    try:
        user = uri_parser.parse_uri(uri, validate=False, warn=False).get("username")
    except (pe.InvalidURI, pe.ConfigurationError, ValueError):
        user = None
    return f"mongodb user {user}" if user else "mongodb (no user)"


def token_text(token: Mapping[str, Any]) -> str:
    return json_util.dumps(token, json_options=json_util.CANONICAL_JSON_OPTIONS)


def token_from_text(text: str) -> dict[str, Any]:
    loaded = json_util.loads(text, json_options=json_util.CANONICAL_JSON_OPTIONS)
    if not isinstance(loaded, dict):
        raise ValueError("a resume token is a document")
    return loaded
