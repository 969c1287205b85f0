"""Counters of one metadata sync run. Engines increment; progress, reports and
exporters only read."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class MetaStats:
    started: float = field(default_factory=time.monotonic)
    listed_source: int = 0
    listed_destination: int = 0
    listing_done: bool = False
    #: rows written to the destination (created or replaced)
    written: int = 0
    #: rows already in step (same etag or same content): nothing written
    unchanged: int = 0
    #: writes refused because the destination holds a newer version of the row
    stale: int = 0
    deleted: int = 0
    #: rows, objects or documents that went to the DLQ
    failed: int = 0
    failure_kinds: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    #: rows equal on both sides with no baseline yet: baseline recorded, nothing written
    baselined: int = 0
    #: object-driven: objects read, names that do not parse, objects without a row
    objects: int = 0
    bad_names: int = 0
    missing_rows: int = 0
    #: reverse sync: change events read, and our own writes seen coming back
    changes: int = 0
    echoes: int = 0
    #: deletes of documents crosswind never synced (nothing to do on Azure)
    unknown_deletes: int = 0
    to_delete: int = 0
    retries: int = 0
    batches: int = 0
    reconciles: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fail(self, kind: str) -> None:
        self.failed += 1
        self.failure_kinds[kind] += 1
