"""The three subjects of the schema registry, their built-in schemas, and how an
item becomes the JSON instance its subject's schema is checked against. Pure.

=======================  ==========================================================
subject                  the instance (what is validated before a write)
=======================  ==========================================================
``object-metadata``      an object about to be copied, either way: ``key``, ``size``,
                         the content headers that are set and ``metadata`` (user
                         metadata, names lower-cased after the keymap restored their
                         spelling; crosswind's own entries left out)
``table-entity``         a row about to be written into the Azure table (after
                         cutover): OData JSON, every property with its
                         ``NAME@odata.type``; Int64 as a decimal string, DateTime as
                         ISO 8601 (7 digits), Guid as text, Binary as base64, a
                         non-finite Double as ``"NaN"``/``"Infinity"``/``"-Infinity"``
``documentdb-document``  a document about to be written into DocumentDB (before
                         cutover): the document ``entities.entity_to_document``
                         makes, as MongoDB Extended JSON v2 (relaxed) with Int64 kept
                         canonical (``{"$numberLong": "…"}``) so Int32 and Int64 stay
                         apart, dates as ``{"$date": ISO}``, binaries as
                         ``{"$binary": {"base64", "subType"}}``
=======================  ==========================================================

The built-in schemas (``governance/schemas/*.json``) describe the flight-event
estate; ``crosswind schema init`` registers them as version 1.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

from bson.binary import Binary
from bson.int64 import Int64

from crosswind.entities import Edm, Entity, entity_to_document
from crosswind.mapping import original_names
from crosswind.model import ObjectProps

Subject = Literal["object-metadata", "table-entity", "documentdb-document"]
SUBJECTS: tuple[Subject, ...] = ("object-metadata", "table-entity", "documentdb-document")
#: what each subject describes, for listings and the catalog
DESCRIPTIONS: dict[str, str] = {
    "object-metadata": "flight-event object metadata (Azure Blob / S3): key, size, headers, "
                       "user metadata",
    "table-entity": "flight-event metadata row as an Azure Table entity (OData JSON with EDM "
                    "types)",
    "documentdb-document": "flight-event metadata row as a DocumentDB document (Extended JSON, "
                           "with the _cw sync fields)",
}
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def builtin_schema(subject: str) -> dict[str, Any]:
    """The packaged schema of ``subject`` (``KeyError`` for an unknown subject)."""
    if subject not in SUBJECTS:
        raise KeyError(subject)
    text = resources.files("crosswind.governance").joinpath(
        "schemas", f"{subject}.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -- objects -------------------------------------------------------------------------

_HEADERS = ("content_type", "content_encoding", "content_language", "content_disposition",
            "cache_control")


def object_instance(key: str, size: int, props: ObjectProps | None) -> dict[str, Any]:
    """The ``object-metadata`` instance of an object as its source holds it."""
    props = props or ObjectProps()
    doc: dict[str, Any] = {"key": key, "size": size}
    for h in _HEADERS:
        v = getattr(props, h)
        if v is not None:
            doc[h] = v
    doc["metadata"] = {k.lower(): v for k, v in original_names(props.metadata).items()}
    return doc


# -- table entities ------------------------------------------------------------------


def _edm_json(edm: Edm, v: Any) -> Any:
    if edm is Edm.INT64:
        return str(v)
    if edm is Edm.DOUBLE:
        f = float(v)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if edm is Edm.DATETIME:
        return v.iso
    if edm is Edm.GUID:
        return str(v)
    if edm is Edm.BINARY:
        return base64.b64encode(v).decode("ascii")
    return v  # String, Int32, Boolean: plain JSON


def entity_instance(e: Entity) -> dict[str, Any]:
    """The ``table-entity`` instance: the row as OData JSON, every property typed."""
    doc: dict[str, Any] = {"PartitionKey": e.partition_key, "RowKey": e.row_key}
    if e.timestamp is not None:
        doc["Timestamp"] = e.timestamp.iso
    for name, p in e.properties.items():
        doc[name] = _edm_json(p.edm, p.value)
        doc[f"{name}@odata.type"] = p.edm.value
    return doc


# -- documents -----------------------------------------------------------------------


def _date(d: datetime) -> str:
    d = d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _binary(data: bytes, subtype: int) -> dict[str, Any]:
    return {"$binary": {"base64": base64.b64encode(data).decode("ascii"),
                        "subType": f"{subtype:02x}"}}


def bson_json(v: Any) -> Any:
    """One BSON value as the Extended JSON the ``documentdb-document`` schema describes."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, Int64):
        return {"$numberLong": str(int(v))}
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return {"$numberDouble": "NaN"}
        if math.isinf(v):
            return {"$numberDouble": "Infinity" if v > 0 else "-Infinity"}
        return v
    if isinstance(v, datetime):
        return {"$date": _date(v)}
    if isinstance(v, uuid.UUID):
        return _binary(v.bytes, 4)
    if isinstance(v, Binary):
        return _binary(bytes(v), v.subtype)
    if isinstance(v, bytes):
        return _binary(v, 0)
    if isinstance(v, Mapping):
        return {str(k): bson_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [bson_json(x) for x in v]
    return {"$unknown": type(v).__name__}  # fails any schema that names the field's type


def document_instance(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``documentdb-document`` instance of a BSON document."""
    out: dict[str, Any] = {str(k): bson_json(v) for k, v in doc.items()}
    return out


def entity_document_instance(e: Entity) -> dict[str, Any]:
    """The document crosswind would write for ``e``, as its instance."""
    return document_instance(entity_to_document(e))
