"""Per-key work for the appliers: coalesced, one apply per key at a time,
retried with backoff, acknowledged only when applied. No I/O.

* **Coalescing.** Changes are hints ("look at this key"); an applier reads the
  primary's current version, so ten events for one key need one apply. A
  change that arrives while its key is being applied waits for the next apply
  (the one in progress may have read the older version).
* **One apply per key at a time**, so an older read can never land after a
  newer one.
* **Priorities.** Event-driven changes go before reconcile findings: the
  reconcile is a safety net and must not delay live changes.
* **Tickets** are what waits on a change (a queue message to acknowledge). A
  ticket is released only after an apply that *started after* its change was
  submitted has finished (applied, or durably dead-lettered).
* **Backoff.** A failed apply is tried again after an exponential delay with
  full jitter (delay drawn uniformly from [0, min(cap, base·2^attempt)], as in
  the AWS Architecture Blog's "Exponential Backoff And Jitter"), so workers do
  not retry in lock-step; it is a re-queue, not a sleeping worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from crosswind.live.changes import Change

EVENT = 0
RECONCILE = 1


class Ticket(Protocol):
    def done(self) -> None:
        """The change this ticket waits on is applied (or dead-lettered)."""
        ...


@dataclass(frozen=True, slots=True)
class _Sub:
    change: Change
    ticket: Ticket | None
    priority: int
    at: float


@dataclass
class _Entry:
    key: str
    #: submitted since the last apply of the key started
    waiting: list[_Sub] = field(default_factory=list)
    #: those the apply in progress covers
    running: list[_Sub] = field(default_factory=list)
    in_flight: bool = False
    #: sitting in a due queue or the delayed heap
    queued: bool = False
    attempts: int = 0
    #: failures blamed on an endpoint (not counted as attempts), and since when
    endpoint_failures: int = 0
    failing_since: float | None = None
    not_before: float = 0.0

    @property
    def priority(self) -> int:
        return min((s.priority for s in self.waiting), default=RECONCILE)

    @property
    def since(self) -> float:
        """When the oldest change not yet applied was submitted."""
        return min(s.at for s in (*self.running, *self.waiting))


@dataclass(frozen=True, slots=True)
class Work:
    """One apply: the key and the newest hint about it."""

    key: str
    change: Change
    attempt: int
    #: every change this apply covers (for lag and counts)
    covers: tuple[Change, ...]
    #: earlier tries that failed on an endpoint, and since when (clock of the scheduler)
    endpoint_failures: int = 0
    failing_since: float | None = None


def backoff_s(attempt: int, base: float = 0.5, cap: float = 60.0,
              rnd: Callable[[], float] = random.random) -> float:
    """Full-jitter delay before try number ``attempt + 1`` (``attempt`` ≥ 1)."""
    return float(rnd() * min(cap, base * 2 ** max(0, attempt - 1)))


class KeyScheduler:
    def __init__(self, *, max_pending: int = 50_000, clock: Callable[[], float] = time.monotonic,
                 backoff: Callable[[int], float] = backoff_s) -> None:
        self.max_pending = max_pending
        self.clock = clock
        self.backoff = backoff
        self._entries: dict[str, _Entry] = {}
        #: keys whose time has come, one FIFO per priority
        self._due: tuple[deque[str], deque[str]] = (deque(), deque())
        #: keys waiting for a retry time: (not_before, seq, key)
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    # -- submitting ----------------------------------------------------------------
    def submit(self, change: Change, ticket: Ticket | None = None, *,
               priority: int = EVENT) -> None:
        e = self._entries.get(change.key)
        if e is None:
            e = self._entries[change.key] = _Entry(change.key)
        before = e.priority if e.waiting else None
        e.waiting.append(_Sub(change, ticket, priority, self.clock()))
        if not e.in_flight:
            if not e.queued:
                self._enqueue(e)
            elif before is not None and priority < before and e.not_before <= self.clock():
                # Promote: the old slot in the lower queue is skipped when reached.
                self._due[priority].append(e.key)
                self._wake.set()
        if len(self._entries) >= self.max_pending:
            self._room.clear()

    def _enqueue(self, e: _Entry) -> None:
        e.queued = True
        if e.not_before > self.clock():
            heapq.heappush(self._delayed, (e.not_before, next(self._seq), e.key))
        else:
            self._due[e.priority].append(e.key)
        self._wake.set()

    def has_room(self) -> bool:
        return len(self._entries) < self.max_pending

    async def wait_room(self) -> None:
        await self._room.wait()

    # -- taking --------------------------------------------------------------------
    def _pop_ready(self) -> tuple[_Entry | None, float | None]:
        """The next entry whose time has come, or how long until one has."""
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            e = self._entries.get(key)
            if e is not None and e.queued and not e.in_flight:
                self._due[e.priority].append(key)
        for due in self._due:
            while due:
                e = self._entries.get(due.popleft())
                if e is not None and e.queued and not e.in_flight and e.waiting:
                    return e, None
        if self._delayed:
            return None, max(0.0, self._delayed[0][0] - now)
        return None, None

    async def take(self, gate: Callable[[], float] | None = None) -> Work | None:
        """The next apply to do, waiting for one; ``None`` once closed. ``gate``
        says how long to hold off (an open breaker) before taking anything."""
        while True:
            if self._closed:
                return None
            hold = gate() if gate is not None else 0.0
            if hold > 0:
                await self._sleep(hold)
                continue
            e, wait = self._pop_ready()
            if e is not None:
                e.queued = False
                e.in_flight = True
                e.running, e.waiting = e.waiting, []
                return Work(e.key, e.running[-1].change, e.attempts + 1,
                            tuple(s.change for s in e.running), e.endpoint_failures,
                            e.failing_since)
            self._wake.clear()
            await self._sleep(wait)

    async def _sleep(self, wait: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)

    # -- finishing -----------------------------------------------------------------
    def done(self, work: Work) -> None:
        """The apply finished for good (applied, or dead-lettered by the caller):
        release its tickets."""
        e = self._entries[work.key]
        for sub in e.running:
            if sub.ticket is not None:
                sub.ticket.done()
        e.running = []
        e.in_flight = False
        e.attempts = 0
        e.endpoint_failures = 0
        e.failing_since = None
        e.not_before = 0.0
        if e.waiting:
            self._enqueue(e)
        else:
            del self._entries[e.key]
            if len(self._entries) < self.max_pending:
                self._room.set()

    def retry(self, work: Work, *, count_attempt: bool = True, delay: float | None = None
              ) -> None:
        """Try the key again later; its tickets keep waiting. ``count_attempt`` is
        False when the endpoint, not the change, was at fault (an open breaker)."""
        e = self._entries[work.key]
        e.waiting = e.running + e.waiting
        e.running = []
        e.in_flight = False
        if count_attempt:
            e.attempts += 1
        else:
            e.endpoint_failures += 1
            if e.failing_since is None:
                e.failing_since = self.clock()
        e.not_before = self.clock() + (self.backoff(max(1, e.attempts)) if delay is None
                                       else delay)
        self._enqueue(e)

    # -- looking -------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Keys waiting or being applied."""
        return len(self._entries)

    @property
    def in_flight(self) -> int:
        return sum(1 for e in self._entries.values() if e.in_flight)

    def is_pending(self, key: str) -> bool:
        return key in self._entries

    @property
    def idle(self) -> bool:
        return not self._entries

    def oldest_pending_s(self) -> float:
        """How long the oldest waiting change has waited (0 when none)."""
        if not self._entries:
            return 0.0
        return max(0.0, self.clock() - min(e.since for e in self._entries.values()))

    def close(self) -> None:
        """Workers stop taking work (what is in flight finishes)."""
        self._closed = True
        self._wake.set()
