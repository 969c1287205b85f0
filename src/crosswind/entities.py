"""Azure Table entities and DocumentDB documents, and the lossless mapping
between them. Pure; no I/O.

``Entity`` is the neutral row both record stores speak (``stores/base.py``):
keys, typed properties (``Prop``: an EDM type and a value), and the source
version (etag, Timestamp). ``entity_to_document`` / ``document_to_entity``
map it to and from a BSON document:

===============  =======================  =========================================
EDM type         BSON                     notes
===============  =======================  =========================================
Edm.String       string
Edm.Int32        int32
Edm.Int64        int64                    ``Int64`` even for small values
Edm.Double       double                   NaN, ±Infinity and -0.0 kept
Edm.Boolean      bool
Edm.DateTime     date (UTC, milliseconds) the exact 100-ns value is kept in
                                          ``_cw.dt.<name>`` while the date matches
Edm.Guid         binary subtype 4 (UUID)
Edm.Binary       binary subtype 0
===============  =======================  =========================================

A document crosswind writes is ``{_id: "<PartitionKey>/<RowKey>", PartitionKey,
RowKey, <properties>..., _cw: {...}}``. ``/`` cannot occur in a table key, so
that ``_id`` is unambiguous (``parse_doc_id``). ``_cw`` holds sync fields, never
user data: ``etag`` and ``ts`` (Azure etag and Timestamp of the source row),
``dt`` (exact DateTimes), ``v`` (mapping version).

Documents written on the AWS side may have any ``_id`` (an ObjectId, or a
string that is not their keys): the keys are the ``PartitionKey``/``RowKey``
fields, never the ``_id``. An entity read from a document keeps that
document's ``_id`` as ``record_id`` (text, ``id_text``), so that what is
recorded about it, and what is written back to it, names that very document.

From documents written on the AWS side: ``null`` means "no property"; an int
that BSON stores as int32 becomes Edm.Int32 and an int64 Edm.Int64; nested
documents, arrays, ObjectId, Decimal128 and other BSON types have no EDM type
and raise ``EntityMappingError(kind="unmappable")``.

Limits (``check_entity_limits``, ``check_document_size``): Azure allows 252
custom properties, names up to 255 characters, 64 KiB per property (a string
counts 2 bytes per UTF-16 unit), 1 MiB per entity (Microsoft's size formula),
keys up to 1024 UTF-16 units without ``/ \\ # ?`` or control characters;
DocumentDB allows 16 MiB per document and no field names with ``$`` or ``.``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import bson
from bson import json_util
from bson.binary import Binary, UuidRepresentation
from bson.codec_options import CodecOptions
from bson.int64 import Int64

from crosswind.errors import EntityMappingError
from crosswind.keys import MAX_KEY_LENGTH, utf16_len

KiB = 1024
MiB = 1024 * KiB
MAX_PROPERTIES = 252
MAX_PROPERTY_NAME = 255
MAX_PROPERTY_BYTES = 64 * KiB
MAX_ENTITY_BYTES = 1 * MiB
MAX_DOCUMENT_BYTES = 16 * MiB
#: fields of a document that are not entity properties
SYSTEM_FIELDS = frozenset({"_id", "PartitionKey", "RowKey", "_cw"})
#: Azure system properties no entity may carry as its own
AZURE_SYSTEM = frozenset({"PartitionKey", "RowKey", "Timestamp"})
MAPPING_VERSION = 1
#: how documents must be decoded for a lossless round trip
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, tzinfo=UTC, uuid_representation=UuidRepresentation.STANDARD
)

_FORBIDDEN_IN_KEY = re.compile(r"[\x00-\x1f\x7f-\x9f/\\#?]")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class Edm(StrEnum):
    STRING = "Edm.String"
    INT32 = "Edm.Int32"
    INT64 = "Edm.Int64"
    DOUBLE = "Edm.Double"
    BOOLEAN = "Edm.Boolean"
    DATETIME = "Edm.DateTime"
    GUID = "Edm.Guid"
    BINARY = "Edm.Binary"


# -- Edm.DateTime at full precision --------------------------------------------------

_YEAR1 = datetime(1, 1, 1, tzinfo=UTC)
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?(Z|[+-]00:00)?\Z")
TICKS_PER_MS = 10_000
MIN_AZURE_TICKS = 504911232000000000  # 1601-01-01T00:00:00Z, the earliest Azure accepts


@dataclass(frozen=True, slots=True, order=True)
class EdmDateTime:
    """An Edm.DateTime as .NET ticks (100 ns since 0001-01-01T00:00:00Z, UTC):
    Azure keeps seven fractional digits; ``datetime`` only six, BSON three."""

    ticks: int

    @classmethod
    def from_iso(cls, text: str) -> EdmDateTime:
        m = _ISO.match(text)
        if not m:
            raise ValueError(f"{text!r} is not an ISO 8601 UTC timestamp")
        y, mo, d, h, mi, s, frac, _ = m.groups()
        base = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
        extra = int((frac or "0").ljust(7, "0"))
        return cls(((base - _YEAR1) // timedelta(microseconds=1)) * 10 + extra)

    @classmethod
    def from_datetime(cls, dt: datetime) -> EdmDateTime:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return cls(((dt - _YEAR1) // timedelta(microseconds=1)) * 10)

    @property
    def micro_datetime(self) -> datetime:
        """Truncated to microseconds."""
        return _YEAR1 + timedelta(microseconds=self.ticks // 10)

    @property
    def ms_datetime(self) -> datetime:
        """Truncated to milliseconds: what a BSON date holds."""
        return _YEAR1 + timedelta(milliseconds=self.ticks // TICKS_PER_MS)

    @property
    def iso(self) -> str:
        """``YYYY-MM-DDTHH:MM:SS.fffffffZ``: fixed width, so text order is time order."""
        d = _YEAR1 + timedelta(seconds=self.ticks // 10_000_000)
        return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:"
                f"{d.second:02d}.{self.ticks % 10_000_000:07d}Z")

    def __str__(self) -> str:
        return self.iso


# -- properties and entities ---------------------------------------------------------

PropValue = str | int | float | bool | EdmDateTime | uuid.UUID | bytes


def _canonical(edm: Edm, value: PropValue) -> str:
    """Text that differs exactly when values differ (NaN == NaN, -0.0 != 0.0).

    Every NaN is one value: Azure writes any NaN as the text ``"NaN"`` and reads
    back the quiet NaN, so a sign or payload bit can never survive a round trip
    and must not make two rows differ."""
    if edm is Edm.DOUBLE:
        if math.isnan(value):  # type: ignore[arg-type]
            return "nan"
        return struct.pack(">d", value).hex()
    if edm is Edm.BINARY:
        return base64.b64encode(value).decode()  # type: ignore[arg-type]
    if edm is Edm.BOOLEAN:
        return "true" if value else "false"
    if edm is Edm.DATETIME:
        return value.iso  # type: ignore[union-attr]
    return str(value)


@dataclass(frozen=True, slots=True, eq=False)
class Prop:
    """One typed property value."""

    edm: Edm
    value: PropValue

    def canonical(self) -> str:
        return _canonical(self.edm, self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prop):
            return NotImplemented
        return self.edm is other.edm and self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash((self.edm, self.canonical()))

    def __repr__(self) -> str:
        return f"Prop({self.edm.value}, {self.value!r})"


EMPTY_PROPS: Mapping[str, Prop] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Entity:
    """A table row: keys, custom properties, and the version it was read at.

    ``etag`` and ``timestamp`` describe the Azure row this came from (or was
    written as); they are not content and ``same_content`` ignores them.
    """

    partition_key: str
    row_key: str
    properties: Mapping[str, Prop] = field(default_factory=lambda: EMPTY_PROPS)
    etag: str | None = None
    timestamp: EdmDateTime | None = None
    #: the ``_id`` (``id_text``) of the document this was read from, None for a
    #: table row; not content, and not compared
    record_id: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.partition_key, self.row_key)

    def same_content(self, other: Entity) -> bool:
        return self.key == other.key and dict(self.properties) == dict(other.properties)

    def content_hash(self) -> str:
        """SHA-256 of keys and properties (not etag/Timestamp), stable across processes.

        Values enter by ``repr``, which is exact for every value type here (floats
        round-trip, -0.0 differs from 0.0); it runs once per synced row, so it is
        kept cheap."""
        h = hashlib.sha256(repr((self.partition_key, self.row_key)).encode(
            "utf-8", "surrogatepass"))
        for name in sorted(self.properties):
            p = self.properties[name]
            h.update(f"\x00{name}\x00{p.edm.value}\x00{p.value!r}".encode(
                "utf-8", "surrogatepass"))
        return h.hexdigest()


def sort_key(pk: str, rk: str) -> str:
    """One string whose order is (PartitionKey, RowKey) order: keys hold no NUL."""
    return f"{pk}\x00{rk}"


def doc_id(pk: str, rk: str) -> str:
    return f"{pk}/{rk}"


def parse_doc_id(value: object) -> tuple[str, str] | None:
    """(PartitionKey, RowKey) an ``_id`` would have if ``doc_id`` made it, else None.

    Only a guess for documents written on the AWS side (any string with a ``/``
    parses): what crosswind recorded about the ``_id`` comes first."""
    if not isinstance(value, str) or "/" not in value:
        return None
    pk, rk = value.split("/", 1)
    return pk, rk


_ID_JSON = "json:"
#: canonical extended JSON; UUIDs (documents are read with the standard
#: representation) as binary subtype 4, which the default options refuse to encode
EXTENDED_JSON = json_util.CANONICAL_JSON_OPTIONS.with_options(
    uuid_representation=UuidRepresentation.STANDARD)


def id_text(value: object) -> str:
    """The text form of any ``_id``, exact and reversible (``id_value``): a string
    is itself; anything else (ObjectId, number, document), or a string that
    starts with ``json:`` itself, is ``json:`` + canonical extended JSON, so
    ObjectId("…") and the string "…" never share a name."""
    if isinstance(value, str) and not value.startswith(_ID_JSON):
        return value
    return _ID_JSON + json_util.dumps(value, json_options=EXTENDED_JSON)


def id_value(text: str) -> Any:
    """The ``_id`` value ``id_text`` made ``text`` from."""
    if text.startswith(_ID_JSON):
        return json_util.loads(text[len(_ID_JSON):], json_options=EXTENDED_JSON)
    return text


# -- checks --------------------------------------------------------------------------


def check_key(what: str, key: object) -> str:
    if not isinstance(key, str):
        raise EntityMappingError("invalid-key", f"{what} is {type(key).__name__}, not a string")
    bad = _FORBIDDEN_IN_KEY.search(key)
    if bad:
        raise EntityMappingError("invalid-key", f"{what} {key[:80]!r} holds {bad.group()!r}, "
                                 "which Azure Table keys cannot hold")
    if utf16_len(key) > MAX_KEY_LENGTH:
        raise EntityMappingError("invalid-key", f"{what} is {utf16_len(key)} UTF-16 units long; "
                                 f"Azure Table keys hold at most {MAX_KEY_LENGTH}")
    return key


def property_size(p: Prop) -> int:
    """Bytes a value counts for in Azure's entity size formula."""
    v = p.value
    if p.edm is Edm.STRING:
        return 4 + 2 * utf16_len(v)  # type: ignore[arg-type]
    if p.edm is Edm.BINARY:
        return 4 + len(v)  # type: ignore[arg-type]
    return {Edm.INT32: 4, Edm.INT64: 8, Edm.DOUBLE: 8, Edm.BOOLEAN: 1, Edm.DATETIME: 8,
            Edm.GUID: 16}[p.edm]


def entity_size(e: Entity) -> int:
    """Azure's formula: 4 + 2·len(PK+RK) + Σ(8 + 2·len(name) + size(value))."""
    size = 4 + 2 * (utf16_len(e.partition_key) + utf16_len(e.row_key))
    for name, p in e.properties.items():
        size += 8 + 2 * utf16_len(name) + property_size(p)
    return size


def _where(e: Entity) -> str:
    return f"row ({e.partition_key[:60]!r}, {e.row_key[:60]!r})"


def check_entity_limits(e: Entity) -> None:
    """Raise ``EntityMappingError`` if Azure Table Storage could not store ``e``."""
    check_key("PartitionKey", e.partition_key)
    check_key("RowKey", e.row_key)
    if len(e.properties) > MAX_PROPERTIES:
        raise EntityMappingError("oversize", f"{_where(e)} has {len(e.properties)} properties; "
                                 f"Azure Tables allow {MAX_PROPERTIES}")
    for name, p in e.properties.items():
        if name in AZURE_SYSTEM or not name.isidentifier() or len(name) > MAX_PROPERTY_NAME:
            raise EntityMappingError(
                "unmappable", f"{_where(e)}: {name[:80]!r} is not a valid Azure property name "
                "(an identifier of at most 255 characters, not PartitionKey/RowKey/Timestamp)")
        if p.edm in (Edm.STRING, Edm.BINARY) and property_size(p) - 4 > MAX_PROPERTY_BYTES:
            raise EntityMappingError(
                "oversize", f"{_where(e)}: property {name!r} is {property_size(p) - 4} bytes; "
                f"Azure Tables allow {MAX_PROPERTY_BYTES} per property")
        if p.edm is Edm.DATETIME and p.value.ticks < MIN_AZURE_TICKS:  # type: ignore[union-attr]
            raise EntityMappingError(
                "unmappable", f"{_where(e)}: property {name!r} = {_canonical(p.edm, p.value)} "
                "is before 1601-01-01, the earliest Edm.DateTime Azure accepts")
    size = entity_size(e)
    if size > MAX_ENTITY_BYTES:
        raise EntityMappingError("oversize", f"{_where(e)} is {size} bytes; Azure Tables allow "
                                 f"{MAX_ENTITY_BYTES} per entity")


def check_document_size(doc: Mapping[str, Any], limit: int = MAX_DOCUMENT_BYTES) -> int:
    size = len(bson.encode(doc, codec_options=CODEC_OPTIONS))
    if size > limit:
        raise EntityMappingError("oversize", f"document {str(doc.get('_id'))[:120]!r} is {size} "
                                 f"bytes; DocumentDB allows {limit}")
    return size


# -- entity → document ---------------------------------------------------------------


_RESERVED_FIELDS = SYSTEM_FIELDS | AZURE_SYSTEM


def _check_field_name(e: Entity, name: str) -> None:
    if name in SYSTEM_FIELDS or name in AZURE_SYSTEM:
        raise EntityMappingError("unmappable", f"{_where(e)}: property {name!r} clashes with a "
                                 "field the document reserves (_id, PartitionKey, RowKey, _cw)")
    if not name or name.startswith("$") or "." in name or "\x00" in name:
        raise EntityMappingError("unmappable", f"{_where(e)}: property name {name[:80]!r} cannot "
                                 "be a DocumentDB field name (no leading '$', no '.', no NUL)")


def _check_utf8(e: Entity, name: str, p: Prop) -> None:
    for what, text in (("property name", name), ("value of", p.value)):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise EntityMappingError(
                    "unmappable", f"{_where(e)}: {what} {name[:80]!r} holds "
                    f"{text[exc.start:exc.end]!r}, a lone surrogate UTF-8 (BSON) cannot "
                    "hold") from None


def _to_bson(e: Entity, name: str, p: Prop, exact: dict[str, str]) -> Any:
    # Plain values first (most properties): one type check each.
    if _PLAIN.get(p.edm) is type(p.value):
        return p.value
    return _to_bson_typed(e, name, p, exact)


#: EDM types whose Python value is already the BSON value
_PLAIN: dict[Edm, type] = {Edm.STRING: str, Edm.DOUBLE: float, Edm.BOOLEAN: bool}


def _to_bson_typed(e: Entity, name: str, p: Prop, exact: dict[str, str]) -> Any:
    v = p.value
    ok: bool
    if p.edm is Edm.STRING:
        ok = isinstance(v, str)
        out: Any = v
    elif p.edm in (Edm.INT32, Edm.INT64):
        lo, hi = _INT32 if p.edm is Edm.INT32 else _INT64
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        out = v if p.edm is Edm.INT32 else Int64(v)  # type: ignore[arg-type]
    elif p.edm is Edm.DOUBLE:
        ok = isinstance(v, float)
        out = v
    elif p.edm is Edm.BOOLEAN:
        ok = isinstance(v, bool)
        out = v
    elif p.edm is Edm.DATETIME:
        ok = isinstance(v, EdmDateTime)
        if ok:
            out = v.ms_datetime  # type: ignore[union-attr]
            if v.ticks % TICKS_PER_MS:  # type: ignore[union-attr]
                exact[name] = v.iso  # type: ignore[union-attr]
    elif p.edm is Edm.GUID:
        ok = isinstance(v, uuid.UUID)
        out = Binary.from_uuid(v) if ok else None  # type: ignore[arg-type]
    else:  # Edm.BINARY
        ok = isinstance(v, bytes)
        out = Binary(v, 0) if ok else None  # type: ignore[arg-type]
    if not ok:
        raise EntityMappingError("unmappable", f"{_where(e)}: property {name!r} holds "
                                 f"{type(v).__name__} {str(v)[:40]!r}, not a valid {p.edm.value}")
    return out


def entity_to_document(e: Entity) -> dict[str, Any]:
    """The document for ``e`` (``EntityMappingError`` if it cannot be one)."""
    check_key("PartitionKey", e.partition_key)
    check_key("RowKey", e.row_key)
    # An entity read from a document is written back to that document (its own _id).
    _id = doc_id(e.partition_key, e.row_key) if e.record_id is None else id_value(e.record_id)
    doc: dict[str, Any] = {"_id": _id, "PartitionKey": e.partition_key, "RowKey": e.row_key}
    exact: dict[str, str] = {}
    text_bytes = 0  # an upper bound of the bytes strings and binaries take in BSON
    for name, p in e.properties.items():
        if name in _RESERVED_FIELDS or name[:1] == "$" or "." in name or not name or (
                "\x00" in name):
            _check_field_name(e, name)
        doc[name] = _to_bson(e, name, p, exact)
        if p.edm is Edm.STRING or p.edm is Edm.BINARY:
            text_bytes += 4 * len(p.value)  # type: ignore[arg-type]
        # BSON strings are UTF-8: a lone surrogate (Azure stores UTF-16) would
        # make pymongo refuse the whole bulk write, not just this document.
        if not name.isascii() or (p.edm is Edm.STRING and not p.value.isascii()):  # type: ignore[union-attr]
            _check_utf8(e, name, p)
    cw: dict[str, Any] = {"v": MAPPING_VERSION}
    if e.etag is not None:
        cw["etag"] = e.etag
    if e.timestamp is not None:
        cw["ts"] = e.timestamp.iso
    if exact:
        cw["dt"] = exact
    doc["_cw"] = cw
    # pymongo refuses a whole bulk write for one document over the limit, so an
    # oversize one must be caught here; only a large one is worth encoding twice.
    if text_bytes + 64 * len(e.properties) > MAX_DOCUMENT_BYTES // 2:
        check_document_size(doc)
    return doc


# -- document → entity ---------------------------------------------------------------


def _bson_type(v: object) -> str:
    if isinstance(v, dict):
        return "an embedded document"
    if isinstance(v, list):
        return "an array"
    return f"a value of type {type(v).__name__}"


def _from_bson(where: str, name: str, v: Any, exact: Mapping[str, Any]) -> Prop | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return Prop(Edm.BOOLEAN, v)
    if isinstance(v, Int64):
        return Prop(Edm.INT64, int(v))
    if isinstance(v, int):
        return Prop(Edm.INT32 if _INT32[0] <= v <= _INT32[1] else Edm.INT64, v)
    if isinstance(v, float):
        return Prop(Edm.DOUBLE, v)
    if isinstance(v, str):
        return Prop(Edm.STRING, v)
    if isinstance(v, datetime):
        dt = EdmDateTime.from_datetime(v)
        stored = exact.get(name)
        if isinstance(stored, str):
            try:
                full = EdmDateTime.from_iso(stored)
            except ValueError:
                full = None
            # Only while the date is still the one crosswind wrote: an
            # application may have changed the date and left _cw alone.
            if full is not None and full.ms_datetime == dt.ms_datetime:
                dt = full
        return Prop(Edm.DATETIME, dt)
    if isinstance(v, uuid.UUID):
        return Prop(Edm.GUID, v)
    if isinstance(v, Binary):
        if v.subtype in (3, 4):
            rep = (UuidRepresentation.STANDARD if v.subtype == 4
                   else UuidRepresentation.PYTHON_LEGACY)
            return Prop(Edm.GUID, v.as_uuid(rep))
        if v.subtype == 0:
            return Prop(Edm.BINARY, bytes(v))
        raise EntityMappingError("unmappable", f"{where}: field {name!r} is BSON binary subtype "
                                 f"{v.subtype}, which has no EDM type")
    if isinstance(v, bytes):
        return Prop(Edm.BINARY, v)
    raise EntityMappingError("unmappable", f"{where}: field {name!r} holds {_bson_type(v)}, "
                             "which Azure Tables cannot hold")


def document_to_entity(doc: Mapping[str, Any]) -> Entity:
    """The entity for ``doc``; its etag/timestamp are the ``_cw`` sync fields, if any."""
    where = f"document {str(doc.get('_id'))[:120]!r}"
    if "PartitionKey" not in doc or "RowKey" not in doc:
        raise EntityMappingError("invalid-key", f"{where} has no PartitionKey/RowKey fields")
    pk = check_key("PartitionKey", doc["PartitionKey"])
    rk = check_key("RowKey", doc["RowKey"])
    cw = doc.get("_cw")
    cw = cw if isinstance(cw, Mapping) else {}
    exact = cw.get("dt")
    exact = exact if isinstance(exact, Mapping) else {}
    props: dict[str, Prop] = {}
    for name, v in doc.items():
        if name in SYSTEM_FIELDS:
            continue
        p = _from_bson(where, name, v, exact)
        if p is not None:
            props[name] = p
    ts = None
    if isinstance(cw.get("ts"), str):
        try:
            ts = EdmDateTime.from_iso(cw["ts"])
        except ValueError:
            ts = None
    etag = cw.get("etag") if isinstance(cw.get("etag"), str) else None
    return Entity(pk, rk, MappingProxyType(props), etag, ts,
                  id_text(doc["_id"]) if "_id" in doc else None)


# -- lossless JSON (DLQ payloads, conflict records, reports) --------------------------


def prop_to_json(p: Prop) -> dict[str, str | int | bool]:
    v = p.value
    if p.edm is Edm.DOUBLE:
        f = float(v)  # type: ignore[arg-type]
        shown: str | int | bool = repr(f) if math.isfinite(f) else str(f)
        return {"type": p.edm.value, "value": shown, "bits": struct.pack(">d", f).hex()}
    if p.edm in (Edm.INT32, Edm.INT64, Edm.BOOLEAN):
        return {"type": p.edm.value, "value": v}  # type: ignore[dict-item]
    return {"type": p.edm.value, "value": _canonical(p.edm, v)}


def prop_from_json(d: Mapping[str, Any]) -> Prop:
    edm = Edm(d["type"])
    v = d["value"]
    if edm is Edm.DOUBLE:
        return Prop(edm, struct.unpack(">d", bytes.fromhex(d["bits"]))[0])
    if edm in (Edm.INT32, Edm.INT64):
        return Prop(edm, int(v))
    if edm is Edm.BOOLEAN:
        return Prop(edm, bool(v))
    if edm is Edm.DATETIME:
        return Prop(edm, EdmDateTime.from_iso(v))
    if edm is Edm.GUID:
        return Prop(edm, uuid.UUID(v))
    if edm is Edm.BINARY:
        return Prop(edm, base64.b64decode(v))
    return Prop(edm, str(v))


def entity_to_json(e: Entity) -> dict[str, Any]:
    return {
        "PartitionKey": e.partition_key,
        "RowKey": e.row_key,
        "properties": {n: prop_to_json(p) for n, p in e.properties.items()},
        "etag": e.etag,
        "timestamp": e.timestamp.iso if e.timestamp else None,
    }


def entity_from_json(d: Mapping[str, Any]) -> Entity:
    return Entity(
        d["PartitionKey"], d["RowKey"],
        MappingProxyType({n: prop_from_json(p) for n, p in d["properties"].items()}),
        d.get("etag"),
        EdmDateTime.from_iso(d["timestamp"]) if d.get("timestamp") else None,
    )
