"""Counters and lag of one stream of changes, as the status shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from crosswind.live.lag import LagTracker


@dataclass
class StreamState:
    """Counters and lag of one stream of changes."""

    name: str
    kind: Literal["objects", "rows"]
    source: str
    lag: LagTracker
    #: changes whose key was brought in step (copied, deleted, or found already in step)
    applied: int = 0
    #: of those, the ones where nothing had to be written
    in_step: int = 0
    failed: int = 0
    held: int = 0
    last_event_at: float | None = None
    last_applied_at: float | None = None
    backlog: Callable[[], int | None] = lambda: None
    extra: Callable[[], dict[str, Any]] = dict

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "source": self.source,
            "backlog": self.backlog(), "applied": self.applied, "in_step": self.in_step,
            "failed": self.failed, "held": self.held,
            "lag_s": self.lag.window().as_dict(),
            "lag_since_start_s": self.lag.since_start().as_dict(),
            "lag_histogram": self.lag.histogram(),
            "last_event_at": _iso(self.last_event_at),
            "last_applied_at": _iso(self.last_applied_at),
            **self.extra(),
        }


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(
        timespec="milliseconds")

