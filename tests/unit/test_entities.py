"""Property 28, pure half: entity → document → BSON bytes → document → entity is
the identity for every EDM type and edge value; limits raise typed errors."""

from __future__ import annotations

import math
import struct
import uuid
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import bson
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from crosswind.entities import (
    CODEC_OPTIONS,
    MIN_AZURE_TICKS,
    Edm,
    EdmDateTime,
    Entity,
    Prop,
    check_document_size,
    check_entity_limits,
    doc_id,
    document_to_entity,
    entity_from_json,
    entity_size,
    entity_to_document,
    entity_to_json,
    id_text,
    id_value,
    parse_doc_id,
)
from crosswind.errors import EntityMappingError

MAX_TICKS = EdmDateTime.from_iso("9999-12-31T23:59:59.9999999Z").ticks
KEY_CHARS = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/\\#?\x7f")
keys = st.text(KEY_CHARS, max_size=40)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True).filter(
    lambda n: n not in ("_id", "_cw", "PartitionKey", "RowKey", "Timestamp"))


def edge_or(edges: list[Any], strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(edges), strategy)


ticks = edge_or([MIN_AZURE_TICKS, MAX_TICKS, MIN_AZURE_TICKS + 1, 638_000_000_000_000_001],
                st.integers(MIN_AZURE_TICKS, MAX_TICKS))

PROPS: dict[Edm, st.SearchStrategy[Any]] = {
    Edm.STRING: edge_or(["", "\x00", "😀" * 3, "a" * 32_768], st.text()),
    Edm.INT32: edge_or([0, -(2**31), 2**31 - 1], st.integers(-(2**31), 2**31 - 1)),
    Edm.INT64: edge_or([0, 1, -(2**63), 2**63 - 1], st.integers(-(2**63), 2**63 - 1)),
    Edm.DOUBLE: edge_or([float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 5e-324,
                         1.7976931348623157e308], st.floats()),
    Edm.BOOLEAN: st.booleans(),
    Edm.DATETIME: ticks.map(EdmDateTime),
    Edm.GUID: edge_or([uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)], st.uuids()),
    Edm.BINARY: edge_or([b"", b"\x00" * 65_536], st.binary(max_size=64)),
}
props = st.sampled_from(list(Edm)).flatmap(lambda e: PROPS[e].map(lambda v: Prop(e, v)))


@st.composite
def entities(draw: st.DrawFn) -> Entity:
    properties = draw(st.dictionaries(names, props, max_size=12))
    etag = draw(st.one_of(st.none(), st.text(max_size=60)))
    ts = draw(st.one_of(st.none(), ticks.map(EdmDateTime)))
    return Entity(draw(keys), draw(keys), MappingProxyType(properties), etag, ts)


def through_bson(doc: dict[str, Any]) -> dict[str, Any]:
    return bson.decode(bson.encode(doc, codec_options=CODEC_OPTIONS), codec_options=CODEC_OPTIONS)


@given(entities())
def test_entity_document_entity_is_identity(e: Entity) -> None:
    doc = entity_to_document(e)
    back = document_to_entity(through_bson(doc))
    assert back == e
    assert back.content_hash() == e.content_hash()
    assert parse_doc_id(doc["_id"]) == e.key


@given(entities())
def test_json_form_is_lossless(e: Entity) -> None:
    assert entity_from_json(entity_to_json(e)) == e


@given(entities(), props)
def test_content_hash_changes_with_content_only(e: Entity, p: Prop) -> None:
    changed = Entity(e.partition_key, e.row_key, {**e.properties, "zz_extra": p}, e.etag)
    assert changed.content_hash() != e.content_hash()
    assert Entity(e.partition_key, e.row_key, e.properties, "other", None).content_hash() == (
        e.content_hash())


def test_bson_types_are_the_natural_ones() -> None:
    e = Entity("p", "r", {
        "i": Prop(Edm.INT32, 7), "l": Prop(Edm.INT64, 7), "g": Prop(Edm.GUID, uuid.UUID(int=1)),
        "b": Prop(Edm.BINARY, b"x"),
        "t": Prop(Edm.DATETIME, EdmDateTime.from_iso("2026-01-02T03:04:05.1234567Z")),
        "m": Prop(Edm.DATETIME, EdmDateTime.from_iso("2026-01-02T03:04:05.123Z")),
    }, 'W/"e"', EdmDateTime.from_iso("2026-11-26T00:00:00.5Z"))
    doc = through_bson(entity_to_document(e))
    assert type(doc["i"]) is int and type(doc["l"]) is Int64
    assert doc["g"] == uuid.UUID(int=1) and doc["b"] == b"x"
    assert doc["t"] == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert doc["_id"] == "p/r"
    # Exact 100-ns value kept aside only where milliseconds lose something.
    assert doc["_cw"] == {"v": 1, "etag": 'W/"e"', "ts": "2026-11-26T00:00:00.5000000Z",
                          "dt": {"t": "2026-01-02T03:04:05.1234567Z"}}


def test_documents_written_on_the_aws_side() -> None:
    doc = {"_id": "p/r", "PartitionKey": "p", "RowKey": "r", "n": None, "small": 5,
           "big": 2**40, "f": 1.5, "when": datetime(2026, 1, 1), "u": uuid.UUID(int=5)}
    e = document_to_entity(doc)
    assert "n" not in e.properties  # null means "no property"
    assert e.properties["small"] == Prop(Edm.INT32, 5)
    assert e.properties["big"] == Prop(Edm.INT64, 2**40)
    assert e.properties["when"] == Prop(Edm.DATETIME,
                                        EdmDateTime.from_iso("2026-01-01T00:00:00Z"))
    assert e.etag is None and e.timestamp is None


def test_exact_datetime_dropped_when_an_application_changed_the_date() -> None:
    e = Entity("p", "r", {"t": Prop(Edm.DATETIME,
                                    EdmDateTime.from_iso("2026-01-02T03:04:05.1234567Z"))})
    doc = entity_to_document(e)
    doc["t"] = datetime(2027, 1, 1, tzinfo=UTC)  # $set by an application; _cw left alone
    assert document_to_entity(doc).properties["t"].value == EdmDateTime.from_iso(
        "2027-01-01T00:00:00Z")


@pytest.mark.parametrize(("value", "what"), [
    ({"a": 1}, "embedded document"), ([1, 2], "array"), (ObjectId(), "ObjectId"),
    (Decimal128("1.5"), "Decimal128"), (bson.Binary(b"x", 5), "subtype 5"),
])
def test_unmappable_document_fields(value: object, what: str) -> None:
    with pytest.raises(EntityMappingError, match=what) as info:
        document_to_entity({"_id": "p/r", "PartitionKey": "p", "RowKey": "r", "bad": value})
    assert info.value.kind == "unmappable"
    assert "'bad'" in str(info.value)


@pytest.mark.parametrize("name", ["_id", "_cw", "$x", "a.b", "PartitionKey"])
def test_property_names_a_document_cannot_hold(name: str) -> None:
    with pytest.raises(EntityMappingError) as info:
        entity_to_document(Entity("p", "r", {name: Prop(Edm.STRING, "v")}))
    assert info.value.kind == "unmappable" and repr(name) in str(info.value)


@pytest.mark.parametrize(("pk", "rk"), [("a/b", "r"), ("p", "a#b"), ("p\x01", "r"),
                                        ("k" * 1025, "r"), ("p", "?")])
def test_invalid_keys(pk: str, rk: str) -> None:
    with pytest.raises(EntityMappingError) as info:
        entity_to_document(Entity(pk, rk))
    assert info.value.kind == "invalid-key"
    with pytest.raises(EntityMappingError):
        check_entity_limits(Entity(pk, rk))


def test_azure_limits() -> None:
    check_entity_limits(Entity("p", "r", {"s": Prop(Edm.STRING, "x" * 32_768),
                                          "b": Prop(Edm.BINARY, b"x" * 65_536)}))
    cases: list[tuple[dict[str, Prop], str, str]] = [
        ({"s": Prop(Edm.STRING, "x" * 32_769)}, "oversize", "65538 bytes"),
        ({"s": Prop(Edm.STRING, "😀" * 16_385)}, "oversize", "per property"),
        ({"b": Prop(Edm.BINARY, b"x" * 65_537)}, "oversize", "per property"),
        ({f"p{i}": Prop(Edm.INT32, i) for i in range(253)}, "oversize", "253 properties"),
        ({f"p{i}": Prop(Edm.STRING, "x" * 30_000) for i in range(20)}, "oversize", "per entity"),
        ({"héllo wörld": Prop(Edm.INT32, 1)}, "unmappable", "not a valid Azure property name"),
        ({"Timestamp": Prop(Edm.INT32, 1)}, "unmappable", "not a valid Azure property name"),
        ({"t": Prop(Edm.DATETIME, EdmDateTime(0))}, "unmappable", "before 1601"),
    ]
    for properties, kind, message in cases:
        with pytest.raises(EntityMappingError, match=message) as info:
            check_entity_limits(Entity("p", "r", properties))
        assert info.value.kind == kind


def test_entity_size_formula() -> None:
    # 4 + 2*len("pr") + (8 + 2*len("s") + 4 + 2*3) + (8 + 2*len("i") + 4)
    e = Entity("p", "r", {"s": Prop(Edm.STRING, "abc"), "i": Prop(Edm.INT32, 1)})
    assert entity_size(e) == 4 + 4 + (8 + 2 + 4 + 6) + (8 + 2 + 4)


def test_document_size_limit() -> None:
    doc = {"_id": doc_id("p", "r"), "blob": b"x" * (16 * 1024 * 1024)}
    with pytest.raises(EntityMappingError, match="DocumentDB allows") as info:
        check_document_size(doc)
    assert info.value.kind == "oversize"


def test_wrong_value_for_its_type_is_unmappable() -> None:
    for p in (Prop(Edm.INT32, 2**31), Prop(Edm.INT64, 2**63), Prop(Edm.INT32, True),
              Prop(Edm.GUID, "not-a-uuid"), Prop(Edm.DOUBLE, 1)):
        with pytest.raises(EntityMappingError, match="not a valid"):
            entity_to_document(Entity("p", "r", {"x": p}))


def test_datetime_text_forms() -> None:
    t = EdmDateTime.from_iso("0999-01-02T03:04:05.1Z")
    assert t.iso == "0999-01-02T03:04:05.1000000Z"
    assert EdmDateTime.from_datetime(t.micro_datetime) == t
    assert EdmDateTime.from_iso("2026-01-01T00:00:00+00:00") == EdmDateTime.from_iso(
        "2026-01-01T00:00:00.0000000Z")
    with pytest.raises(ValueError, match="not an ISO 8601"):
        EdmDateTime.from_iso("yesterday")


@pytest.mark.parametrize(("name", "value"), [("s", "a\ud800b"), ("s", "\udfff"),
                                             ("n\udc00", "v")])
def test_lone_surrogates_are_unmappable_not_a_failed_bulk_write(name: str, value: str) -> None:
    with pytest.raises(EntityMappingError) as info:
        entity_to_document(Entity("p", "r", {name: Prop(Edm.STRING, value)}))
    assert info.value.kind == "unmappable" and "surrogate" in str(info.value)
    # what does map is encodable: bson.encode would have raised for the whole batch
    bson.encode(entity_to_document(Entity("p", "r", {"s": Prop(Edm.STRING, "é😀")})))


@given(st.integers(min_value=0, max_value=2**51 - 1), st.booleans(), st.booleans())
def test_every_nan_is_one_value(payload: int, negative: bool, signalling: bool) -> None:
    # Azure holds any NaN as the text "NaN": sign and payload bits cannot survive
    # a round trip, so no NaN may differ from another (the CI flake of issue 9).
    quiet = 0 if signalling and payload else 1 << 51
    bits = (1 << 63 if negative else 0) | (0x7FF << 52) | quiet | payload
    odd = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    assert math.isnan(odd)
    a = Entity("p", "r", {"x": Prop(Edm.DOUBLE, odd)})
    b = Entity("p", "r", {"x": Prop(Edm.DOUBLE, float("nan"))})
    assert a.properties["x"] == b.properties["x"]
    assert hash(a.properties["x"]) == hash(b.properties["x"])
    assert a.same_content(b)
    assert a.content_hash() == b.content_hash()
    assert Prop(Edm.DOUBLE, odd) != Prop(Edm.DOUBLE, 0.0)


# -- a document's own _id (issue 15): exact, reversible, never confused -----------------

ids = st.one_of(
    st.text(max_size=12), st.text(max_size=6).map(lambda t: "json:" + t),
    st.builds(ObjectId), st.integers(-(2**63), 2**63 - 1), st.uuids(),
    st.dictionaries(st.text(min_size=1, max_size=3).filter(lambda k: "\x00" not in k
                                                          and not k.startswith("$")),
                    st.integers(0, 9), max_size=3),
)


@given(ids, ids)
def test_id_text_is_exact_and_reversible(a: object, b: object) -> None:
    a_text, b_text = id_text(a), id_text(b)
    assert isinstance(a_text, str)
    # Same text exactly when the same _id value of the same BSON type.
    def canon(v: object) -> bytes:
        return bson.encode({"_id": v}, codec_options=CODEC_OPTIONS)
    assert (a_text == b_text) == (canon(a) == canon(b))
    assert canon(id_value(a_text)) == canon(a)


def test_id_text_keeps_strings_as_they_are() -> None:
    oid = ObjectId("0123456789abcdef01234567")
    assert id_text("p/r") == "p/r"
    assert id_text(oid) == 'json:{"$oid": "0123456789abcdef01234567"}'
    assert id_text(str(oid)) != id_text(oid)
    assert id_text('json:{"$oid": "0123456789abcdef01234567"}') != id_text(oid)


def test_an_entity_read_from_a_document_is_written_back_to_that_document() -> None:
    oid = ObjectId()
    e = document_to_entity({"_id": oid, "PartitionKey": "q", "RowKey": "app", "n": 1})
    assert e.record_id == id_text(oid)
    assert entity_to_document(e)["_id"] == oid
    assert e == Entity("q", "app", e.properties)  # not content: never compared
    assert entity_to_document(Entity("q", "app"))["_id"] == "q/app"
