"""The queue source's acknowledger: deletes go out several at a time (a queue a
WAN away acknowledges one message per round trip), and a message whose change
is slow stays hidden while other messages keep being acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from crosswind.live.events import PoisonMessage, azure_queue_body, blob_event, parse_azure_message
from crosswind.live.queue_source import QueueSource
from crosswind.live.scheduler import KeyScheduler
from crosswind.stores.memory_queue import MemoryQueue
from crosswind.stores.queues import QueueMessage

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class SlowQueue(MemoryQueue):
    """Each delete takes ``ack_s``; counts how many are in flight at once and which
    messages had their visibility extended."""

    def __init__(self, ack_s: float) -> None:
        super().__init__("slow")
        self.ack_s = ack_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.extended: list[str] = []

    async def ack(self, message: QueueMessage) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.ack_s)
            await super().ack(message)
        finally:
            self.in_flight -= 1

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        self.extended.append(message.id)
        return await super().extend(message, visibility_timeout_s)


async def _send(q: MemoryQueue, key: str) -> None:
    await q.send(azure_queue_body(blob_event("upsert", "c", key, event_time=NOW)))


def _source(q: MemoryQueue, sched: KeyScheduler, visibility_s: int) -> QueueSource:
    return QueueSource("events", q, lambda b: parse_azure_message(b, container="c"),
                       PoisonMessage, sched, lambda m, r: None, batch=32,
                       visibility_timeout_s=visibility_s, wait_s=0, idle_poll_s=0.05)


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await t


def test_acknowledgements_overlap() -> None:
    async def go() -> None:
        q = SlowQueue(ack_s=0.05)
        for i in range(64):
            await _send(q, f"k{i}")
        sched = KeyScheduler()
        src = _source(q, sched, 60)
        stop = asyncio.Event()

        async def worker() -> None:
            while (w := await sched.take()) is not None:
                sched.done(w)

        tasks = [asyncio.create_task(src.run(stop)), asyncio.create_task(src.acker(stop)),
                 *(asyncio.create_task(worker()) for _ in range(4))]
        for _ in range(3000):  # at most 30 s
            if src.counters.acked >= 64:
                break
            await asyncio.sleep(0.01)
        stop.set()
        sched.close()
        await _stop(*tasks)
        assert src.counters.acked == 64 and await q.depth() == 0
        # one at a time, 64 deletes of 50 ms would take 3.2 s
        assert q.most_in_flight > 1
        assert q.most_in_flight <= src.ack_concurrency

    asyncio.run(go())


def test_a_slow_change_stays_hidden_while_others_are_acknowledged() -> None:
    async def go() -> None:
        q = SlowQueue(ack_s=0.0)
        await _send(q, "slow")
        sched = KeyScheduler()
        src = _source(q, sched, visibility_s=3)
        stop = asyncio.Event()

        async def worker() -> None:
            while (w := await sched.take()) is not None:
                if w.key != "slow":  # the slow change never finishes
                    sched.done(w)

        tasks = [asyncio.create_task(src.run(stop)), asyncio.create_task(src.acker(stop)),
                 asyncio.create_task(worker())]
        # a steady flow of other changes: an acknowledgement every 0.1 s, for 3.5 s
        for i in range(35):
            await _send(q, f"k{i}")
            await asyncio.sleep(0.1)
        stop.set()
        sched.close()
        await _stop(*tasks)
        assert src.counters.acked >= 30
        slow = [mid for mid, (m, _) in src._outstanding.items()
                if src.parse(m.body).events[0].key == "slow"]
        # received at the start, older than half its timeout after 1.5 s: the
        # extension due every second must have kept it hidden
        assert slow and slow[0] in q.extended
        assert src.counters.received == src.counters.acked + 1  # never delivered again

    asyncio.run(go())


def test_an_empty_receive_drains_however_late_the_depth() -> None:
    # the switch's drain: the queue's approximate depth may still count messages the
    # service has long acknowledged; an empty receive says the queue is empty now
    async def go() -> None:
        q = MemoryQueue("q")
        src = _source(q, KeyScheduler(), 30)
        src.counters.depth = 3  # a lagging approximate count
        src.last_receive_empty = False
        assert not src.drained()
        src.last_receive_empty = True
        assert src.drained()
        src.counters.depth, src.last_receive_empty = 0, False
        assert src.drained()  # the depth alone, as before
        await _send(q, "a")
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(stop))
        for _ in range(100):
            if src.outstanding:
                break
            await asyncio.sleep(0.01)
        assert src.outstanding == 1 and not src.drained()  # in hand: never drained
        stop.set()
        await _stop(task)

    asyncio.run(go())


class SlowExtendQueue(MemoryQueue):
    """Each visibility extension takes 50 ms; counts how many overlap."""

    def __init__(self) -> None:
        super().__init__("slow-extend")
        self.in_flight = 0
        self.most_in_flight = 0

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            return await super().extend(message, visibility_timeout_s)
        finally:
            self.in_flight -= 1


def test_a_held_backlog_is_extended_several_at_a_time() -> None:
    """Thousands of messages held behind an open breaker must all be extended within
    a third of their timeout; one extension at a time they would not be."""

    async def go() -> None:
        q = SlowExtendQueue()
        for i in range(40):
            await _send(q, f"k{i}")
        sched = KeyScheduler()
        src = _source(q, sched, visibility_s=10)
        for _ in range(2):
            for m in await q.receive(20, visibility_timeout_s=10):
                src.handle(m)
        assert src.outstanding == 40
        # all received long enough ago to be due for an extension
        for mid, (m, _) in list(src._outstanding.items()):
            src._outstanding[mid] = (m, 0.0)
        await src._extend_slow()
        assert src.counters.extended == 40
        assert 1 < q.most_in_flight <= src.ack_concurrency
        # each got a fresh receipt time: nothing is due again right away
        assert all(at > 0.0 for _, at in src._outstanding.values())

    asyncio.run(go())
