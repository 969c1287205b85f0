"""The load test's schedule (pure): rate and mix proportions hold, the same seed
gives the same schedule, and changes of existing keys only ever target keys
that exist by then; plus the open-loop executor keeps each key's order."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.inventory import Inventory
from crosswind.loadtest.pacing import run_schedule
from crosswind.loadtest.schedule import (
    FLIGHT_EVENT_SIZES,
    LOADTEST_KINDS,
    Op,
    ScheduleError,
    SizeHistogram,
    parse_mix,
    plan,
)
from crosswind.model import ObjectMeta

weights = st.integers(min_value=0, max_value=100)
mixes = st.fixed_dictionaries({"new": st.integers(min_value=1, max_value=100),
                               "overwrite": weights, "meta": weights, "delete": weights})
rates = st.floats(min_value=0.5, max_value=200, allow_nan=False)
durations = st.floats(min_value=1, max_value=60, allow_nan=False)
BOUNDED = settings(max_examples=60, deadline=None)


def replay(ops: list[Op], existing: int) -> None:
    """Every change of an existing key targets a key that exists by then; a new
    key is new."""
    live = set(range(existing))
    seen = set(live)
    for op in ops:
        if op.kind == "new":
            assert op.key not in seen
            live.add(op.key)
            seen.add(op.key)
        else:
            assert op.key in live, op
            if op.kind == "delete":
                live.discard(op.key)


@BOUNDED
@given(rates, durations, mixes, st.integers(0, 2**32), st.integers(0, 5))
def test_rate_and_keys_hold(rate: float, duration: float, mix: dict[str, float], seed: int,
                            existing: int) -> None:
    if rate * duration < 1:
        return
    ops = list(plan(rate, duration, mix, FLIGHT_EVENT_SIZES, seed, existing=existing))
    # the rate: floor(rate * duration) changes, change i due at i / rate, within the duration
    assert len(ops) == int(rate * duration + 1e-9)
    assert all(op.at_s == pytest.approx(i / rate) for i, op in enumerate(ops))
    assert ops[-1].at_s < duration
    replay(ops, existing)
    # sizes only for the kinds that write an object, within the histogram's classes
    assert all((op.size > 0) == (op.kind in ("new", "overwrite")) for op in ops)


@BOUNDED
@given(rates, durations, mixes, st.integers(0, 2**32))
def test_mix_proportions_hold_while_keys_exist(rate: float, duration: float,
                                               mix: dict[str, float], seed: int) -> None:
    """With as many creates as deletes (and a few keys to begin with), nothing ever
    lacks a key, and every kind's count is within one of its share at the end (within
    two at every point on the way)."""
    if rate * duration < 1:
        return
    mix = {**mix, "new": max(mix["new"], mix["delete"])}
    ops = list(plan(rate, duration, mix, FLIGHT_EVENT_SIZES, seed, existing=3))
    counts: Counter[str] = Counter()
    total = sum(mix.values())
    for n, op in enumerate(ops, 1):  # at every point of the schedule: within two
        counts[op.kind] += 1
        for kind, w in mix.items():
            assert abs(counts[kind] - n * w / total) < 2, (n, kind, counts)
    for kind, w in mix.items():  # at the end: within one
        assert abs(counts[kind] - len(ops) * w / total) <= 1.0 + 1e-9, (kind, counts)


@BOUNDED
@given(rates, durations, mixes, st.integers(0, 2**32))
def test_deterministic_by_seed(rate: float, duration: float, mix: dict[str, float],
                               seed: int) -> None:
    if rate * duration < 1:
        return
    a = list(plan(rate, duration, mix, FLIGHT_EVENT_SIZES, seed))
    assert a == list(plan(rate, duration, mix, FLIGHT_EVENT_SIZES, seed))


def test_seeds_differ_and_deletes_outpacing_creates_fall_back_to_new() -> None:
    mix = parse_mix("new=60,overwrite=20,meta=10,delete=10")
    a = list(plan(20, 30, mix, FLIGHT_EVENT_SIZES, 1))
    b = list(plan(20, 30, mix, FLIGHT_EVENT_SIZES, 2))
    assert [o.kind for o in a] == [o.kind for o in b]  # the mix is exact, not drawn
    assert [o.key for o in a] != [o.key for o in b] or [o.size for o in a] != [
        o.size for o in b]
    ops = list(plan(10, 10, {"new": 1, "delete": 9}, FLIGHT_EVENT_SIZES, 0))
    replay(ops, 0)
    assert Counter(o.kind for o in ops) == {"new": 50, "delete": 50}


@pytest.mark.parametrize(("text", "needle"), [
    ("new=60,bogus=1", "unknown kind 'bogus'"), ("new", "'new' is not KIND=WEIGHT"),
    ("new=x", "weight of new is not a number"), ("new=-1", "must be a number >= 0"),
    ("overwrite=5", "new needs a weight > 0"), ("new=1,new=2", "new is given twice"),
    ("new=inf", "must be a number >= 0")])
def test_bad_mix_is_one_line_naming_it(text: str, needle: str) -> None:
    with pytest.raises(ScheduleError, match="--mix") as e:
        parse_mix(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_sizes_follow_the_inventory() -> None:
    inv = Inventory()
    for i in range(90):
        inv.add(ObjectMeta(f"k{i}", 2000))
    for i in range(10):
        inv.add(ObjectMeta(f"b{i}", 300_000))
    sizes = SizeHistogram.from_counts([(c, b) for c, b in inv.histogram])
    mix = {k: 1.0 for k in LOADTEST_KINDS}
    ops = [o for o in plan(100, 20, mix, sizes, 3) if o.size]
    big = sum(1 for o in ops if o.size >= 256 * 1024)
    assert 0.05 < big / len(ops) < 0.15
    assert all(1024 <= o.size < 4096 or 256 * 1024 <= o.size < 1024**2 for o in ops)
    # a report's size_histogram (objects and bytes per class) gives the same classes
    report = inv.report("memory://x", (1.0, 1.0, "test"))
    assert SizeHistogram.from_report(report).as_dict() == sizes.as_dict()
    capped = [o.size for o in plan(100, 5, mix, sizes, 3, max_size=5000) if o.size]
    assert max(capped) == 5000


def test_the_executor_keeps_each_keys_order_and_counts_errors() -> None:
    done: list[Op] = []
    ops = list(plan(500, 1, {"new": 1, "overwrite": 3, "delete": 1}, FLIGHT_EVENT_SIZES, 5,
                    existing=2))

    async def do(op: Op) -> None:
        # later changes finish first if nothing orders them
        await asyncio.sleep(0.02 if op.index % 2 == 0 else 0.001)
        if op.index == 7:
            raise RuntimeError("the primary said no")
        done.append(op)

    stats = asyncio.run(run_schedule(ops, do, rate=500, duration_s=1, max_in_flight=16))
    by_key: dict[int, list[int]] = {}
    for op in done:
        by_key.setdefault(op.key, []).append(op.index)
    assert all(v == sorted(v) for v in by_key.values())
    assert stats.completed == len(ops) and stats.failed == 1
    assert stats.errors == {f"{ops[7].kind}: RuntimeError": 1}
    assert stats.max_in_flight <= 16 and len(stats.lateness) == len(ops)
