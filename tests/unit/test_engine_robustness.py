"""A bug in one object's copy fails that object; it never hangs or ends the run."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from crosswind.errors import EndpointUnreachable, NotFound
from crosswind.model import ObjectProps
from crosswind.state import StateStore
from crosswind.stores.base import ObjectReader
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.engine import SyncRun
from crosswind.sync.result import SyncOptions
from crosswind.sync.transfer import TransferSettings


class BuggyStore(MemoryStore):
    async def get(self, key: str, **kw: Any) -> ObjectReader:
        if key.startswith("bug"):
            raise RuntimeError(f"boom on {key}")
        return await super().get(key, **kw)


def test_unexpected_exception_fails_only_that_object(tmp_path: Path) -> None:
    async def go() -> Any:
        src, dst = BuggyStore("src"), MemoryStore("dst")
        for i in range(200):  # more than the queue holds, so a dead worker would hang
            key = f"bug{i}" if i % 3 == 0 else f"ok{i}"
            await src.put(key, b"x", ObjectProps(), md5=md5_hex(b"x"))
        state = StateStore(tmp_path)
        try:
            opts = SyncOptions(direction="azure-to-aws", concurrency=2)
            return await asyncio.wait_for(SyncRun(src, dst, state, opts).run(), 30)
        finally:
            state.close()

    result = asyncio.run(go())
    assert result.status == "failed" and result.exit_code == 1
    assert result.stats.failed.count == 67 and result.stats.copied.count == 133
    assert {f["kind"] for f in result.failures} == {"InternalError"}
    assert "RuntimeError: boom on bug0" in {f["reason"] for f in result.failures}


class UnreachableDuringUpload(MemoryStore):
    """Parts and aborts fail (the endpoint went away mid-upload)."""

    async def start_upload(self, key: str, props: ObjectProps, **kw: Any) -> Any:
        up = await super().start_upload(key, props, **kw)

        async def put_part(number: int, data: bytes, md5: str) -> None:
            raise EndpointUnreachable(f"{self.name}/{key}: cannot reach the endpoint")

        async def abort() -> None:
            raise EndpointUnreachable(f"{self.name}/{key}: cannot reach the endpoint")

        up.put_part = put_part  # type: ignore[method-assign]
        up.abort = abort  # type: ignore[method-assign]
        return up


def test_upload_whose_abort_failed_stays_recorded_for_the_next_run(tmp_path: Path) -> None:
    async def go() -> tuple[list[tuple[str, str]], list[str]]:
        src, dst = MemoryStore("src"), UnreachableDuringUpload("dst")
        await src.put("big", b"x" * 100, ObjectProps(), md5=md5_hex(b"x" * 100))
        state = StateStore(tmp_path)
        try:
            opts = SyncOptions(direction="azure-to-aws", concurrency=1, attempts=1,
                               transfer=TransferSettings(multipart_threshold=10, part_size=10))
            result = await SyncRun(src, dst, state, opts).run()
            assert result.stats.failed.count == 1
            recorded, still_open = state.open_uploads(dst.name), list(dst.uploads)
            await SyncRun(src, dst, state, opts).run()  # aborts the leftover first
            assert not set(still_open) & set(dst.uploads)
            return recorded, still_open
        finally:
            state.close()

    recorded, still_open = asyncio.run(go())
    # The upload is still open on the destination: the state must remember it so
    # the next run aborts it, instead of forgetting it because the abort failed.
    assert still_open
    assert [u for _, u in recorded] == still_open


class GoneAfterListing(MemoryStore):
    """Lists without props (as S3 does) and the object is deleted before the HEAD."""

    async def list(self, prefix: str = "") -> Any:
        async for m in super().list(prefix):
            yield replace(m, props=None)

    async def head(self, key: str) -> Any:
        raise NotFound(f"{self.name}/{key}: not found")


def test_dry_run_never_copies_even_when_a_checked_object_changes(tmp_path: Path) -> None:
    async def go() -> tuple[int, int]:
        src, dst = MemoryStore("src"), GoneAfterListing("dst")
        await src.put("k", b"same", ObjectProps(), md5=md5_hex(b"same"))
        await MemoryStore.put(dst, "k", b"same", ObjectProps(), md5=md5_hex(b"same"))
        etag_before = dst.objects["k"].etag
        state = StateStore(tmp_path)
        try:
            opts = SyncOptions(direction="azure-to-aws", dry_run=True)
            result = await SyncRun(src, dst, state, opts).run()
            assert list(state.iter_verified("azure-to-aws")) == []
        finally:
            state.close()
        assert dst.objects["k"].etag == etag_before, "a dry run wrote to the destination"
        return result.stats.copied.count, result.stats.planned.count

    copied, planned = asyncio.run(go())
    assert copied == 0 and planned == 1


def test_a_leftover_upload_that_cannot_be_aborted_does_not_fail_the_run(tmp_path: Path) -> None:
    from crosswind.errors import AuthError

    class NoAbort(MemoryStore):
        async def abort_upload(self, key: str, upload_id: str) -> None:
            raise AuthError("s3://b: permission denied (AccessDenied)")

    async def go() -> Any:
        src, dst = MemoryStore("src"), NoAbort("dst")
        await src.put("k", b"x", ObjectProps(), md5=md5_hex(b"x"))
        state = StateStore(tmp_path)
        state.upload_started(dst.name, "big", "u-1")
        try:
            result = await SyncRun(src, dst, state, SyncOptions(direction="azure-to-aws")).run()
            return result, state.open_uploads(dst.name)
        finally:
            state.close()

    result, still_open = asyncio.run(go())
    assert result.status == "succeeded" and result.stats.copied.count == 1
    assert still_open == [("big", "u-1")]  # kept, tried again next run


class OutOfOrderAfter(MemoryStore):
    """Lists its keys, then one that sorts before the last (a broken listing);
    records when each copy began (its first read)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.reads: list[float] = []

    async def list(self, prefix: str = "") -> Any:
        async for m in super().list(prefix):
            yield m
        yield replace(m, key="a-out-of-order")

    async def get(self, key: str, **kw: Any) -> ObjectReader:
        self.reads.append(asyncio.get_running_loop().time())
        return await super().get(key, **kw)


class SlowPutStore(MemoryStore):
    async def put(self, key: str, data: bytes, props: ObjectProps, **kw: Any) -> Any:
        await asyncio.sleep(0.05)
        return await super().put(key, data, props, **kw)


def test_a_broken_listing_ends_the_run_with_its_own_exit_code_and_starts_nothing_queued(
    tmp_path: Path,
) -> None:
    """Exit 1 means "some objects failed"; a run ended by a non-store error
    (here ListingOrderError) exits 6. The queued copies do not start; the two in
    flight finish and are recorded."""
    async def go() -> tuple[Any, list[float], float, int]:
        src, dst = OutOfOrderAfter("src"), SlowPutStore("dst")
        for i in range(40):
            await src.put(f"k{i:03d}", b"x", ObjectProps(), md5=md5_hex(b"x"))
        src.reads.clear()
        state = StateStore(tmp_path)
        stopped_at = 0.0
        try:
            run = SyncRun(src, dst, state, SyncOptions(direction="azure-to-aws", concurrency=2))
            original = run._stop_workers

            async def stop(*a: Any, **kw: Any) -> None:
                nonlocal stopped_at
                stopped_at = asyncio.get_running_loop().time()
                await original(*a, **kw)

            run._stop_workers = stop  # type: ignore[method-assign]
            result = await asyncio.wait_for(run.run(), 30)
            return result, src.reads, stopped_at, len(list(state.iter_verified("azure-to-aws")))
        finally:
            state.close()

    result, reads, stopped_at, recorded = asyncio.run(go())
    assert result.status == "failed" and result.exit_code == 6
    assert "out of order" in (result.error or "")
    assert stopped_at > 0
    # Only copies a worker had taken before the stop may begin reading after it.
    assert len([t for t in reads if t > stopped_at]) <= 2
    # The queue held 8 when the listing broke: they never started.
    assert len(reads) <= 32 and recorded == len(reads) == result.stats.copied.count
