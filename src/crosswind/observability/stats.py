"""Counters of one sync run. The engine increments; progress bars, reports and
metric exporters only read."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "bytes": self.bytes}


@dataclass
class SyncStats:
    started: float = field(default_factory=time.monotonic)
    listed_source: int = 0
    listed_destination: int = 0
    listing_done: bool = False
    planned: Tally = field(default_factory=Tally)  # copies decided so far
    copied: Tally = field(default_factory=Tally)
    skipped: Tally = field(default_factory=Tally)
    failed: Tally = field(default_factory=Tally)
    deleted: Tally = field(default_factory=Tally)
    to_delete: Tally = field(default_factory=Tally)
    extra: Tally = field(default_factory=Tally)
    vanished: Tally = field(default_factory=Tally)  # deleted at the source mid-run
    in_flight_bytes: int = 0
    bytes_moved: int = 0  # bytes written so far, including parts of unfinished objects
    copy_reasons: Counter[str] = field(default_factory=Counter)
    metadata_renamed: int = 0
    metadata_dropped: int = 0
    retries: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started


#: what the service's object applier did with a key, as the metrics count it
_APPLIED_AS = {"copied": "copied", "deleted": "deleted", "unchanged": "skipped",
               "absent": "skipped", "filtered": "skipped"}


@dataclass
class OutcomeTally:
    """Objects the replication service applied, per direction and outcome
    (``crosswind_objects_total{mode="service"}``). The service increments."""

    by: dict[str, dict[str, Tally]] = field(default_factory=dict)

    def add(self, direction: str, result: str, size: int = 0) -> None:
        outcome = _APPLIED_AS.get(result, result)
        tally = self.by.setdefault(direction, {}).setdefault(outcome, Tally())
        tally.add(size if outcome == "copied" else 0)

    def as_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        return {d: {o: t.as_dict() for o, t in sorted(outs.items())}
                for d, outs in sorted(self.by.items())}
