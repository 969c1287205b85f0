"""The alerts the service evaluates itself, from the same catalogue and with the
same semantics as the generated Prometheus rules. Pure: ``step`` takes one set
of samples and the time, and returns what changed.

Per alert and label set (one series):

* ``value``: bad while ``value op threshold``; ``increase``: bad while the
  counter grew by at least the threshold over ``window_s`` (a counter that went
  down restarted from zero, as Prometheus' ``increase`` assumes); ``growth``:
  bad while the gauge stands at least the threshold above its lowest value
  over ``window_s``.
* A bad series is *pending*; once it has been bad for ``for_s`` without a break
  it is *firing* (``for_s = 0``: at once). A good sample resolves it; a series
  that is gone resolves too.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from crosswind.observability.catalogue import ResolvedAlert
from crosswind.observability.readers import AnySample, Labels, Sample

Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Transition:
    alert: str
    status: Status
    labels: Labels
    value: float
    threshold: float
    op: str
    at: float
    severity: str
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, "status": self.status, "labels": dict(self.labels),
                "value": round(self.value, 6), "threshold": self.threshold, "op": self.op,
                "at": _iso(self.at), "severity": self.severity, "summary": self.summary}


@dataclass
class _Series:
    pending_since: float | None = None
    firing_since: float | None = None
    value: float = 0.0


@dataclass
class AlertEngine:
    rules: Sequence[ResolvedAlert]
    #: transitions kept for the status
    keep: int = 50
    _states: dict[tuple[str, Labels], _Series] = field(default_factory=dict)
    _history: dict[tuple[str, Labels], deque[tuple[float, float]]] = field(
        default_factory=dict)
    recent: deque[Transition] = field(default_factory=deque)
    last_at: float | None = None

    def step(self, samples: Iterable[AnySample], now: float) -> list[Transition]:
        by_metric: dict[str, list[Sample]] = {}
        for s in samples:
            if isinstance(s, Sample):
                by_metric.setdefault(s.name, []).append(s)
        self.last_at = now
        self._remember(by_metric, now)
        out: list[Transition] = []
        for rule in self.rules:
            seen: set[Labels] = set()
            for s in by_metric.get(rule.metric.name, []):
                seen.add(s.labels)
                value = self._value(rule, s, now)
                bad = value >= rule.threshold if rule.op == ">=" else value < rule.threshold
                t = self._advance(rule, s.labels, value, bad, now)
                if t is not None:
                    out.append(t)
            for key in [k for k in self._states if k[0] == rule.name and k[1] not in seen]:
                state = self._states.pop(key)
                if state.firing_since is not None:
                    out.append(self._transition(rule, key[1], state.value, "resolved", now))
        for t in out:
            self.recent.append(t)
        while len(self.recent) > self.keep:
            self.recent.popleft()
        return out

    def _remember(self, by_metric: dict[str, list[Sample]], now: float) -> None:
        windows: dict[str, float] = {}
        for rule in self.rules:
            if rule.kind != "value":
                windows[rule.metric.name] = max(windows.get(rule.metric.name, 0.0),
                                                rule.window_s)
        for name, window in windows.items():
            for s in by_metric.get(name, []):
                h = self._history.setdefault((name, s.labels), deque())
                h.append((now, s.value))
                # keep one point at or before the window's start: the increase's base
                while len(h) >= 2 and h[1][0] <= now - window:
                    h.popleft()

    def _value(self, rule: ResolvedAlert, s: Sample, now: float) -> float:
        if rule.kind == "value":
            return s.value
        h = self._history.get((rule.metric.name, s.labels)) or deque([(now, s.value)])
        points = [v for t, v in h if t >= now - rule.window_s] if rule.kind == "growth" \
            else [v for _, v in h]
        if rule.kind == "growth":
            return s.value - min(points, default=s.value)
        grown = 0.0
        for a, b in itertools.pairwise(points):
            grown += b - a if b >= a else b
        return grown

    def _advance(self, rule: ResolvedAlert, labels: Labels, value: float, bad: bool,
                 now: float) -> Transition | None:
        key = (rule.name, labels)
        state = self._states.get(key)
        if not bad:
            if state is None:
                return None
            self._states.pop(key)
            if state.firing_since is not None:
                return self._transition(rule, labels, value, "resolved", now)
            return None
        if state is None:
            state = self._states[key] = _Series(pending_since=now)
        state.value = value
        since = now if state.pending_since is None else state.pending_since
        if state.firing_since is None and now - since >= rule.for_s:
            state.firing_since = now
            return self._transition(rule, labels, value, "firing", now)
        return None

    def _transition(self, rule: ResolvedAlert, labels: Labels, value: float, status: Status,
                    now: float) -> Transition:
        return Transition(rule.name, status, labels, value, rule.threshold, rule.op, now,
                          rule.severity, rule.summary)

    def status(self) -> dict[str, Any]:
        rules = {r.name: r for r in self.rules}
        firing, pending = [], []
        for (name, labels), st in sorted(self._states.items()):
            rule = rules[name]
            entry = {"alert": name, "labels": dict(labels), "value": round(st.value, 6),
                     "threshold": rule.threshold, "op": rule.op, "severity": rule.severity,
                     "summary": rule.summary}
            if st.firing_since is not None:
                firing.append({**entry, "since": _iso(st.firing_since)})
            else:
                pending.append({**entry, "since": None if st.pending_since is None
                                else _iso(st.pending_since),
                                "for_s": rule.for_s})
        return {"evaluated_at": None if self.last_at is None else _iso(self.last_at),
                "rules": len(self.rules), "firing": firing, "pending": pending,
                "recent": [t.as_dict() for t in reversed(self.recent)]}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
