"""Shards of the merged listing (``crosswind.scaleout.shards``): whatever the keys
(odd ones included: ``a//b``, control characters, astral and private-use
characters) and the limits, the shards' ranges tile the key space in order,
every key is in exactly one of them, and each shard but the last is full."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.errors import ListingOrderError
from crosswind.model import ObjectMeta
from crosswind.scaleout.shards import KeyRange, Shard, ShardCutter, balanced_limits
from crosswind.scaleout.spec import WorkersSpecError, parse_workers
from crosswind.state import VerifiedCopy
from crosswind.sync.march import Match

keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
               min_size=1, max_size=8)
odd = st.sampled_from(["a//b", "a/b", "a", "/", "dir/", "\x00", "\x01x", "\t", "\ue000",
                       "\U0001f600", "ü", "a\\b"])
any_key = st.one_of(keys, odd)


@st.composite
def listings(draw: st.DrawFn) -> list[Match]:
    ks = sorted(set(draw(st.lists(any_key, max_size=60))))
    out = []
    for k in ks:
        side = draw(st.sampled_from(["src", "dst", "both"]))
        size = draw(st.integers(0, 5000))
        src = ObjectMeta(k, size) if side != "dst" else None
        dst = ObjectMeta(k, size) if side != "src" else None
        rec = VerifiedCopy(k, None, size, "0" * 32, None) if draw(st.booleans()) else None
        out.append(Match(k, src, dst, rec))
    return out


def cut(matches: list[Match], max_objects: int, max_bytes: int) -> list[Shard]:
    c = ShardCutter(max_objects, max_bytes)
    shards = [s for m in matches if (s := c.add(m)) is not None]
    return [*shards, c.finish()]


@settings(max_examples=200, deadline=None)
@given(listings(), st.integers(1, 12), st.integers(1, 20000), st.lists(any_key, max_size=20))
def test_shards_tile_the_key_space(matches: list[Match], max_objects: int, max_bytes: int,
                                   probes: list[str]) -> None:
    shards = cut(matches, max_objects, max_bytes)
    # Every match once, in order, in the shard whose range holds it.
    assert [m for s in shards for m in s.matches] == matches
    assert [s.index for s in shards] == list(range(len(shards)))
    for s in shards:
        assert all(m.key in s.range for m in s.matches)
    # Ranges: unbounded at both ends, each starting where the last ended, ordered.
    assert shards[0].range.after is None and shards[-1].range.upto is None
    for a, b in itertools.pairwise(shards):
        assert a.range.upto is not None and a.range.upto == b.range.after
        assert a.range.after is None or a.range.after < a.range.upto
    # Any key at all (listed or not) is in exactly one range.
    for k in [m.key for m in matches] + probes:
        assert sum(k in s.range for s in shards) == 1
    # Balanced: a shard closes at the count or the byte limit, not before, not after.
    for s in shards[:-1]:
        assert s.count == max_objects or s.bytes >= max_bytes
        last = s.matches[-1]
        assert s.count <= max_objects
        assert s.bytes - (last.src.size if last.src else 0) < max_bytes
    assert shards[-1].count <= max_objects


@settings(max_examples=200, deadline=None)
@given(listings(), st.integers(1, 16), st.integers(1, 1000), st.integers(1, 50000))
def test_a_listing_that_fits_is_cut_over_every_slot(matches: list[Match], parts: int,
                                                    max_objects: int, max_bytes: int) -> None:
    """A listing read ahead whole is cut into at least ``parts`` shards when it has
    that many keys (no idle worker), at most about twice that, and never into
    shards above the configured limits."""
    total = sum(m.src.size for m in matches if m.src is not None)
    objects, limit_bytes = balanced_limits(len(matches), total, parts, max_objects, max_bytes)
    assert 1 <= objects <= max_objects and 1 <= limit_bytes <= max_bytes
    full = [s for s in cut(matches, objects, limit_bytes) if s.count]
    assert [m for s in full for m in s.matches] == matches
    assert len(full) >= min(parts, len(matches))
    if objects < max_objects and limit_bytes < max_bytes:
        assert len(full) <= 2 * parts + 1
    assert all(s.count <= max_objects for s in full)


def test_an_estate_smaller_than_one_shard_still_reaches_every_worker() -> None:
    matches = [Match(f"k{i:04}", ObjectMeta(f"k{i:04}", 4096), None, None) for i in range(800)]
    limits = balanced_limits(800, 800 * 4096, 8, 1000, 1 << 30)
    assert limits == (100, 409600)
    assert [s.count for s in cut(matches, *limits) if s.count] == [100] * 8


def test_an_empty_listing_is_one_empty_shard_over_everything() -> None:
    [only] = cut([], 5, 100)
    assert only.range == KeyRange(None, None) and only.count == 0 and "anything" in only.range


def test_out_of_order_input_is_refused() -> None:
    c = ShardCutter(10, 10**9)
    c.add(Match("b", ObjectMeta("b", 1), None, None))
    with pytest.raises(ListingOrderError):
        c.add(Match("a", ObjectMeta("a", 1), None, None))


def test_one_huge_object_is_a_shard_of_its_own() -> None:
    big = [Match("a", ObjectMeta("a", 10), None, None), Match("b", ObjectMeta("b", 10**9),
                                                            None, None),
           Match("c", ObjectMeta("c", 10), None, None)]
    shards = cut(big, 100, 1000)
    assert [[m.key for m in s.matches] for s in shards] == [["a", "b"], ["c"]]


@pytest.mark.parametrize(("text", "local", "address"), [
    ("local:1", 1, None), ("local:3", 3, None), (" local:2 ", 2, None),
    ("tcp://10.0.0.5:8786", None, "tcp://10.0.0.5:8786"),
    ("tcp://scheduler", None, "tcp://scheduler:8786"),
    ("tcp://[::1]:9000", None, "tcp://[::1]:9000"),
])
def test_workers_values(text: str, local: int | None, address: str | None) -> None:
    spec = parse_workers(text)
    assert (spec.local, spec.address) == (local, address)


@pytest.mark.parametrize("text", ["", "local", "local:0", "local:-1", "local:257", "local:x",
                                  "3", "tcp://", "tcp://h:0", "tcp://h:70000", "http://h:1",
                                  "tcp://h:1/x"])
def test_bad_workers_values(text: str) -> None:
    with pytest.raises(WorkersSpecError, match="--workers"):
        parse_workers(text)
