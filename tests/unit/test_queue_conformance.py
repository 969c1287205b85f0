"""The queue contract (``tests/queue_contract.py``) against MemoryQueue, plus what
the service's unit tests lean on: the manual clock and injected faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from crosswind.errors import NotFound, TransientError
from crosswind.stores.memory_queue import ManualClock, MemoryQueue
from crosswind.stores.queues import MessageQueue
from tests.queue_contract import CHECKS, Harness, closing, parametrize_checks, run_check


@contextlib.asynccontextmanager
async def memory_harness() -> AsyncIterator[Harness]:
    clock = ManualClock()
    queue = MemoryQueue("conformance", clock=clock)
    missing = MemoryQueue("missing", clock=clock)
    missing.delete_queue()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    async with closing(queue, missing):
        yield Harness(queue, sleep, clock, 32, missing)


@parametrize_checks()
def test_contract_memory(check_name: str) -> None:
    run_check(memory_harness, CHECKS[check_name])


def test_memory_queue_implements_the_protocol() -> None:
    assert isinstance(MemoryQueue(), MessageQueue)


def test_visibility_follows_the_injected_clock() -> None:
    async def go() -> None:
        clock = ManualClock()
        q = MemoryQueue(clock=clock)
        await q.send("a")
        (m,) = await q.receive(1, visibility_timeout_s=30)
        clock.advance(29.9)
        assert await q.receive(1, visibility_timeout_s=30) == []
        clock.advance(0.1)
        (again,) = await q.receive(1, visibility_timeout_s=30)
        assert (again.id, again.dequeue_count) == (m.id, 2)
        assert again.enqueued_at == m.enqueued_at
        # the first receipt is stale now: ack leaves the message, extend refuses
        await q.ack(m)
        assert await q.depth() == 1
        with pytest.raises(NotFound):
            await q.extend(m, 10)
        await q.ack(again)
        assert await q.depth() == 0

    asyncio.run(go())


def test_an_injected_fault_fails_every_call_until_cleared() -> None:
    async def go() -> None:
        q = MemoryQueue()
        await q.send("a")
        q.fault = TransientError("memory-queue://memory: service error (503): injected")
        for call in (q.check, q.depth, lambda: q.send("b"),
                     lambda: q.receive(1, visibility_timeout_s=5)):
            with pytest.raises(TransientError):
                await call()
        q.fault = None
        assert [m.body for m in await q.receive(5, visibility_timeout_s=5)] == ["a"]

    asyncio.run(go())
