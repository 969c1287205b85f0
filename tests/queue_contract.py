"""The message-queue contract (``stores/queues.py``) as checks, run against every
backend: ``tests/unit/test_queue_conformance.py`` runs them against MemoryQueue,
``tests/integration/test_queue_conformance.py`` against Azure Storage Queues
(Azurite) and SQS (moto server). Each check gets a fresh, empty queue.

Time moves through the harness: ``sleep`` advances a manual clock for the
memory queue and really sleeps for the servers, so the visibility checks take
a second or two there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crosswind.errors import NotFound
from crosswind.stores.queues import MessageQueue, QueueMessage


@dataclass
class Harness:
    queue: MessageQueue
    #: let ``seconds`` pass for the queue's visibility timeouts
    sleep: Callable[[float], Awaitable[None]]
    #: the queue's clock, seconds since the epoch (to check enqueue times)
    now: Callable[[], float]
    #: at most this many messages come back from one receive
    per_call: int
    #: a queue of the same backend that does not exist
    missing: MessageQueue


HarnessFactory = Callable[[], contextlib.AbstractAsyncContextManager[Harness]]
Check = Callable[[Harness], Awaitable[None]]
CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def run_check(factory: HarnessFactory, fn: Check) -> None:
    async def go() -> None:
        async with factory() as harness:
            await fn(harness)

    asyncio.run(go())


def parametrize_checks(known_failures: Mapping[str, str] | None = None) -> Any:
    known = known_failures or {}
    assert not set(known) - set(CHECKS), f"no such checks: {set(known) - set(CHECKS)}"
    return pytest.mark.parametrize("check_name", [
        pytest.param(name, marks=pytest.mark.xfail(reason=known[name], strict=True))
        if name in known else name
        for name in sorted(CHECKS)
    ])


async def drain(h: Harness, expected: int, *, visibility_timeout_s: int = 30,
                attempts: int = 20) -> list[QueueMessage]:
    """Receive until ``expected`` messages came (or the attempts ran out)."""
    got: list[QueueMessage] = []
    for _ in range(attempts):
        if len(got) >= expected:
            break
        got += await h.queue.receive(32, visibility_timeout_s=visibility_timeout_s,
                                     wait_s=0.5)
    return got


# What Event Grid writes, and text that trips XML (Azure) or JSON handling.
EVENT = {"eventType": "Microsoft.Storage.BlobCreated", "subject":
         "/blobServices/default/containers/c/blobs/a <b> & 'c'.json"}
BODIES = [
    json.dumps(EVENT),
    base64.b64encode(json.dumps(EVENT).encode()).decode(),
    '<Message><a href="x">&amp;&lt;</a></Message>',
    "ünï 名前 😀 \u2028",
    "line1\nline2\r\n\ttab",
    "+/=%20%2B",
    "x" * 48_000,
]


# -- checks ----------------------------------------------------------------------
@check
async def check_bodies_come_back_exactly(h: Harness) -> None:
    for body in BODIES:
        await h.queue.send(body)
    got = await drain(h, len(BODIES))
    assert sorted(m.body for m in got) == sorted(BODIES)
    assert len({m.id for m in got}) == len(BODIES)


@check
async def check_first_delivery(h: Harness) -> None:
    before = h.now()
    await h.queue.send("one")
    (m,) = await drain(h, 1)
    assert m.dequeue_count == 1 and m.receipt
    assert m.enqueued_at is not None and m.enqueued_at.tzinfo is not None
    assert m.enqueued_at.utcoffset() == timedelta(0)
    # the server's clock, within a few minutes of ours
    assert abs(m.enqueued_at - datetime.fromtimestamp(before, UTC)) < timedelta(minutes=5)


@check
async def check_a_received_message_is_hidden_then_comes_back(h: Harness) -> None:
    await h.queue.send("m")
    (first,) = await drain(h, 1, visibility_timeout_s=1)
    assert await h.queue.receive(32, visibility_timeout_s=30) == []
    await h.sleep(2.5)
    (again,) = await drain(h, 1)
    assert again.id == first.id and again.body == "m"
    assert again.dequeue_count == 2
    assert again.receipt != first.receipt


@check
async def check_ack_deletes(h: Harness) -> None:
    await h.queue.send("m")
    (m,) = await drain(h, 1, visibility_timeout_s=1)
    await h.queue.ack(m)
    await h.sleep(2.5)
    assert await h.queue.receive(32, visibility_timeout_s=30) == []
    assert await h.queue.depth() == 0


@check
async def check_ack_of_a_gone_message_is_not_an_error(h: Harness) -> None:
    await h.queue.send("m")
    (m,) = await drain(h, 1)
    await h.queue.ack(m)
    await h.queue.ack(m)  # already deleted


@check
async def check_ack_with_a_stale_receipt_is_not_an_error(h: Harness) -> None:
    await h.queue.send("m")
    (first,) = await drain(h, 1, visibility_timeout_s=1)
    await h.sleep(2.5)
    (second,) = await drain(h, 1)  # someone else took it
    await h.queue.ack(first)  # too late: no error
    await h.queue.ack(second)
    assert await h.queue.depth() == 0


@check
async def check_extend_keeps_a_message_hidden(h: Harness) -> None:
    await h.queue.send("m")
    (m,) = await drain(h, 1, visibility_timeout_s=1)
    longer = await h.queue.extend(m, 30)
    assert longer.id == m.id and longer.body == m.body and longer.receipt
    await h.sleep(2.5)
    assert await h.queue.receive(32, visibility_timeout_s=30) == []
    await h.queue.ack(longer)  # the receipt extend returned acknowledges it
    assert await h.queue.depth() == 0


@check
async def check_extend_to_zero_releases_a_message(h: Harness) -> None:
    await h.queue.send("m")
    (m,) = await drain(h, 1, visibility_timeout_s=60)
    await h.queue.extend(m, 0)
    (again,) = await drain(h, 1)
    assert again.id == m.id and again.dequeue_count == 2


@check
async def check_extend_of_a_deleted_message_is_not_found(h: Harness) -> None:
    await h.queue.send("m")
    (m,) = await drain(h, 1)
    await h.queue.ack(m)
    with pytest.raises(NotFound):
        await h.queue.extend(m, 30)


@check
async def check_depth_counts_messages_not_yet_acknowledged(h: Harness) -> None:
    assert await h.queue.depth() == 0
    for i in range(3):
        await h.queue.send(f"m{i}")
    assert await h.queue.depth() == 3
    (m, *_) = await drain(h, 3)
    assert await h.queue.depth() == 3  # in flight still counts
    await h.queue.ack(m)
    assert await h.queue.depth() == 2


@check
async def check_receive_takes_at_most_what_the_backend_allows(h: Harness) -> None:
    for i in range(15):
        await h.queue.send(f"m{i}")
    one = await h.queue.receive(1, visibility_timeout_s=30)
    assert len(one) == 1
    batch = await h.queue.receive(32, visibility_timeout_s=30)
    assert 1 <= len(batch) <= h.per_call
    assert getattr(h.queue, "max_per_receive", None) == h.per_call
    rest = await drain(h, 14 - len(batch))
    assert sorted(m.body for m in one + batch + rest) == sorted(f"m{i}" for i in range(15))


@check
async def check_receive_waits_for_a_message(h: Harness) -> None:
    async def later() -> None:
        await asyncio.sleep(0.5)
        await h.queue.send("late")

    task = asyncio.create_task(later())
    started = time.monotonic()
    got = await h.queue.receive(1, visibility_timeout_s=30, wait_s=5)
    await task
    assert [m.body for m in got] == ["late"]
    assert time.monotonic() - started < 4.5


@check
async def check_receive_gives_up_after_the_wait(h: Harness) -> None:
    started = time.monotonic()
    assert await h.queue.receive(5, visibility_timeout_s=30, wait_s=1) == []
    assert 0.8 <= time.monotonic() - started < 5


@check
async def check_bad_arguments_are_refused(h: Harness) -> None:
    for n in (0, 33):
        with pytest.raises(ValueError):
            await h.queue.receive(n, visibility_timeout_s=30)
    with pytest.raises(ValueError):
        await h.queue.receive(1, visibility_timeout_s=0)


@check
async def check_a_missing_queue_is_not_found(h: Harness) -> None:
    await h.queue.check()
    for call in (h.missing.check, h.missing.depth, lambda: h.missing.send("x"),
                 lambda: h.missing.receive(1, visibility_timeout_s=30)):
        with pytest.raises(NotFound):
            await call()


@contextlib.asynccontextmanager
async def closing(*queues: MessageQueue) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for q in queues:
            await q.close()
