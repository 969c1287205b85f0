"""The report and counters of one serverless invocation.

An invocation's report is the CLI's ``sync metadata`` report
(``metasync.report.metadata_report``: the same fields, from the same
``MetaStats`` counters), plus ``invocation`` (what the platform handed over
and how it ended). ``counters`` flattens its numbers into the metrics both
platforms publish (CloudWatch through the Lambda's embedded metric format,
Application Insights through the log line's custom dimensions).
``catalogue_samples`` gives the same rows as the monitoring catalogue's
``crosswind_rows_total`` (mode, direction, outcome), the metric the CLI's
one-shot runs and the service are read into, so the dashboards and alarms
``crosswind monitoring export`` generates count the handlers' rows too. The
handlers log the report as one JSON line, redacted (Powertools' logger on
Lambda, the worker's logging on Azure).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crosswind.metasync.context import RunContext
from crosswind.metasync.report import metadata_report
from crosswind.metasync.result import MetaResult
from crosswind.state import RunStatus

#: report counters published as metrics: name → path in the report
COUNTERS: dict[str, tuple[str, ...]] = {
    "written": ("written",),
    "unchanged": ("unchanged",),
    "stale": ("stale",),
    "deleted": ("deleted",),
    "failed": ("failed",),
    "conflicts": ("conflicts",),
    "baselined": ("baselined",),
    "objects_read": ("objects", "read"),
    "objects_bad_names": ("objects", "bad_names"),
    "objects_missing_rows": ("objects", "missing_rows"),
    "changes_read": ("changes", "read"),
    "changes_echoes_skipped": ("changes", "echoes_skipped"),
    "reconciles": ("changes", "reconciles"),
    "batches": ("batches",),
    "retries": ("retries",),
    "dlq_open": ("dlq", "open"),
    "conflicts_open": ("conflicts_open",),
}


def invocation_report(ctx: RunContext, *, mode: str, source: str, destination: str,
                      started: datetime, status: RunStatus, error: str | None,
                      invocation: dict[str, Any], details: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    result = MetaResult(0, status, error, mode, source, destination, started,
                        datetime.now(UTC), ctx, dict(details or {}))
    report = metadata_report(result)
    report["run_id"] = None  # no state store: the invocation is the run
    report["invocation"] = invocation
    return report


#: the catalogue's metric of metadata rows, and the outcomes it counts for a one-shot run
#: (``live.monitoring.OneShotTotals`` reads the same report fields)
ROWS_METRIC = "crosswind_rows_total"
ROW_OUTCOMES = ("written", "unchanged", "failed", "deleted")


def catalogue_samples(report: dict[str, Any], *, mode: str, direction: str
                      ) -> list[dict[str, Any]]:
    """The report's rows as ``crosswind_rows_total`` samples: one per outcome,
    labelled ``mode`` (``lambda`` or ``function``), ``direction`` and ``outcome``."""
    return [{"name": ROWS_METRIC,
             "labels": {"mode": mode, "direction": direction, "outcome": outcome},
             "value": int(report.get(outcome) or 0)} for outcome in ROW_OUTCOMES]


def counters(report: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, path in COUNTERS.items():
        value: Any = report
        for p in path:
            value = value.get(p) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            out[name] = int(value)
    for name, value in (report.get("invocation") or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            out[f"invocation_{name}"] = value
    return out
