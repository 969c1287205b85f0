"""Rollback triggers after cutover, decided from a time series of status
samples. Pure: the service feeds one ``Sample`` at a time into ``step`` (or a
test folds a whole series with ``evaluate``) and gets the events back.

Triggers:

* ``lag``: lag p99 above the post-cutover SLO, without a break, for
  ``trigger_lag_for_s``;
* ``error_rate``: failed changes over all changes in the last
  ``error_window_s`` (5 min) above ``trigger_error_rate``, once the window
  holds at least ``min_changes`` changes (two failures out of three say
  nothing);
* ``breaker``: one endpoint's breaker not closed, without a break, for longer
  than ``trigger_breaker_open_s``;
* ``validation``: the latest scheduled validation failed.

Hysteresis: a trigger fires once, then stays fired (the alert stays raised)
until its condition has been clear, without a break, for
``trigger_clear_for_s``; only then is it re-armed and can fire again. A good
sample in the middle of a bad stretch restarts the "held for" clock, and a bad
one in a good stretch restarts the "clear for" clock, so one bad (or good)
minute neither fires nor flaps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from crosswind.config import CutoverConfig
from crosswind.errors import CrosswindError

TriggerName = Literal["lag", "error_rate", "breaker", "validation"]
NAMES: tuple[TriggerName, ...] = ("lag", "error_rate", "breaker", "validation")
_NO_BREAKERS: Mapping[str, float] = MappingProxyType({})


class TriggerInputError(CrosswindError):
    pass


@dataclass(frozen=True, slots=True)
class TriggerSettings:
    lag_slo_s: float
    lag_for_s: float
    error_rate: float
    breaker_open_s: float
    clear_for_s: float
    error_window_s: float = 300.0
    min_changes: int = 20

    @staticmethod
    def from_config(c: CutoverConfig, lag_slo_post_s: float) -> TriggerSettings:
        return TriggerSettings(lag_slo_post_s, c.trigger_lag_for_s, c.trigger_error_rate,
                               c.trigger_breaker_open_s, c.trigger_clear_for_s)


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the service's status after cutover."""

    #: seconds on a monotonic clock (or epoch seconds): only differences matter
    at: float
    lag_p99_s: float
    #: cumulative counts since the service started (they may restart at 0)
    applied: int = 0
    failed: int = 0
    #: endpoints whose breaker is not closed
    open_breakers: frozenset[str] = frozenset()
    #: the latest scheduled validation's id and verdict, if any
    validation_id: int | None = None
    validation_verdict: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    trigger: TriggerName
    kind: Literal["fired", "cleared"]
    at: float
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _One:
    condition_since: float | None = None
    fired_at: float | None = None
    clear_since: float | None = None


@dataclass(frozen=True, slots=True)
class Detector:
    settings: TriggerSettings
    states: Mapping[TriggerName, _One] = field(
        default_factory=lambda: MappingProxyType({n: _One() for n in NAMES}))
    #: (at, applied, failed) within the error window, oldest first
    window: tuple[tuple[float, int, int], ...] = ()
    #: endpoint → when its breaker was first seen not closed (this stretch)
    breakers_since: Mapping[str, float] = field(default_factory=lambda: _NO_BREAKERS)
    last_at: float | None = None

    def fired(self) -> list[TriggerName]:
        return [n for n in NAMES if self.states[n].fired_at is not None]


def _rate(window: tuple[tuple[float, int, int], ...]) -> tuple[float, int, int]:
    """Failed share of the changes across the window; counters that went down
    (a service restart) count from zero again."""
    applied = failed = 0
    for (_, a0, f0), (_, a1, f1) in itertools.pairwise(window):
        applied += a1 - a0 if a1 >= a0 else a1
        failed += f1 - f0 if f1 >= f0 else f1
    total = applied + failed
    return (failed / total if total else 0.0), failed, total


def step(d: Detector, s: Sample) -> tuple[Detector, list[TriggerEvent]]:
    """Feed one sample; returns the detector after it and the events it caused."""
    st = d.settings
    if d.last_at is not None and s.at < d.last_at:
        raise TriggerInputError(f"sample at {s.at} is older than the last one "
                                f"({d.last_at}): samples must come in time order")
    window = tuple(w for w in (*d.window, (s.at, s.applied, s.failed))
                   if w[0] >= s.at - st.error_window_s)
    since = {ep: d.breakers_since.get(ep, s.at) for ep in s.open_breakers}
    rate, failed, total = _rate(window)
    longest = max(((s.at - t, ep) for ep, t in since.items()), default=(0.0, ""))

    conditions: dict[TriggerName, bool] = {
        "lag": s.lag_p99_s > st.lag_slo_s,
        "error_rate": total >= st.min_changes and rate > st.error_rate,
        "breaker": bool(since),
        "validation": s.validation_verdict == "fail",
    }
    evidence: dict[TriggerName, dict[str, Any]] = {
        "lag": {"lag_p99_s": s.lag_p99_s, "slo_s": st.lag_slo_s, "for_s": st.lag_for_s},
        "error_rate": {"rate": round(rate, 6), "failed": failed, "changes": total,
                       "threshold": st.error_rate, "window_s": st.error_window_s},
        "breaker": {"open": sorted(since), "longest_s": round(longest[0], 3),
                    "endpoint": longest[1], "limit_s": st.breaker_open_s},
        "validation": {"validation_id": s.validation_id, "verdict": s.validation_verdict},
    }
    states = dict(d.states)
    events: list[TriggerEvent] = []
    for name in NAMES:
        one, now_bad = states[name], conditions[name]
        if one.fired_at is None:
            if not now_bad:
                states[name] = _One()
                continue
            start = s.at if one.condition_since is None else one.condition_since
            held = {"lag": s.at - start >= st.lag_for_s,
                    "breaker": longest[0] > st.breaker_open_s,
                    "error_rate": True, "validation": True}[name]
            if held:
                states[name] = _One(start, s.at, None)
                events.append(TriggerEvent(name, "fired", s.at,
                                           _why(name, s, st, rate, longest), evidence[name]))
            else:
                states[name] = _One(start)
        elif now_bad:
            states[name] = replace(one, clear_since=None)
        else:
            clear = s.at if one.clear_since is None else one.clear_since
            if s.at - clear >= st.clear_for_s:
                states[name] = _One()
                events.append(TriggerEvent(name, "cleared", s.at, f"{name} clear for "
                                           f"{s.at - clear:.0f}s: re-armed", evidence[name]))
            else:
                states[name] = replace(one, clear_since=clear)
    return Detector(st, MappingProxyType(states), window, MappingProxyType(since),
                    s.at), events


def _why(name: TriggerName, s: Sample, st: TriggerSettings, rate: float,
         longest: tuple[float, str]) -> str:
    if name == "lag":
        return (f"lag p99 {s.lag_p99_s:.1f}s above the SLO of {st.lag_slo_s:g}s for "
                f"{st.lag_for_s:g}s or more")
    if name == "error_rate":
        return (f"{rate:.1%} of changes failed over the last {st.error_window_s:g}s, above "
                f"{st.error_rate:.1%}")
    if name == "breaker":
        return (f"circuit breaker {longest[1]} not closed for {longest[0]:.0f}s, longer "
                f"than {st.breaker_open_s:g}s")
    return f"scheduled validation {s.validation_id} failed"


def evaluate(samples: Iterable[Sample], settings: TriggerSettings
             ) -> tuple[Detector, list[TriggerEvent]]:
    """Fold a whole series; the same as feeding ``step`` one sample at a time."""
    d = Detector(settings)
    out: list[TriggerEvent] = []
    for s in samples:
        d, events = step(d, s)
        out.extend(events)
    return d, out


def sample_from_status(status: Mapping[str, Any], at: float) -> Sample:
    """A sample from the status document (``crosswind status --json``)."""
    streams = status.get("streams") or []
    applied = sum(int(x.get("applied") or 0) for x in streams)
    failed = sum(int(x.get("failed") or 0) for x in streams)
    breakers = status.get("breakers") or {}
    validation = status.get("validation") or {}
    return Sample(at, float(status.get("lag_p99_s") or 0.0), applied, failed,
                  frozenset(ep for ep, st in breakers.items() if st != "closed"),
                  validation.get("run_id"), validation.get("verdict"))
