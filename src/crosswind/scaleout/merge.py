"""Folding a shard's outcome into the run's counters. Pure; no I/O."""

from __future__ import annotations

from typing import Any

from crosswind.governance.gate import MAX_EXAMPLES, GateCounters, SubjectCounts
from crosswind.observability.stats import SyncStats

_TALLIES = ("planned", "copied", "skipped", "failed", "to_delete", "extra", "vanished")


def add_stats(total: SyncStats, part: SyncStats) -> None:
    """``part``'s counts into ``total``, except the listing's (the coordinator
    listed; a shard only saw what it was sent)."""
    for name in _TALLIES:
        t, p = getattr(total, name), getattr(part, name)
        t.count += p.count
        t.bytes += p.bytes
    total.copy_reasons.update(part.copy_reasons)
    total.metadata_renamed += part.metadata_renamed
    total.metadata_dropped += part.metadata_dropped
    total.retries += part.retries
    total.bytes_moved += part.bytes_moved


def add_gate_counters(total: GateCounters, part: GateCounters) -> None:
    total.checked += part.checked
    total.passed += part.passed
    total.warned += part.warned
    total.rejected += part.rejected
    total.unregistered += part.unregistered
    for subject, n in part.by_subject.items():
        t = total.by_subject.setdefault(subject, SubjectCounts())
        t.version = n.version if t.version is None else max(t.version, n.version or 0)
        t.checked += n.checked
        t.failed += n.failed
    room = MAX_EXAMPLES - len(total.examples)
    if room > 0:
        total.examples.extend(part.examples[:room])


def first_by_key(items: list[dict[str, Any]], more: list[dict[str, Any]], limit: int
                 ) -> list[dict[str, Any]]:
    """The ``limit`` examples of lowest key: shards finish in any order, the
    report's examples should not depend on which came back first."""
    return sorted(items + more, key=lambda d: str(d["key"]))[:limit]
