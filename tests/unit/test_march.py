"""march.py: the sorted three-way merge of source, destination and verified records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosswind.errors import ListingOrderError
from crosswind.model import ObjectMeta
from crosswind.state import VerifiedCopy
from crosswind.sync.march import Match, march

keys = st.text(st.sampled_from("ab/\ue000\U0001f600"), min_size=1, max_size=4)


async def _aiter(items: Iterable[ObjectMeta]) -> AsyncIterator[ObjectMeta]:
    for item in items:
        await asyncio.sleep(0)
        yield item


def _metas(ks: Iterable[str], side: str) -> list[ObjectMeta]:
    return [ObjectMeta(k, len(k), f"{side}-{k}") for k in sorted(ks)]


def _records(ks: Iterable[str]) -> list[VerifiedCopy]:
    return [VerifiedCopy(k, f"src-{k}", len(k), "0" * 32, f"dst-{k}") for k in sorted(ks)]


def _run(
    src: list[ObjectMeta], dst: list[ObjectMeta], recs: Iterable[VerifiedCopy] = ()
) -> list[Match]:
    async def go() -> list[Match]:
        return [m async for m in march(_aiter(src), _aiter(dst), recs)]

    return asyncio.run(go())


@given(st.sets(keys, max_size=25), st.sets(keys, max_size=25), st.sets(keys, max_size=25))
def test_every_key_once_in_order_with_what_each_side_holds(
    s: set[str], d: set[str], r: set[str]
) -> None:
    src, dst, recs = _metas(s, "src"), _metas(d, "dst"), _records(r)
    out = _run(src, dst, recs)
    assert [m.key for m in out] == sorted(s | d)
    by_src = {m.key: m for m in src}
    by_dst = {m.key: m for m in dst}
    by_rec = {v.key: v for v in recs}
    for m in out:
        assert m.src is by_src.get(m.key)
        assert m.dst is by_dst.get(m.key)
        assert m.record is by_rec.get(m.key)


@given(st.lists(keys, min_size=2, max_size=10).filter(lambda ks: ks != sorted(set(ks))))
def test_out_of_order_source_is_refused(ks: list[str]) -> None:
    src = [ObjectMeta(k, 1) for k in ks]
    with pytest.raises(ListingOrderError, match="source"):
        _run(src, [])


@given(st.lists(keys, min_size=2, max_size=10).filter(lambda ks: ks != sorted(set(ks))))
def test_out_of_order_destination_is_refused(ks: list[str]) -> None:
    dst = [ObjectMeta(k, 1) for k in ks]
    with pytest.raises(ListingOrderError, match="destination"):
        _run([], dst)


def test_utf16_order_is_out_of_order() -> None:
    """An Azure listing that skipped ordering.py must not turn into a plan."""
    src = [ObjectMeta("\U0001f600", 1), ObjectMeta("\uff21", 1)]
    with pytest.raises(ListingOrderError):
        _run(src, [])


def test_out_of_order_records_are_refused() -> None:
    recs = _records(["b"]) + _records(["a"]) + _records(["c"])
    with pytest.raises(ListingOrderError, match="records"):
        _run(_metas(["c"], "src"), [], recs)


def test_records_without_listed_keys_are_skipped() -> None:
    out = _run(_metas(["b", "d"], "src"), _metas(["c"], "dst"), _records(["a", "b", "bb", "e"]))
    assert [(m.key, m.record is not None) for m in out] == [
        ("b", True), ("c", False), ("d", False),
    ]
