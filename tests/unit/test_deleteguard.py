"""The one max-delete guard: limits hold in every window, whatever the order of requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosswind.deleteguard import DeleteGuard, guard_reason
from crosswind.errors import DeleteLimitExceeded


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_reasons_name_the_limit() -> None:
    assert guard_reason(3, 100, 2, 50) == "3 deletes exceed max_delete_count = 2"
    assert "over max_delete_percent = 10" in (guard_reason(11, 100, 1000, 10) or "")
    assert guard_reason(10, 100, 1000, 10) is None
    assert guard_reason(0, 0, 0, 0) is None
    assert guard_reason(1, 0, 5, 10) is not None  # nothing counted there: 100 %
    assert guard_reason(1, 0, 5, 100) is None


@given(st.integers(0, 50), st.floats(0, 100), st.integers(0, 500),
       st.lists(st.tuples(st.integers(0, 20), st.floats(0, 30)), max_size=40),
       st.one_of(st.none(), st.floats(1, 60)))
def test_allowed_deletes_never_exceed_the_limits_in_any_window(
        max_count: int, max_percent: float, base: int,
        requests: list[tuple[int, float]], window: float | None) -> None:
    clock = Clock()
    guard = DeleteGuard(max_count, max_percent, window, clock)
    allowed: list[tuple[float, int]] = []
    for n, dt in requests:
        clock.t += dt
        if guard.admit(n, base) is None and n:
            allowed.append((clock.t, n))
        # Every window that ends now holds at most what the limits allow.
        live = sum(k for t, k in allowed if window is None or t > clock.t - window)
        assert live == guard.counted
        assert live <= max_count
        if live:
            assert (base > 0 and live * 100.0 / base <= max_percent) or max_percent >= 100


def test_window_slides_and_require_raises() -> None:
    clock = Clock()
    guard = DeleteGuard(2, 100, window_s=10, clock=clock)
    guard.require(2, 10)
    with pytest.raises(DeleteLimitExceeded, match="max_delete_count = 2; nothing was deleted"):
        guard.require(1, 10)
    clock.t = 10.5
    assert guard.counted == 0
    guard.require(1, 10)
    one_run = DeleteGuard(2, 100)
    one_run.require(2, 10)
    clock.t = 1e9
    assert one_run.check(1, 10) is not None


# -- the object sync's base: the destination before this run's copies ---------------
def _estate(tmp_path: Any, dst_keys: int, new_src_keys: int) -> Any:
    import asyncio

    from crosswind.model import ObjectProps
    from crosswind.state import StateStore
    from crosswind.stores.common import md5_hex
    from crosswind.stores.memory import MemoryStore
    from crosswind.sync.engine import SyncRun
    from crosswind.sync.result import SyncOptions

    async def go() -> Any:
        src, dst = MemoryStore("src"), MemoryStore("dst")
        for i in range(dst_keys):
            await dst.put(f"old/{i:04d}", b"o", ObjectProps(), md5=md5_hex(b"o"))
        for i in range(new_src_keys):
            await src.put(f"new/{i:04d}", b"n", ObjectProps(), md5=md5_hex(b"n"))
        state = StateStore(tmp_path)
        try:
            opts = SyncOptions(direction="azure-to-aws", delete=True, max_delete_count=10_000,
                               max_delete_percent=50)
            return await SyncRun(src, dst, state, opts).run(), dst
        finally:
            state.close()

    return asyncio.run(go())


def test_object_sync_delete_base_is_the_destination_before_the_runs_copies(tmp_path: Any
                                                                           ) -> None:
    """The wrong source container (other keys) replaces the whole replica: 20 of
    the 20 objects there before the run, 100 %. Counting the 200 objects this
    run copies in would make it 20 of 220 (9 %) and let the wipe through; the
    percentage is of what the replica held, which the run's own copies never
    make safer to delete."""
    result, dst = _estate(tmp_path, dst_keys=20, new_src_keys=200)
    assert result.status == "aborted"
    assert "of the 20 in scope" in (result.error or ""), result.error
    assert sum(1 for k in dst.objects if k.startswith("old/")) == 20  # nothing deleted
    assert result.stats.copied.count == 200  # the copies themselves went ahead
