"""The transfer's limits: every lease of the byte budget comes back, whatever
fails and whenever a copy is cancelled (issue 15 #4: failed parts leaked their
bytes until runs hung), and one request or parts is decided by crosswind (#7)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.errors import IntegrityError, StoreError, TransientError
from crosswind.model import ObjectProps
from crosswind.observability.stats import SyncStats
from crosswind.stores.base import ObjectReader, StreamedPut
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.budget import ByteBudget, LeaseSet
from crosswind.sync.transfer import Transfer, TransferSettings, in_one_request, write_way

KiB = 1024


def test_lease_release_is_idempotent_and_wakes_waiters() -> None:
    async def go() -> None:
        budget = ByteBudget(10)
        a = await budget.acquire(6)
        waiter = asyncio.create_task(budget.acquire(6))
        await asyncio.sleep(0)
        assert not waiter.done() and budget.free == 4
        a.release()
        a.release()  # a second owner giving it back changes nothing
        b = await asyncio.wait_for(waiter, 1)
        assert budget.free == 4
        b.release()
        assert budget.free == 10

    asyncio.run(go())


def test_cancelled_waiter_takes_nothing() -> None:
    async def go() -> None:
        budget = ByteBudget(10)
        with LeaseSet(budget) as leases:
            await leases.acquire(10)
            waiter = asyncio.create_task(budget.acquire(1))
            await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        assert budget.free == 10 and budget._waiters == []

    asyncio.run(go())


class FlakyStore(MemoryStore):
    """Parts and reads fail (or stall) as the plan says, by part number / range start."""

    def __init__(self, fail_parts: set[int], fail_reads: set[int], slow: set[int]) -> None:
        super().__init__("flaky")
        self.fail_parts, self.fail_reads, self.slow = fail_parts, fail_reads, slow

    async def get(self, key: str, **kw: Any) -> ObjectReader:
        rng = kw.get("byte_range")
        part = 0 if rng is None else rng[0] // (8 * KiB) + 1
        if part in self.slow:
            await asyncio.sleep(0.01)
        if part in self.fail_reads:
            raise TransientError(f"read of part {part} failed")
        return await super().get(key, **kw)

    async def start_upload(self, key: str, props: ObjectProps, **kw: Any) -> Any:
        up = await super().start_upload(key, props, **kw)
        inner = up.put_part

        async def put_part(number: int, data: bytes, md5: str) -> None:
            if number in self.slow:
                await asyncio.sleep(0.01)
            if number in self.fail_parts:
                raise IntegrityError(f"part {number} corrupted")
            await inner(number, data, md5)

        up.put_part = put_part  # type: ignore[method-assign]
        return up


parts = st.sets(st.integers(1, 12), max_size=4)


@settings(max_examples=60, deadline=None)
@given(fail_parts=parts, fail_reads=parts, slow=parts,
       k=st.integers(1, 4), budget_parts=st.integers(4, 6),
       cancel_after=st.none() | st.floats(0, 0.03))
def test_every_lease_is_returned_on_every_path(
    fail_parts: set[int], fail_reads: set[int], slow: set[int], k: int, budget_parts: int,
    cancel_after: float | None,
) -> None:
    async def go() -> None:
        data = bytes(range(256)) * (12 * 8 * KiB // 256)  # 12 parts of 8 KiB
        src = FlakyStore(set(), fail_reads, slow)
        await src.put("k", data, ObjectProps(), md5=md5_hex(data))
        dst = FlakyStore(fail_parts, set(), slow)
        budget = ByteBudget(budget_parts * 8 * KiB)
        t = Transfer(src, dst, TransferSettings(multipart_threshold=8 * KiB, part_size=8 * KiB,
                                                part_concurrency=k), budget, SyncStats())
        t.part_size_for = lambda size: 8 * KiB  # type: ignore[method-assign]
        meta = await src.head("k")
        task = asyncio.create_task(t.copy(meta))
        if cancel_after is not None:
            await asyncio.sleep(cancel_after)
            task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        assert budget.free == budget.total, (results, budget.free)
        if not (fail_parts or fail_reads) and cancel_after is None:
            assert not isinstance(results[0], BaseException)
            assert dst.objects["k"].data == data
        if isinstance(results[0], BaseException):
            assert "k" not in dst.objects and dst.uploads == {}

    asyncio.run(go())


# -- one request or parts: crosswind's decision (issue 15 #7) -----------------------
class SmallPutStore(MemoryStore):
    """A destination that takes at most 64 KiB in one request, counting uploads."""

    def __init__(self) -> None:
        super().__init__("small-put")
        self.capabilities = replace(self.capabilities, max_single_put=64 * KiB)
        self.started: list[str] = []

    async def start_upload(self, key: str, props: ObjectProps, **kw: Any) -> Any:
        self.started.append(key)
        return await super().start_upload(key, props, **kw)


@pytest.mark.parametrize(("size", "whole"), [
    (64 * KiB - 1, True), (64 * KiB, True), (64 * KiB + 1, False)])
def test_destination_single_request_limit_is_respected(size: int, whole: bool) -> None:
    """Above what the destination takes in one request, parts, whatever the
    threshold says (a threshold set above the service's limit included)."""
    settings = TransferSettings(multipart_threshold=1 << 40, part_size=16 * KiB)
    dst = SmallPutStore()
    assert in_one_request(size, settings, 1 << 40, dst.capabilities) is whole

    async def go() -> None:
        src = MemoryStore("src")
        data = bytes(size)
        await src.put("k", data, ObjectProps(), md5=md5_hex(data))
        t = Transfer(src, dst, settings, ByteBudget(1 << 30), SyncStats())
        await t.copy(await src.head("k"))
        assert dst.objects["k"].data == data
        with pytest.raises(StoreError, match="must go in parts"):
            await dst.put("big", bytes(64 * KiB + 1), ObjectProps(),
                          md5=md5_hex(bytes(64 * KiB + 1)))

    asyncio.run(go())
    assert dst.started == ([] if whole else ["k"])


def test_threshold_and_budget_boundaries() -> None:
    caps = MemoryStore().capabilities
    s = TransferSettings(multipart_threshold=1000, stream_threshold=100)
    assert in_one_request(999, s, 10_000, caps) and not in_one_request(1000, s, 10_000, caps)
    # A store that cannot stream: what cannot be held whole within the budget goes in parts.
    fixed = replace(caps, streamed_put="no")
    assert in_one_request(499, s, 500, fixed) and not in_one_request(500, s, 500, fixed)
    # One that can: streamed in one request, whatever the budget (one chunk is held).
    assert in_one_request(500, s, 500, caps) and in_one_request(999, s, 10, caps)


@pytest.mark.parametrize(("size", "md5_known", "streamed_put", "way"), [
    (99, False, "after", "whole"), (100, False, "after", "stream"),
    (999, False, "after", "stream"), (1000, True, "after", "parts"),
    (100, True, "md5_first", "stream"), (100, False, "md5_first", "parts"),
    (99, False, "md5_first", "whole"), (100, False, "no", "whole"),
])
def test_write_way(size: int, md5_known: bool, streamed_put: StreamedPut, way: str) -> None:
    """Whole below the stream threshold, streamed where the destination can verify
    a stream (after the fact, or from the source's MD5 sent first), else parts."""
    caps = replace(MemoryStore().capabilities, streamed_put=streamed_put)
    s = TransferSettings(multipart_threshold=1000, stream_threshold=100)
    assert write_way(size, md5_known, s, 10_000, caps) == way
    # A destination object without put_stream (e.g. a wrapper) is never streamed into.
    assert write_way(size, md5_known, s, 10_000, caps, can_stream=False) != "stream"


def test_a_destination_that_cannot_stream_holds_at_most_max_whole() -> None:
    """Without streaming, objects up to the threshold would be held whole: above
    ``max_whole`` they go in parts instead (the threshold is 512 MiB now)."""
    caps = MemoryStore().capabilities
    s = TransferSettings(max_whole=500, stream_threshold=100)
    assert write_way(499, True, s, 10_000, caps, can_stream=False) == "whole"
    assert write_way(500, True, s, 10_000, caps, can_stream=False) == "parts"
    assert write_way(500, True, s, 10_000, caps, can_stream=True) == "stream"


# -- crosswind's own metadata entries: within the limits, and switchable -------------
def _s3_like() -> MemoryStore:
    store = MemoryStore("s3-like", "s3")
    store.capabilities = replace(store.capabilities, max_metadata_bytes=2048)
    return store


def test_stamps_are_left_out_rather_than_fail_an_object_whose_metadata_fits() -> None:
    from crosswind.errors import MetadataMappingError
    from crosswind.mapping import metadata_size
    from crosswind.model import ObjectMeta
    from crosswind.sync.transfer import destination_props

    dst = _s3_like()
    meta = ObjectMeta("k", 1, "e", datetime(2026, 1, 2, tzinfo=UTC))
    roomy = ObjectProps(metadata={"a": "x" * 100})
    props, _, _ = destination_props(roomy, meta, dst, "rename", "f" * 32)
    assert set(props.metadata) == {"a", "crosswind-md5", "crosswind-mtime"}
    props, _, _ = destination_props(roomy, meta, dst, "rename", "f" * 32, stamp=False)
    assert set(props.metadata) == {"a"}

    # 2,000 bytes of the user's own fit in S3's 2 KiB; with the stamps they would not.
    full = ObjectProps(metadata={"a": "x" * 1999})
    props, _, _ = destination_props(full, meta, dst, "rename", "f" * 32)
    assert dict(props.metadata) == {"a": "x" * 1999}
    assert metadata_size(props.metadata) <= 2048
    with pytest.raises(MetadataMappingError, match="over the destination's limit"):
        destination_props(ObjectProps(metadata={"a": "x" * 2048}), meta, dst, "rename", None)


@pytest.mark.parametrize("stamp", [True, False])
def test_multipart_copy_stamps_the_md5_only_when_asked(stamp: bool) -> None:
    async def go() -> dict[str, str]:
        src, dst = MemoryStore("src"), MemoryStore("dst", "azure")
        data = bytes(range(256)) * 64
        await src.put("k", data, ObjectProps(metadata={"a": "1"}), md5=md5_hex(data))
        settings = TransferSettings(multipart_threshold=4 * KiB, part_size=4 * KiB,
                                    stamp_metadata=stamp)
        await Transfer(src, dst, settings, ByteBudget(1 << 20), SyncStats()).copy(
            await src.head("k"))
        return dict(dst.objects["k"].props.metadata)

    md = asyncio.run(go())
    if stamp:
        assert set(md) == {"a", "crosswind_md5", "crosswind_mtime"}
    else:
        assert md == {"a": "1"}
