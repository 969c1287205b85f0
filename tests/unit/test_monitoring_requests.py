"""Request stats: the recent latency, its rolling baseline, in-flight requests,
auth failures; and that the breaker wrappers time every store request by
endpoint and operation."""

from __future__ import annotations

import asyncio

import pytest

from crosswind.errors import AuthError, NotFound
from crosswind.live.breakers import Breakers, GuardedObjectStore
from crosswind.model import ObjectProps
from crosswind.observability.requests import RequestStats
from crosswind.stores.memory import MemoryStore


def stats(clock: list[float], **kw: float) -> RequestStats:
    return RequestStats(clock=lambda: clock[0], **kw)  # type: ignore[arg-type]


def put(rs: RequestStats, seconds: float, n: int = 1, outcome: str = "ok") -> None:
    for _ in range(n):
        rs.started("s3")
        rs.finished("s3", "put", seconds, outcome)  # type: ignore[arg-type]


def op(rs: RequestStats) -> dict[str, object]:
    return rs.as_dict()["endpoints"]["s3"]["operations"]["put"]  # type: ignore[no-any-return]


def test_no_baseline_until_five_minutes_are_known() -> None:
    clock = [0.0]
    rs = stats(clock)
    for minute in range(5):
        clock[0] = minute * 60.0 + 1
        put(rs, 0.010, 3)
    # minutes 0-3 are complete, 4 is the current one: not yet five
    assert op(rs)["baseline_s"] is None and op(rs)["ratio"] is None
    clock[0] = 5 * 60.0 + 1
    put(rs, 0.010, 5)
    assert op(rs)["baseline_s"] == pytest.approx(0.010)
    assert op(rs)["ratio"] == pytest.approx(1.0)


def test_a_slow_spell_shows_as_a_ratio_over_the_baseline() -> None:
    clock = [0.0]
    rs = stats(clock)
    for minute in range(10):
        clock[0] = minute * 60.0
        put(rs, 0.050, 10)
    clock[0] = 11 * 60.0
    put(rs, 0.060, 60)  # a minute 20 % slower (after a quiet one)
    assert op(rs)["baseline_s"] == pytest.approx(0.050)
    assert op(rs)["ratio"] == pytest.approx(1.2)
    # a single slow request among the usual ones hardly moves it
    clock[0] = 13 * 60.0
    put(rs, 0.050, 99)
    put(rs, 1.0)
    assert op(rs)["ratio"] == pytest.approx((0.050 * 99 + 1.0) / 100 / 0.050)
    assert op(rs)["ratio"] < 1.2
    # a rare operation: too few recent requests for a recent latency (no alert)
    clock[0] = 20 * 60.0
    put(rs, 1.0, 4)
    assert op(rs)["latency_s"] is None and op(rs)["ratio"] is None


def test_the_baseline_is_a_median_of_minutes_over_the_window() -> None:
    clock = [0.0]
    rs = stats(clock, window_minutes=10)  # type: ignore[arg-type]
    means = [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.5, 0.5, 0.01, 0.01]
    for minute, m in enumerate(means):
        clock[0] = minute * 60.0
        put(rs, m, 4)
    clock[0] = 10 * 60.0
    put(rs, 0.01)
    assert op(rs)["baseline_s"] == pytest.approx(0.01)  # two slow minutes do not move it
    clock[0] = 30 * 60.0  # everything older than the window is forgotten
    put(rs, 0.02)
    assert op(rs)["baseline_s"] is None


def test_counts_histogram_in_flight_and_auth_failures() -> None:
    rs = RequestStats()
    rs.track("s3", pool_size=8)
    put(rs, 0.004, 2)
    put(rs, 0.2)
    put(rs, 3.0, outcome="unreachable")  # an outage's duration is no latency
    rs.started("s3")
    rs.outcome("azure-blob", "other", "auth_error")
    d = rs.as_dict()["endpoints"]
    assert d["s3"]["in_flight"] == 1 and d["s3"]["pool_size"] == 8
    o = d["s3"]["operations"]["put"]
    assert o["outcomes"] == {"ok": 3, "unreachable": 1}
    h = o["histogram"]
    assert h["count"] == 3 and h["sum"] == pytest.approx(0.208)
    le = dict(zip(h["le"], h["counts"], strict=False))
    assert le[0.005] == 2 and le[0.1] == 2 and le[0.25] == 3 and h["counts"][-1] == 3
    assert d["azure-blob"]["auth_failures"] == 1


def test_guarded_store_requests_are_timed_by_operation() -> None:
    async def go() -> dict[str, object]:
        rs = RequestStats()
        breakers = Breakers(threshold=3, ttl_s=1, requests=rs)
        store = GuardedObjectStore(MemoryStore("mem"), "s3", breakers)
        await store.put("k", b"data", ObjectProps(), md5="8d777f385d3dfec8815d20f7496026dc")
        await store.head("k")
        with pytest.raises(NotFound):
            await store.head("missing")
        async for _ in store.list():
            pass

        async def refuse() -> None:
            raise AuthError("403 refused")

        with pytest.raises(AuthError):
            await breakers.call("s3", refuse, "get")
        return rs.as_dict()["endpoints"]["s3"]  # type: ignore[no-any-return]

    s3 = asyncio.run(go())
    ops = s3["operations"]  # type: ignore[index]
    assert ops["put"]["outcomes"] == {"ok": 1}
    assert ops["head"]["outcomes"] == {"ok": 1, "answer": 1}  # not found is an answer
    assert "list" not in ops  # a listing's first ask is no request of its own
    assert ops["get"]["outcomes"] == {"auth_error": 1}
    assert s3["auth_failures"] == 1  # type: ignore[index]
    assert s3["in_flight"] == 0  # type: ignore[index]
