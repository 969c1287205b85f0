"""The reservoir: bounded, a subset, every item accounted for, uniform."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from crosswind.validate.sample import Reservoir


@given(st.integers(0, 30), st.integers(0, 300), st.integers(0, 2**32))
def test_kept_and_dropped_partition_the_stream(size: int, n: int, seed: int) -> None:
    r: Reservoir[int] = Reservoir(size, seed)
    dropped: list[int] = []
    for i in range(n):
        kept, out = r.offer(i)
        assert kept or out == i
        if out is not None:
            dropped.append(out)
    items = r.items()
    assert len(items) == min(size, n)
    assert sorted(items + dropped) == list(range(n))


def test_same_seed_same_sample() -> None:
    def sample(seed: int) -> list[int]:
        r: Reservoir[int] = Reservoir(10, seed)
        for i in range(10_000):
            r.offer(i)
        return sorted(r.items())

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_every_item_is_equally_likely() -> None:
    # 20 items, samples of 5: each item should be kept 1/4 of the time. With
    # 4000 fixed seeds the count is 1000 ± 4σ (σ ≈ 27) for every item.
    counts: Counter[int] = Counter()
    for seed in range(4000):
        r: Reservoir[int] = Reservoir(5, seed)
        for i in range(20):
            r.offer(i)
        counts.update(r.items())
    assert all(890 <= counts[i] <= 1110 for i in range(20)), counts


def test_long_streams_cost_few_draws() -> None:
    r: Reservoir[int] = Reservoir(100, 1)
    for i in range(1_000_000):
        r.offer(i)
    assert len(r.items()) == 100 and max(r.items()) > 900_000
