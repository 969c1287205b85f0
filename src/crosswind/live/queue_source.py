"""A change source on a message queue (Event Grid events on an Azure Storage
Queue, S3 event notifications on SQS).

Messages are received in batches, parsed into object events and handed to the
scheduler with a ticket per message; the message is acknowledged (deleted)
only when every change it carried has been applied and recorded, or durably
dead-lettered. Until then it stays in the queue, invisible: its visibility is
extended while the work takes long (an open breaker, a large object), and if
the service dies it simply comes back. A message that cannot be parsed goes to
the DLQ with its reason and is acknowledged: it would never parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from crosswind.errors import CrosswindError, StoreError
from crosswind.live.changes import Change, ParsedMessage, sequencer_newer
from crosswind.live.events import reason_category
from crosswind.live.scheduler import EVENT, KeyScheduler
from crosswind.secrets import redact
from crosswind.stores.queues import MessageQueue, QueueMessage

log = logging.getLogger("crosswind.live")
T = TypeVar("T")

Parse = Callable[[str], ParsedMessage]
#: (message, reason): keep a poison message in the DLQ
PoisonSink = Callable[[QueueMessage, str], None]


@dataclass
class QueueCounters:
    received: int = 0
    acked: int = 0
    poison: int = 0
    events: int = 0
    #: events already covered by an apply (their sequencer is not newer)
    stale: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    extended: int = 0
    receive_errors: int = 0
    depth: int | None = None
    last_event_at: float | None = None
    #: the last receive failed with this (None once one succeeds)
    error: str | None = None


class _Ticket:
    """Released once per change of its message; the last release acknowledges it."""

    def __init__(self, source: QueueSource, message_id: str, remaining: int) -> None:
        self.source = source
        self.message_id = message_id
        self.remaining = remaining

    def done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.source._release(self.message_id)


class _Sequencers:
    """The newest sequencer applied per key, for the most recent keys (bounded)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, str] = OrderedDict()

    def covered(self, key: str, sequencer: str | None) -> bool:
        last = self._seen.get(key)
        return sequencer is not None and last is not None and not sequencer_newer(sequencer,
                                                                                  last)

    def applied(self, key: str, sequencer: str | None) -> None:
        if sequencer is None:
            return
        last = self._seen.get(key)
        if last is None or sequencer_newer(sequencer, last):
            self._seen[key] = sequencer
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


class QueueSource:
    def __init__(self, stream: str, queue: MessageQueue, parse: Parse, poison_error: type[
                 Exception], scheduler: KeyScheduler, poison_sink: PoisonSink, *,
                 batch: int = 32, visibility_timeout_s: int = 30, wait_s: float = 5.0,
                 idle_poll_s: float = 1.0, ack_concurrency: int = 16) -> None:
        self.stream = stream
        self.queue = queue
        self.parse = parse
        self.poison_error = poison_error
        self.scheduler = scheduler
        self.poison_sink = poison_sink
        self.batch = batch
        self.visibility_timeout_s = visibility_timeout_s
        self.wait_s = wait_s
        self.idle_poll_s = idle_poll_s
        #: deletes in flight at once (both services delete one message per request)
        self.ack_concurrency = max(1, ack_concurrency)
        self.counters = QueueCounters()
        self.sequencers = _Sequencers()
        #: messages received and not yet acknowledged: id → (message, received at)
        self._outstanding: dict[str, tuple[QueueMessage, float]] = {}
        self._to_ack: asyncio.Queue[QueueMessage] = asyncio.Queue()
        self.last_receive_empty = False
        #: when a message last brought a change not yet covered (time.monotonic)
        self.last_fresh = 0.0

    # -- receiving -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Receive until ``stop`` is set; acknowledgements go on in ``acker``."""
        while not stop.is_set():
            if not self.scheduler.has_room():
                await _first(self.scheduler.wait_room(), stop.wait())
                continue
            try:
                messages = await _first(self.queue.receive(
                    self.batch, visibility_timeout_s=self.visibility_timeout_s,
                    wait_s=self.wait_s), stop.wait())
            except StoreError as exc:
                self.counters.receive_errors += 1
                self.counters.error = redact(str(exc))[:300]
                log.warning("%s: receive failed: %s", self.stream, redact(str(exc)))
                await _first(asyncio.sleep(1.0), stop.wait())
                continue
            if messages is None:  # stopping
                return
            self.counters.error = None
            self.last_receive_empty = not messages
            for m in messages:
                self.handle(m)
            if not messages and self.wait_s < self.idle_poll_s:
                # No long polling (Azure queues): do not spin on an empty queue.
                await _first(asyncio.sleep(self.idle_poll_s), stop.wait())

    def handle(self, m: QueueMessage) -> None:
        self.counters.received += 1
        if m.id in self._outstanding:
            # Delivered again while we still work on it (its visibility ran out):
            # the newest receipt is the one that can delete it.
            self._outstanding[m.id] = (m, time.monotonic())
            return
        try:
            parsed = self.parse(m.body)
        except self.poison_error as exc:
            self.counters.poison += 1
            self.poison_sink(m, str(exc))
            self._outstanding[m.id] = (m, time.monotonic())
            self._release(m.id)
            return
        for reason in parsed.ignored:
            # Counted by category ("other-container", "test-event", ...): bounded.
            self.counters.ignored[reason_category(reason)] += 1
        fresh: list[Change] = []
        for ev in parsed.events:
            self.counters.events += 1
            self.counters.last_event_at = ev.event_time.timestamp()
            if self.sequencers.covered(ev.key, ev.sequencer):
                self.counters.stale += 1
                continue
            fresh.append(Change("object", ev.op, ev.key, self.stream, ev.event_time,
                                ev.sequencer, ev.etag, ev.size))
        self._outstanding[m.id] = (m, time.monotonic())
        if not fresh:
            self._release(m.id)
            return
        self.last_fresh = time.monotonic()
        ticket = _Ticket(self, m.id, len(fresh))
        for c in fresh:
            self.scheduler.submit(c, ticket, priority=EVENT)

    def _release(self, message_id: str) -> None:
        got = self._outstanding.pop(message_id, None)
        if got is not None:
            self._to_ack.put_nowait(got[0])

    # -- acknowledging and keeping messages hidden ----------------------------------
    async def acker(self, stop: asyncio.Event) -> None:
        """Acknowledge released messages, up to ``ack_concurrency`` at a time (one at
        a time, a queue 50 ms away takes at most 20 a second); extend the visibility
        of slow ones every third of the timeout, however busy. Runs until ``stop``
        and then until nothing released is left to ack."""
        next_extend = time.monotonic() + self.visibility_timeout_s / 3
        while True:
            if time.monotonic() >= next_extend:
                await self._extend_slow()
                next_extend = time.monotonic() + self.visibility_timeout_s / 3
            try:
                m = await asyncio.wait_for(self._to_ack.get(), timeout=1.0)
            except TimeoutError:
                if stop.is_set():
                    return
                continue
            await self._ack_released(m)

    async def _ack_released(self, first: QueueMessage | None = None) -> None:
        """``first`` and what else is released, up to ``ack_concurrency``, at once."""
        batch = [] if first is None else [first]
        while len(batch) < self.ack_concurrency and not self._to_ack.empty():
            batch.append(self._to_ack.get_nowait())
        await asyncio.gather(*(self._ack(m) for m in batch))

    async def drain_acks(self) -> None:
        while not self._to_ack.empty():
            await self._ack_released()

    async def _ack(self, m: QueueMessage) -> None:
        for attempt in range(3):
            try:
                await self.queue.ack(m)
                self.counters.acked += 1
                return
            except StoreError as exc:
                if attempt == 2:
                    # It will be delivered again and found already applied.
                    log.warning("%s: could not delete message %s: %s", self.stream, m.id,
                                redact(str(exc)))
                    return
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _extend_slow(self) -> None:
        """Extend every message held for more than half the timeout, up to
        ``ack_concurrency`` at once: one at a time, a backlog of thousands held
        behind an open breaker would take longer to extend than its visibility lasts."""
        horizon = time.monotonic() - self.visibility_timeout_s / 2
        slow = [(mid, m) for mid, (m, at) in list(self._outstanding.items()) if at <= horizon]
        for i in range(0, len(slow), self.ack_concurrency):
            await asyncio.gather(*(self._extend(mid, m)
                                   for mid, m in slow[i:i + self.ack_concurrency]))

    async def _extend(self, mid: str, m: QueueMessage) -> None:
        try:
            fresh = await self.queue.extend(m, self.visibility_timeout_s)
        except CrosswindError as exc:
            log.info("%s: could not extend message %s: %s", self.stream, mid, redact(str(exc)))
            return
        if mid in self._outstanding:
            self._outstanding[mid] = (fresh, time.monotonic())
            self.counters.extended += 1

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def drained(self) -> bool:
        """Nothing of ours in hand and the queue empty: by its depth, or by a receive
        that came back empty. The depth is approximate and may lag (AWS: a minute or
        more after producers stop; moto's too), while an empty (long-polling, on SQS)
        receive is now. What a late event would bring, a switch's final reconcile
        finds anyway."""
        return self.outstanding == 0 and (self.last_receive_empty or not self.counters.depth)

    async def refresh_depth(self) -> None:
        with contextlib.suppress(CrosswindError):
            self.counters.depth = await self.queue.depth()


async def _first(work: Awaitable[T], stop: Awaitable[object]) -> T | None:
    """``work``'s result, or None when ``stop`` finishes first (``work`` is then
    cancelled: a message received by a cancelled call just comes back later)."""
    w = asyncio.ensure_future(work)
    s = asyncio.ensure_future(stop)
    try:
        done, _ = await asyncio.wait({w, s}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (w, s):
            if not t.done():
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
    return w.result() if w in done else None
