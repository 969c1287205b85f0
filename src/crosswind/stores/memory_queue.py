"""A message queue in memory with the semantics of the real ones: the reference
``MessageQueue`` for the replication service's unit tests.

Like Azure Storage Queues and SQS: a received message stays, hidden for its
visibility timeout, and comes back (with a higher dequeue count and a new
receipt) unless it is acknowledged; every delivery has its own receipt, and an
acknowledgement or extension with a stale receipt (someone else received the
message since) does not touch the message. Time comes from an injectable clock
(``ManualClock`` in tests), so visibility expiry needs no sleeping. ``fault``
makes every call fail with a chosen error (an endpoint outage, throttling) for
breaker and retry tests.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from crosswind.errors import NotFound, StoreError
from crosswind.stores.queues import QueueMessage

MAX_RECEIVE = 32


class ManualClock:
    """Seconds since the epoch that move only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Held:
    id: str
    body: str
    enqueued_at: datetime
    visible_at: float
    dequeue_count: int = 0
    receipt: str | None = None


def check_receive_args(max_messages: int, visibility_timeout_s: int, wait_s: float) -> None:
    """The contract's argument ranges, shared by every backend (programming errors,
    so ValueError, not a store error)."""
    if not 1 <= max_messages <= MAX_RECEIVE:
        raise ValueError(f"max_messages must be 1..{MAX_RECEIVE}, not {max_messages}")
    if visibility_timeout_s < 1:
        raise ValueError(f"visibility_timeout_s must be at least 1, not {visibility_timeout_s}")
    if wait_s < 0:
        raise ValueError(f"wait_s must not be negative, not {wait_s}")


class MemoryQueue:
    """``MessageQueue`` in memory. ``depth`` counts every message not yet
    acknowledged (visible or in flight), as the real backends report it."""

    def __init__(self, name: str = "memory", *, clock: Callable[[], float] = time.time) -> None:
        self.name = f"memory-queue://{name}"
        #: the most messages one receive returns
        self.max_per_receive = MAX_RECEIVE
        self.clock = clock
        self.messages: dict[str, _Held] = {}
        #: when set, every call raises it (tests of outages and throttling)
        self.fault: StoreError | None = None
        #: set by ``delete_queue``: calls raise NotFound, as on a missing queue
        self.deleted = False
        self.closed = False
        self._ids = itertools.count(1)
        self._receipts = itertools.count(1)
        self._arrived = asyncio.Event()

    def _guard(self) -> None:
        if self.fault is not None:
            raise self.fault
        if self.deleted:
            raise NotFound(f"{self.name}: not found (the queue does not exist)")

    def delete_queue(self) -> None:
        self.deleted = True

    def _deliver(self, held: _Held, now: float, visibility_timeout_s: int) -> QueueMessage:
        held.dequeue_count += 1
        held.receipt = f"{held.id}/{next(self._receipts)}"
        held.visible_at = now + visibility_timeout_s
        return QueueMessage(held.id, held.body, held.receipt, held.dequeue_count,
                            held.enqueued_at)

    def _take(self, max_messages: int, visibility_timeout_s: int) -> list[QueueMessage]:
        now = self.clock()
        visible = [h for h in self.messages.values() if h.visible_at <= now]
        return [self._deliver(h, now, visibility_timeout_s) for h in visible[:max_messages]]

    async def receive(self, max_messages: int, *, visibility_timeout_s: int,
                      wait_s: float = 0.0) -> list[QueueMessage]:
        check_receive_args(max_messages, visibility_timeout_s, wait_s)
        self._guard()
        got = self._take(max_messages, visibility_timeout_s)
        if got or wait_s <= 0:
            return got
        # Long polling: wait (in real time) for a send. Messages that only become
        # visible again by the clock are found on the next call.
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), wait_s)
        except TimeoutError:
            return []
        self._guard()
        return self._take(max_messages, visibility_timeout_s)

    def _current(self, message: QueueMessage) -> _Held | None:
        held = self.messages.get(message.id)
        if held is None or held.receipt != message.receipt:
            return None
        return held

    async def ack(self, message: QueueMessage) -> None:
        self._guard()
        if self._current(message) is not None:
            del self.messages[message.id]

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        if visibility_timeout_s < 0:
            raise ValueError(f"visibility_timeout_s must not be negative, not "
                             f"{visibility_timeout_s}")
        self._guard()
        held = self._current(message)
        if held is None:
            raise NotFound(f"{self.name}: message {message.id} is gone or was received again")
        # Azure issues a new pop receipt on every update; do the same so that callers
        # that keep the old one are caught here, not only against Azure.
        held.receipt = f"{held.id}/{next(self._receipts)}"
        held.visible_at = self.clock() + visibility_timeout_s
        return replace(message, receipt=held.receipt)

    async def depth(self) -> int | None:
        self._guard()
        return len(self.messages)

    async def send(self, body: str) -> None:
        self._guard()
        mid = f"m{next(self._ids)}"
        now = self.clock()
        self.messages[mid] = _Held(mid, body, datetime.fromtimestamp(now, UTC), now)
        self._arrived.set()

    async def check(self) -> None:
        self._guard()

    async def close(self) -> None:
        self.closed = True
