"""Metadata rows and the join, without servers: row comparison after mapping,
the on-disk sort, and the streaming join against a brute-force one."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.entities import Edm, EdmDateTime, Entity, Prop, doc_id
from crosswind.errors import EntityMappingError, ListingOrderError
from crosswind.keys import KeySpec
from crosswind.model import ObjectProps
from crosswind.stores.base import BadRecord
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.filters import KeyFilter
from crosswind.validate.extsort import Spill
from crosswind.validate.findings import Check, Finding, Kind
from crosswind.validate.join import check_join
from crosswind.validate.rows import check_rows
from crosswind.validate.rows_compare import compare_rows

SPEC = KeySpec("ev/{carrier:[A-Z]{2}}{flight:int}/{event_id}.json", "{carrier}{flight}",
               "{event_id}")


class Rows:
    """Just enough of a record store for validation: a listing in key order."""

    def __init__(self, name: str, rows: list[Entity | BadRecord]) -> None:
        self.name = name
        self.rows = rows

    async def list(self, **_: Any) -> AsyncIterator[Entity | BadRecord]:
        for r in self.rows:
            yield r


def ent(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, props)


def s(v: str) -> Prop:
    return Prop(Edm.STRING, v)


def test_rows_compared_field_by_field_with_types() -> None:
    a = ent("AA1", "e1", gate=s("B4"), seats=Prop(Edm.INT32, 180))
    assert compare_rows(a, a) == ()
    (f,) = compare_rows(a, ent("AA1", "e1", gate=s("B4"), seats=Prop(Edm.INT64, 180)))
    assert f.kind is Kind.METADATA and f.key == "AA1/e1"
    assert f.detail == "seats: Edm.Int32 '180' at source, Edm.Int64 '180' at destination"
    (f,) = compare_rows(a, ent("AA1", "e1", gate=s("B4")))
    assert "seats: Edm.Int32 '180' at source, absent at destination" in f.detail
    # NaN equals NaN; DateTimes to the 100 ns tick; -0.0 is not 0.0.
    nan = ent("p", "r", x=Prop(Edm.DOUBLE, math.nan))
    assert compare_rows(nan, nan) == ()
    t1, t2 = EdmDateTime(638000000000000001), EdmDateTime(638000000000000002)
    assert compare_rows(ent("p", "r", t=Prop(Edm.DATETIME, t1)),
                        ent("p", "r", t=Prop(Edm.DATETIME, t2)))
    assert compare_rows(ent("p", "r", z=Prop(Edm.DOUBLE, 0.0)),
                        ent("p", "r", z=Prop(Edm.DOUBLE, -0.0)))
    g = uuid.uuid4()
    assert compare_rows(ent("p", "r", g=Prop(Edm.GUID, g)), ent("p", "r", g=Prop(Edm.GUID, g))) \
        == ()


def test_missing_extra_and_unreadable_rows() -> None:
    a = ent("P", "1")
    assert [f.kind for f in compare_rows(a, None)] == [Kind.MISSING]
    assert [f.kind for f in compare_rows(None, a)] == [Kind.EXTRA]
    bad = BadRecord("P", "1", "P/1", EntityMappingError("unmappable", "field x is an array"),
                    "{}")
    (f,) = compare_rows(a, bad)
    assert f.kind is Kind.METADATA and "cannot be read at the destination" in f.detail
    assert "array" in f.detail


def test_check_rows_counts_and_refuses_disorder() -> None:
    src = Rows("t", [ent("A", "1"), ent("A", "2", x=s("1")), ent("B", "1")])
    dst = Rows("d", [ent("A", "2", x=s("2")), ent("B", "1"), ent("C", "9")])
    found: list[Finding] = []
    t = asyncio.run(check_rows(src, dst, found.extend))  # type: ignore[arg-type]
    assert {(f.kind, f.key) for f in found} == {
        (Kind.MISSING, "A/1"), (Kind.METADATA, "A/2"), (Kind.EXTRA, "C/9")}
    assert (t.items, t.source_items, t.present, t.failed) == (4, 3, 2, 3)
    disordered = Rows("t", [ent("B", "1"), ent("A", "1")])
    with pytest.raises(ListingOrderError):
        asyncio.run(check_rows(disordered, Rows("d", []), found.extend))  # type: ignore[arg-type]


@settings(max_examples=50)
@given(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=300))
def test_spill_sorts_like_python(pairs: list[tuple[str, str]]) -> None:
    pairs = [(k.replace("\ud800", ""), v) for k, v in pairs]
    with Spill() as spill:
        for k, v in pairs:
            spill.add(k, v)
        assert list(spill.sorted()) == sorted(pairs)


names = st.one_of(
    st.builds(lambda c, n, e: f"ev/{c}{n}/{e}.json", st.sampled_from(["AA", "LH", "ZZ"]),
              st.integers(0, 30), st.sampled_from(["e1", "e2", "é3", "x/y"])),
    st.text(st.sampled_from("ev/AL0.jsn"), min_size=1, max_size=12),  # mostly unparseable
)
row_keys = st.tuples(st.sampled_from(["AA0", "AA1", "LH7", "ZZ30", "QQ1"]),
                     st.sampled_from(["e1", "e2", "é3", "e9"]))


@settings(max_examples=200)
@given(st.lists(names, unique=True, max_size=40), st.lists(row_keys, unique=True, max_size=20))
def test_join_equals_a_brute_force_join(objects: list[str], keys: list[tuple[str, str]]) -> None:
    expected: set[tuple[Kind, str]] = set()
    hit: set[tuple[str, str]] = set()
    for name in objects:
        try:
            k = SPEC.keys(name)
        except Exception:
            expected.add((Kind.UNPARSEABLE, name))
            continue
        if (k.partition_key, k.row_key) in keys:
            hit.add((k.partition_key, k.row_key))
        else:
            expected.add((Kind.ORPHAN_OBJECT, name))
    expected |= {(Kind.ORPHAN_ROW, doc_id(*k)) for k in keys if k not in hit}

    store = MemoryStore("objects")

    async def go() -> list[Finding]:
        for name in objects:
            await store.put(name, b"", ObjectProps(), md5=md5_hex(b""))
        found: list[Finding] = []
        rows = Rows("rows", [ent(pk, rk) for pk, rk in sorted(keys)])
        t = await check_join(Check.JOIN_AWS, store, rows, SPEC, KeyFilter(),  # type: ignore[arg-type]
                             found.extend)
        assert t.source_items == len(objects)
        assert t.present == len(objects) - sum(
            1 for k, _ in expected if k in (Kind.UNPARSEABLE, Kind.ORPHAN_OBJECT))
        return found

    found = asyncio.run(go())
    assert {(f.kind, f.key) for f in found} == expected
    assert all(f.check is Check.JOIN_AWS for f in found)


def test_unparseable_name_is_a_finding_that_says_why() -> None:
    store = MemoryStore("objects")

    async def go() -> tuple[Any, list[Finding]]:
        await store.put("ev/AA12/e1.json", b"", ObjectProps(), md5=md5_hex(b""))
        await store.put("ev/aa12/e1.json", b"", ObjectProps(), md5=md5_hex(b""))
        await store.put("ev/AA012/e1.json", b"", ObjectProps(), md5=md5_hex(b""))
        found: list[Finding] = []
        t = await check_join(Check.JOIN_AZURE, store, Rows("rows", [ent("AA12", "e1")]),  # type: ignore[arg-type]
                             SPEC, KeyFilter(), found.extend)
        return t, found

    t, found = asyncio.run(go())
    assert sorted((f.kind.value, f.key) for f in found) == [
        ("unparseable_name", "ev/AA012/e1.json"), ("unparseable_name", "ev/aa12/e1.json")]
    details = {f.key: f.detail for f in found}
    assert "{carrier" in details["ev/aa12/e1.json"]
    assert "leading zeros" in details["ev/AA012/e1.json"]
    assert (t.items, t.passed) == (3, 1)


@pytest.mark.parametrize("keep", [KeyFilter(exclude=("ev/LH*",)), KeyFilter(prefix="ev/AA")],
                         ids=["exclude", "prefix"])
def test_rows_of_objects_outside_the_filters_are_not_orphans(keep: KeyFilter) -> None:
    """A row whose object the [sync] filters leave out has its object all the
    same: it is counted as out of scope, not reported as an orphan row (it was)."""
    store = MemoryStore("objects")

    async def go() -> tuple[Any, list[Finding]]:
        for name in ("ev/AA12/e1.json", "ev/LH7/e2.json", "ev/LH7/bad name"):
            await store.put(name, b"", ObjectProps(), md5=md5_hex(b""))
        found: list[Finding] = []
        rows = Rows("rows", [ent("AA12", "e1"), ent("LH7", "e2"), ent("ZZ30", "e9")])
        t = await check_join(Check.JOIN_AWS, store, rows, SPEC, keep,  # type: ignore[arg-type]
                             found.extend)
        return t, found

    t, found = asyncio.run(go())
    assert [(f.kind, f.key) for f in found] == [(Kind.ORPHAN_ROW, doc_id("ZZ30", "e9"))]
    assert t.coverage["rows_of_objects_out_of_scope"] == 1
    assert (t.items, t.passed) == (2, 1)  # the AA12 object and the orphan row
