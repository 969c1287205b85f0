"""The JSON report of a metadata sync run (field meanings: see the README)."""

from __future__ import annotations

from typing import Any

from crosswind.metasync.result import MetaResult
from crosswind.version import crosswind_version


def metadata_report(r: MetaResult) -> dict[str, Any]:
    s = r.ctx.stats
    opts = r.ctx.opts
    duration = max((r.finished_at - r.started_at).total_seconds(), 1e-9)
    report: dict[str, Any] = {
        "kind": "sync-metadata",
        "crosswind_version": crosswind_version(),
        "run_id": r.run_id,
        "status": r.status,
        "error": r.error,
        "direction": opts.direction.value,
        "mode": r.mode,
        "dry_run": opts.dry_run,
        "source": r.source,
        "destination": r.destination,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat(),
        "duration_s": round(duration, 3),
        "listed": {"source": s.listed_source, "destination": s.listed_destination},
        "written": s.written,
        "unchanged": s.unchanged,
        "stale": s.stale,
        "deleted": s.deleted,
        "delete_candidates": s.to_delete,
        "failed": s.failed,
        "failed_by_kind": dict(s.failure_kinds),
        "conflicts": s.conflicts,
        "baselined": s.baselined,
        "objects": {"read": s.objects, "bad_names": s.bad_names, "missing_rows": s.missing_rows},
        "changes": {"read": s.changes, "echoes_skipped": s.echoes,
                    "unknown_deletes": s.unknown_deletes, "reconciles": s.reconciles},
        "batches": s.batches,
        "retries": s.retries,
        "throughput": {"rows_per_s": round((s.written + s.unchanged + s.stale) / duration, 1)},
        "dlq": {"open": r.ctx.ledger.dlq_open_count()},
        "conflicts_open": r.ctx.ledger.conflict_count(),
        "failures": r.ctx.failures,
        "failures_truncated": max(0, s.failed - len(r.ctx.failures)),
        "conflict_examples": r.ctx.conflict_examples,
        **r.ctx.governance.report_fields(),
        **r.details,
    }
    if opts.dry_run:
        report["would_write"] = {"count": s.written, "examples": r.ctx.would_write}
        report["would_delete"] = {"count": s.deleted or s.to_delete,
                                  "examples": r.ctx.would_delete}
    return report
