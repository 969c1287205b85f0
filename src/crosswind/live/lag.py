"""Replication lag per stream: applied time minus the source's own event time.

Pure (the clock is injected). Two views, as the status and the SLO need them:

* a sliding window (``window_s``, default five minutes) of exact samples, for
  p50/p95/p99/max "now";
* since start: a log-bucketed histogram (about 2 % relative resolution, fixed
  memory whatever the run length) for the same quantiles over the whole run,
  and exact counts over the fixed buckets of the metric catalogue
  (``histogram()``, what ``crosswind_replication_lag_seconds`` exports).

A stream that stops applying has no new samples, so its window looks healthy
while the replica falls behind: the age of its oldest pending change (what AWS
DMS calls CDCLatencyTarget) is tracked too, and the SLO check takes the worse
of the two.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crosswind.observability.catalogue import LAG_BUCKETS

QUANTILES = (0.50, 0.95, 0.99)
#: buckets per factor of two: 2 ** (1/32) ≈ 2.2 % wide
_PER_OCTAVE = 32
_MIN_LAG = 0.001  # below a millisecond everything is one bucket


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _bucket(lag: float) -> int:
    if lag <= _MIN_LAG:
        return 0
    return 1 + int(math.log2(lag / _MIN_LAG) * _PER_OCTAVE)


def _bucket_upper(b: int) -> float:
    if b == 0:
        return _MIN_LAG
    return float(_MIN_LAG * 2 ** (b / _PER_OCTAVE))


@dataclass(frozen=True, slots=True)
class LagSummary:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "p50": round(self.p50, 3), "p95": round(self.p95, 3),
                "p99": round(self.p99, 3), "max": round(self.max, 3)}


EMPTY = LagSummary(0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class LagTracker:
    """Samples of one stream."""

    window_s: float = 300.0
    clock: Callable[[], float] = time.time
    #: cap on samples kept in the window (memory stays flat at any rate)
    max_window_samples: int = 200_000
    _window: deque[tuple[float, float]] = field(default_factory=deque, repr=False)
    _buckets: dict[int, int] = field(default_factory=dict, repr=False)
    count: int = 0
    max_lag: float = 0.0
    total: float = 0.0
    #: upper edges of the exported histogram's buckets (the last bucket is +Inf)
    bounds: tuple[float, ...] = LAG_BUCKETS
    _fixed: list[int] = field(default_factory=list, repr=False)

    def record(self, lag_s: float) -> None:
        """One change applied ``lag_s`` seconds after its event time (clamped at 0:
        clocks of two clouds never agree exactly)."""
        lag = max(0.0, lag_s)
        now = self.clock()
        self._window.append((now, lag))
        if len(self._window) > self.max_window_samples:
            self._window.popleft()
        b = _bucket(lag)
        self._buckets[b] = self._buckets.get(b, 0) + 1
        if not self._fixed:
            self._fixed = [0] * (len(self.bounds) + 1)
        self._fixed[bisect.bisect_left(self.bounds, lag)] += 1
        self.count += 1
        self.total += lag
        self.max_lag = max(self.max_lag, lag)

    def record_event(self, event_time: float | None, applied_at: float | None = None) -> None:
        """Record the lag of a change whose source event time is ``event_time``
        (epoch seconds); changes without one are not measured."""
        if event_time is None:
            return
        self.record((self.clock() if applied_at is None else applied_at) - event_time)

    def _expire(self) -> None:
        horizon = self.clock() - self.window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def window(self) -> LagSummary:
        self._expire()
        return summarize(lag for _, lag in self._window)

    def since_start(self) -> LagSummary:
        """Quantiles from the histogram: each is the upper edge of its bucket
        (never under-reports), the max is exact."""
        if not self.count:
            return EMPTY
        ordered = sorted(self._buckets.items())
        out: list[float] = []
        for q in QUANTILES:
            need = max(1, math.ceil(q * self.count))
            seen = 0
            for b, n in ordered:
                seen += n
                if seen >= need:
                    out.append(min(_bucket_upper(b), self.max_lag))
                    break
        return LagSummary(self.count, out[0], out[1], out[2], self.max_lag)


    def histogram(self) -> dict[str, Any]:
        """Since start, over ``bounds``: cumulative counts (``le`` semantics, the last
        one +Inf), the sum and the count, as a Prometheus histogram has them."""
        counts, seen = [], 0
        for n in self._fixed or [0] * (len(self.bounds) + 1):
            seen += n
            counts.append(seen)
        return {"le": list(self.bounds), "counts": counts, "sum": round(self.total, 6),
                "count": self.count}


def summarize(lags: Iterable[float]) -> LagSummary:
    values = sorted(lags)
    if not values:
        return EMPTY
    return LagSummary(len(values), quantile(values, 0.50), quantile(values, 0.95),
                      quantile(values, 0.99), values[-1])
