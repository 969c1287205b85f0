"""The capacity probe against the memory store: what it reads, writes and removes."""

from __future__ import annotations

import asyncio
import hashlib

from crosswind.capacity.model import Settings
from crosswind.capacity.planner import PlanRequest, plan_capacity
from crosswind.capacity.probe import ProbeOptions
from crosswind.model import ObjectProps
from crosswind.stores.memory import MemoryStore

QUICK = ProbeOptions(seconds=0.35, burst_concurrency=8, large_concurrency=2, samples=2,
                     large_size=64 * 1024)


async def _fill(store: MemoryStore, sizes: list[int]) -> None:
    for i, n in enumerate(sizes):
        data = bytes(n)
        await store.put(f"events/{i:03d}.json", data, ObjectProps(),
                        md5=hashlib.md5(data, usedforsecurity=False).hexdigest())


async def _keys(store: MemoryStore) -> list[tuple[str, int]]:
    return [(m.key, m.size) async for m in store.list("")]


def _plan(sizes: list[int]) -> tuple[dict[str, object], list[tuple[str, int]],
                                      list[tuple[str, int]], list[tuple[str, int]]]:
    async def go() -> tuple[dict[str, object], list[tuple[str, int]],
                            list[tuple[str, int]], list[tuple[str, int]]]:
        src, dst = MemoryStore("src"), MemoryStore("dst")
        await _fill(src, sizes)
        before = await _keys(src)
        plan = await plan_capacity(src, "azure", dst, "aws",
                                   PlanRequest(Settings(workers=2, concurrency=4), QUICK))
        return plan.to_json(), before, await _keys(src), await _keys(dst)

    return asyncio.run(go())


def test_the_probe_reads_the_source_and_cleans_the_destination() -> None:
    body, before, after, dst = _plan([100, 2000, 4096, 300_000])
    assert after == before  # the source is only read
    assert dst == []  # every probe object removed
    measured = body["measured"]
    assert isinstance(measured, dict)
    assert measured["probe_objects_written"] == measured["probe_objects_removed"] > 0
    names = set(measured["requests"])
    assert {"memory://src HEAD", "memory://src GET (small)", "memory://dst PUT (small)",
            "memory://dst HEAD", "memory://dst GET (small)"} <= names
    assert any(n.startswith("memory://src GET (") and "range" in n for n in names)


def test_only_large_objects_are_read_in_ranges() -> None:
    body, before, after, dst = _plan([5 * 1024 * 1024, 6 * 1024 * 1024])
    assert after == before and dst == []
    measured = body["measured"]
    assert isinstance(measured, dict)
    assert measured["requests"]["memory://src GET (small)"]["burst_requests"] > 0


def test_an_empty_source_still_plans() -> None:
    body, _, _, dst = _plan([])
    assert dst == []
    copy = body["copy"]
    assert isinstance(copy, dict)
    assert copy["duration_s"] == 0 and copy["bottleneck"] == "nothing to do"
