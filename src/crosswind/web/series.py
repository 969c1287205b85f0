"""The dashboard's time series: what a sampler reads from the monitoring
document every few seconds, kept for the last hour in memory (the page draws
lag per stream, throughput and backlog over time from it). Pure: ``add``
takes a document and its time."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _copied_bytes(status: Mapping[str, Any]) -> float:
    objects = status.get("objects") or {}
    return float(sum(int(((o or {}).get("copied") or {}).get("bytes") or 0)
                     for o in objects.values()))


@dataclass
class Series:
    max_points: int = 1800
    points: deque[dict[str, Any]] = field(default_factory=deque)
    _last: tuple[float, dict[str, int], float] | None = None

    def add(self, doc: Mapping[str, Any], at: float) -> dict[str, Any]:
        status = doc.get("status") or {}
        streams = status.get("streams") or []
        applied = {s["name"]: int(s.get("applied") or 0) for s in streams}
        copied = _copied_bytes(status)
        rate: dict[str, float] = {}
        bytes_per_s = 0.0
        if self._last is not None and at > self._last[0]:
            dt = at - self._last[0]
            for name, n in applied.items():
                before = self._last[1].get(name, 0)
                rate[name] = round(max(0, n - before if n >= before else n) / dt, 3)
            bytes_per_s = round(max(0.0, copied - self._last[2]) / dt, 1)
        self._last = (at, applied, copied)
        point = {
            "t": round(at, 3),
            "lag_p99_s": {s["name"]: (s.get("lag_s") or {}).get("p99", 0.0) for s in streams},
            "backlog": {s["name"]: s.get("backlog") for s in streams},
            "throughput": rate,
            "bytes_per_s": bytes_per_s,
            "pending": (status.get("pending") or {}).get("keys", 0),
            "dlq_open": (doc.get("dlq") or {}).get("open", status.get("dlq_open", 0)),
            "slo_s": (status.get("slo") or {}).get("target_s"),
        }
        self.points.append(point)
        while len(self.points) > self.max_points:
            self.points.popleft()
        return point

    def as_list(self) -> list[dict[str, Any]]:
        return list(self.points)
