"""The JSON report of a sync run (field meanings are in the README)."""

from __future__ import annotations

from typing import Any

from crosswind.sync.result import SyncResult
from crosswind.version import crosswind_version


def sync_report(r: SyncResult) -> dict[str, Any]:
    s = r.stats
    duration = max((r.finished_at - r.started_at).total_seconds(), 1e-9)
    report: dict[str, Any] = {
        "kind": "sync-objects",
        "crosswind_version": crosswind_version(),
        "run_id": r.run_id,
        "status": r.status,
        "error": r.error,
        "direction": r.options.direction,
        "dry_run": r.options.dry_run,
        "source": r.source,
        "destination": r.destination,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat(),
        "duration_s": round(duration, 3),
        "listed": {"source": s.listed_source, "destination": s.listed_destination},
        "copied": s.copied.as_dict(),
        "skipped": s.skipped.as_dict(),
        "failed": s.failed.as_dict(),
        "deleted": s.deleted.as_dict(),
        "extra_on_destination": s.extra.as_dict(),
        "vanished_at_source": s.vanished.as_dict(),
        "copy_reasons": dict(s.copy_reasons),
        "metadata": {"keys_renamed": s.metadata_renamed, "keys_dropped": s.metadata_dropped,
                     "policy": r.options.transfer.metadata_policy},
        "retries": s.retries,
        "throughput": {
            "objects_per_s": round(s.copied.count / duration, 2),
            "bytes_per_s": round(s.copied.bytes / duration, 1),
        },
        "failures": r.failures,
        "failures_truncated": max(0, s.failed.count - len(r.failures)),
        **r.options.governance.report_fields(),
    }
    if r.options.dry_run:
        report["would_copy"] = {**s.planned.as_dict(), "examples": r.would_copy_examples}
        report["would_delete"] = {**s.to_delete.as_dict(), "examples": r.would_delete_examples}
    elif r.options.delete:
        report["delete_candidates"] = s.to_delete.as_dict()
    return report
