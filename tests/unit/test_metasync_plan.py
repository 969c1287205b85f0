"""Pure parts of metadata sync: batching, decisions, the row march (the delete guard:
``test_deleteguard.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosswind.entities import Edm, EdmDateTime, Entity, Prop
from crosswind.errors import EntityMappingError, ListingOrderError
from crosswind.metasync.ledger import RowRecord
from crosswind.metasync.march import Row, march_rows
from crosswind.metasync.plan import (
    by_partition,
    chunks,
    needs_write,
    next_watermark,
    reverse_decision,
    scan_since,
)
from crosswind.stores.base import BadRecord, RecordWrite

keys = st.tuples(st.sampled_from(["a", "b", "\U0001f600", "\uffee", ""]),
                 st.text(max_size=3))
writes = st.lists(st.tuples(st.sampled_from(["upsert", "create", "delete"]), keys,
                            st.integers()), max_size=300)


def _writes(raw: list[tuple[str, tuple[str, str], int]]) -> list[RecordWrite]:
    return [RecordWrite(op, Entity(pk, rk, {"n": Prop(Edm.INT64, n)}))  # type: ignore[arg-type]
            for op, (pk, rk), n in raw]


@given(writes, st.integers(1, 100))
def test_by_partition_makes_valid_azure_transactions(raw: list[tuple[str, tuple[str, str], int]],
                                                     size: int) -> None:
    ws = _writes(raw)
    batches = by_partition(ws, size)
    last = {w.entity.key: w for w in ws}  # the last write of a row wins
    flat = [w for b in batches for w in b]
    assert sorted(w.entity.key for w in flat) == sorted(last)
    assert all(w is last[w.entity.key] for w in flat)
    for b in batches:
        assert 1 <= len(b) <= size
        assert len({w.entity.partition_key for w in b}) == 1
        assert len({w.entity.key for w in b}) == len(b)


@given(writes, st.integers(1, 50))
def test_chunks_keep_one_write_per_row(raw: list[tuple[str, tuple[str, str], int]],
                                       size: int) -> None:
    ws = _writes(raw)
    out = chunks(ws, size)
    flat = [w for c in out for w in c]
    assert len(flat) == len({w.entity.key for w in ws}) and all(len(c) <= size for c in out)
    last = {w.entity.key: w for w in ws}
    assert all(w is last[w.entity.key] for w in flat)


def test_needs_write() -> None:
    e = Entity("p", "r", etag="e1")
    assert needs_write(e, None, full=False)
    assert not needs_write(e, RowRecord("p", "r", "e1", "h", "p/r"), full=False)
    assert needs_write(e, RowRecord("p", "r", "e0", "h", "p/r"), full=False)
    assert needs_write(e, RowRecord("p", "r", "e1", "h", "p/r"), full=True)


def test_scan_since_subtracts_the_overlap() -> None:
    assert scan_since(None, 60) is None
    got = scan_since("2026-01-01T00:01:00.0000001Z", 60)
    assert got == EdmDateTime.from_iso("2026-01-01T00:00:00.0000001Z")


T0 = EdmDateTime.from_iso("2026-01-01T00:00:00Z").ticks
SECOND = 10_000_000
ticks = st.integers(T0, T0 + 600 * SECOND).map(EdmDateTime)


@given(before=st.one_of(st.none(), ticks), started=ticks, since=st.one_of(st.none(), ticks),
       overlap=st.sampled_from([0.0, 1.0, 300.0]),
       rows=st.lists(ticks, max_size=30))
def test_no_row_falls_between_two_scans(before: EdmDateTime | None, started: EdmDateTime,
                                        since: EdmDateTime | None, overlap: float,
                                        rows: list[EdmDateTime]) -> None:
    """Every row the incremental scan would have covered (Timestamp at or after the
    old watermark less the overlap) is read by this scan (committed before it
    started, inside its window) or by the next one (from the new watermark less
    the overlap); whatever the rows' Timestamps and the order the scan saw them."""
    before_iso = before.iso if before else None
    mark = next_watermark(before_iso, started, since, overlap) or before_iso
    covered_before = scan_since(before_iso, overlap)
    next_from = scan_since(mark, overlap)
    for t in rows:
        if covered_before is not None and t < covered_before:
            continue  # no scan was going to read it again
        read_now = t < started and (since is None or t >= since)
        read_next = next_from is None or t >= next_from
        assert read_now or read_next, (t, mark)
    # Bounded by the scan's start, never by what it saw.
    assert mark is None or mark == before_iso or EdmDateTime.from_iso(mark) == started


def test_a_later_since_keeps_the_watermark() -> None:
    mark = EdmDateTime(T0).iso
    later = EdmDateTime(T0 + 5 * SECOND)
    assert next_watermark(mark, EdmDateTime(T0 + 9 * SECOND), later, 0) is None
    assert next_watermark(None, later, later, 0) is None
    assert next_watermark(None, later, None, 0) == later.iso


def _e(v: str, etag: str = "e") -> Entity:
    return Entity("p", "r", {"v": Prop(Edm.STRING, v)}, etag)


REC = RowRecord("p", "r", "e", "h", "p/r")


@pytest.mark.parametrize(("doc", "row", "rec", "action"), [
    (_e("x"), _e("x"), REC, "skip"),
    (_e("x"), _e("x", "other"), None, "baseline"),
    (_e("x"), _e("y"), REC, "write"),  # the replica still holds what was synced
    (_e("x"), _e("y", "moved"), REC, "conflict"),  # the replica changed since
    (_e("x"), _e("y"), None, "conflict"),  # never synced and different
    (_e("x"), None, None, "create"),
    (_e("x"), None, REC, "conflict"),  # deleted on the replica since the last sync
    (None, _e("y"), REC, "delete"),
    (None, _e("y", "moved"), REC, "conflict"),
    (None, _e("y"), None, "conflict"),  # the replica's own row, never synced
    (None, None, None, "skip"),
])
def test_reverse_decisions(doc: Entity | None, row: Entity | None, rec: RowRecord | None,
                           action: str) -> None:
    d = reverse_decision(doc, row, rec)
    assert d.action == action
    if action in ("write", "delete"):
        assert d.if_match == (row.etag if row else None)  # conditional on what was listed


@given(st.sets(keys, max_size=30), st.sets(keys, max_size=30))
def test_march_rows_pairs_every_key_once_in_order(src: set[tuple[str, str]],
                                                  dst: set[tuple[str, str]]) -> None:
    async def gen(ks: set[tuple[str, str]]) -> AsyncIterator[Row]:
        for k in sorted(ks):
            yield Entity(*k)

    async def go() -> list[tuple[tuple[str, str] | None, bool, bool]]:
        return [(m.key, m.src is not None, m.dst is not None)
                async for m in march_rows(gen(src), gen(dst))]

    got = asyncio.run(go())
    assert [k for k, _, _ in got] == sorted(src | dst)
    assert all((s, d) == (k in src, k in dst) for k, s, d in got)


def test_march_rows_refuses_out_of_order_and_passes_keyless_bad_records() -> None:
    bad = BadRecord(None, None, "json:{}", EntityMappingError("invalid-key", "no keys"), "{}")

    async def src() -> AsyncIterator[Row]:
        yield bad
        yield Entity("a", "1")
        yield Entity("a", "0")

    async def none() -> AsyncIterator[Row]:
        return
        yield  # pragma: no cover

    async def go() -> list[object]:
        return [m async for m in march_rows(src(), none())]

    with pytest.raises(ListingOrderError, match="out of order"):
        asyncio.run(go())

    async def keyless_only() -> list[object]:
        async def one() -> AsyncIterator[Row]:
            yield bad
        return [m async for m in march_rows(one(), none())]

    [m] = asyncio.run(keyless_only())
    assert m.key is None and m.src is bad  # type: ignore[attr-defined]
