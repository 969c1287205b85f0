"""Store requests per endpoint and operation: counts by outcome, a duration
histogram, a recent latency and its rolling baseline, requests in flight, auth
failures. The breaker wrappers (``live/breakers.py``) call ``started`` and
``finished`` around every request; exporters only read ``as_dict``. Pure (the
clock is injected).

* **Recent latency**: the mean of the requests of the current and the previous
  minute, once there are ``min_recent`` of them: one slow request among many
  hardly moves it, a slow minute does, and an operation called twice an hour
  has no recent latency (and no latency alert) rather than one stale outlier.
* **Baseline**: the median of the per-minute mean latencies over the last hour,
  the current minute left out. A median of minutes is robust: a slow spell
  moves it only once it has lasted half the window, so "20 % slower than the
  baseline" keeps firing through a long degradation. It is published only once
  ``min_minutes`` minutes are known: before that there is no baseline to
  compare with, and no latency alert.
"""

from __future__ import annotations

import bisect
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from crosswind.observability.catalogue import LATENCY_BUCKETS

Outcome = Literal["ok", "answer", "auth_error", "unreachable", "transient", "refused",
                  "cancelled"]
#: outcomes whose duration says something about the endpoint's speed
TIMED: frozenset[str] = frozenset({"ok", "answer"})


@dataclass
class _Operation:
    bounds: tuple[float, ...]
    outcomes: Counter[str] = field(default_factory=Counter)
    buckets: list[int] = field(default_factory=list)
    total_s: float = 0.0
    timed: int = 0
    #: (minute index, sum of durations, requests) for the baseline, oldest first
    minutes: deque[list[float]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.buckets = [0] * (len(self.bounds) + 1)


@dataclass
class _Endpoint:
    in_flight: int = 0
    auth_failures: int = 0
    pool_size: int | None = None
    operations: dict[str, _Operation] = field(default_factory=dict)


class RequestStats:
    def __init__(self, *, minute_s: float = 60.0, window_minutes: int = 60,
                 min_minutes: int = 5, min_recent: int = 5,
                 bounds: tuple[float, ...] = LATENCY_BUCKETS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_recent = min_recent
        self.minute_s = minute_s
        self.window_minutes = window_minutes
        self.min_minutes = min_minutes
        self.bounds = bounds
        self.clock = clock
        self._endpoints: dict[str, _Endpoint] = {}

    def _ep(self, endpoint: str) -> _Endpoint:
        e = self._endpoints.get(endpoint)
        if e is None:
            e = self._endpoints[endpoint] = _Endpoint()
        return e

    def track(self, endpoint: str, *, pool_size: int | None = None) -> None:
        """Show ``endpoint`` before its first request (and its pool size, if known)."""
        e = self._ep(endpoint)
        if pool_size is not None:
            e.pool_size = pool_size

    def started(self, endpoint: str) -> None:
        self._ep(endpoint).in_flight += 1

    def finished(self, endpoint: str, operation: str, seconds: float, outcome: Outcome
                 ) -> None:
        """A request ``started`` before has ended after ``seconds``."""
        e = self._ep(endpoint)
        e.in_flight = max(0, e.in_flight - 1)
        self.outcome(endpoint, operation, outcome)
        if outcome not in TIMED:
            return
        op = e.operations[operation]
        op.timed += 1
        op.total_s += seconds
        op.buckets[bisect.bisect_left(self.bounds, seconds)] += 1
        minute = int(self.clock() // self.minute_s)
        if op.minutes and op.minutes[-1][0] == minute:
            op.minutes[-1][1] += seconds
            op.minutes[-1][2] += 1
        else:
            op.minutes.append([minute, seconds, 1])
        while op.minutes and op.minutes[0][0] <= minute - self.window_minutes:
            op.minutes.popleft()

    def outcome(self, endpoint: str, operation: str, outcome: Outcome) -> None:
        """Count a request's outcome without a duration (an auth failure met outside
        a timed request, a call refused by an open breaker)."""
        e = self._ep(endpoint)
        if outcome == "auth_error":
            e.auth_failures += 1
        op = e.operations.get(operation)
        if op is None:
            op = e.operations[operation] = _Operation(self.bounds)
        op.outcomes[outcome] += 1

    def recent(self, endpoint: str, operation: str) -> float | None:
        """Mean latency of this minute's and the previous minute's requests."""
        op = self._ep(endpoint).operations.get(operation)
        if op is None:
            return None
        now = int(self.clock() // self.minute_s)
        total = n = 0.0
        for m, s, c in op.minutes:
            if m >= now - 1:
                total += s
                n += c
        return total / n if n >= self.min_recent else None

    def baseline(self, endpoint: str, operation: str) -> float | None:
        op = self._ep(endpoint).operations.get(operation)
        if op is None:
            return None
        now = int(self.clock() // self.minute_s)
        means = [s / n for m, s, n in op.minutes
                 if n and now - self.window_minutes < m < now]
        if len(means) < self.min_minutes:
            return None
        return float(statistics.median(means))

    def as_dict(self) -> dict[str, Any]:
        eps: dict[str, Any] = {}
        for name, e in sorted(self._endpoints.items()):
            ops: dict[str, Any] = {}
            for op_name, op in sorted(e.operations.items()):
                base = self.baseline(name, op_name)
                recent = self.recent(name, op_name)
                cumulative, seen = [], 0
                for n in op.buckets:
                    seen += n
                    cumulative.append(seen)
                ops[op_name] = {
                    "outcomes": dict(sorted(op.outcomes.items())),
                    "latency_s": None if recent is None else round(recent, 6),
                    "baseline_s": None if base is None else round(base, 6),
                    "ratio": (round(recent / base, 6) if base and recent is not None
                              else None),
                    "histogram": {"le": list(self.bounds), "counts": cumulative,
                                  "sum": round(op.total_s, 6), "count": op.timed},
                }
            eps[name] = {"in_flight": e.in_flight, "pool_size": e.pool_size,
                         "auth_failures": e.auth_failures, "operations": ops}
        return {"endpoints": eps}
