"""A monitoring document with known figures (the shape live.monitoring builds),
for the catalogue, exporter and dashboard tests."""

from __future__ import annotations

from typing import Any

from crosswind.live.lag import LagTracker
from crosswind.observability.requests import RequestStats


def known_document(*, running: bool = True) -> dict[str, Any]:
    clock = [0.0]
    rs = RequestStats(clock=lambda: clock[0])
    rs.track("s3", pool_size=64)
    rs.track("azure-blob")
    for minute in range(6):  # a baseline of 20 ms, then a minute of 30 ms
        clock[0] = minute * 60.0
        for _ in range(5):
            rs.started("s3")
            rs.finished("s3", "put", 0.020, "ok")
    clock[0] = 6 * 60.0
    for _ in range(40):
        rs.started("s3")
        rs.finished("s3", "put", 0.030, "ok")
    for _ in range(3):
        rs.outcome("azure-blob", "get", "auth_error")
    rs.started("s3")  # one request under way
    lag = LagTracker(window_s=1e9, clock=lambda: 0.0)
    for v in (0.3, 1.5, 4.0, 200.0):
        lag.record(v)
    stream = {"name": "azure-blob-events", "kind": "objects", "source": "q", "backlog": 3,
              "applied": 4, "in_step": 1, "failed": 1, "held": 0,
              "lag_s": lag.window().as_dict(), "lag_histogram": lag.histogram()}
    rows = {"name": "table-poll", "kind": "rows", "source": "t", "backlog": None, "applied": 7,
            "in_step": 0, "failed": 2, "held": 0, "lag_s": {"p99": 1.25},
            "lag_histogram": LagTracker().histogram()}
    return {
        "at": 1_767_225_600.0,
        "version": "9.9.9",
        "status": {
            "phase": "pre_cutover", "direction": "azure-to-aws",
            "service": {"running": running, "heartbeat_at": "2026-01-01T00:00:00+00:00"},
            "lag_p99_s": 200.0, "streams": [stream, rows],
            "pending": {"keys": 2, "in_flight": 1, "oldest_s": 330.0},
            "breakers": {"s3": "closed", "azure-blob": "open", "sqs": "half-open"},
            "breaker_details": {"s3": {"opens": 0}, "azure-blob": {"opens": 2},
                                "sqs": {"opens": 1}},
            "dlq_open": 5, "slo": {"target_s": 300.0, "breached": True},
            "last_reconcile": {"at": "2026-01-01T00:00:00+00:00", "drift": 3,
                               "parts": {"objects": {"drift": 2}, "rows": {"drift": 1}}},
            "workers": {"concurrency": 32, "busy": 24},
            "requests": rs.as_dict(),
            "auth_failures": [{"endpoint": "azure-blob", "principal": "account devstoreaccount1",
                               "count": 3, "refreshed": 1, "recovered": 0},
                              {"endpoint": "[replicate].http 0.0.0.0:9464",
                               "principal": "client 10.0.0.7", "count": 2}],
            "objects": {"azure-to-aws": {"copied": {"count": 4, "bytes": 400},
                                         "skipped": {"count": 1, "bytes": 0}}},
            "switch": {"running": False, "triggers": {"lag": True, "breaker": False,
                                                      "error_rate": False,
                                                      "validation": False}},
            "governance": {
                "stewardship": {"domain": "ADL", "steward": "ana", "owner": "flight-ops",
                                "flow_id": "26"},
                "schema_validation": {
                    "enforce": "reject", "checked": 9, "passed": 6, "warned": 0,
                    "rejected": 3, "unregistered": 2,
                    "subjects": {"object-metadata": {"version": 2, "checked": 5, "failed": 1},
                                 "documentdb-document": {"version": 1, "checked": 4,
                                                         "failed": 2}}},
                "lineage": {"to": "file /state/lineage/events.jsonl", "sent": 8, "failed": 1,
                            "dropped": 0, "last_error": None}},
        },
        "validation_history": [
            {"id": 9, "direction": "azure-to-aws", "status": "running", "verdict": "running",
             "completeness_pct": None, "pass_rate_pct": None, "finished_at": None},
            {"id": 8, "direction": "azure-to-aws", "status": "succeeded", "verdict": "fail",
             "completeness_pct": 99.85, "pass_rate_pct": 99.0,
             "finished_at": "2026-01-01T00:00:00+00:00"},
            {"id": 7, "direction": "azure-to-aws", "status": "succeeded", "verdict": "pass",
             "completeness_pct": 100.0, "pass_rate_pct": 100.0,
             "finished_at": "2025-12-31T00:00:00+00:00"},
        ],
        "switches": {"cutover": {"kind": "cutover", "duration_s": 61.5,
                                 "finished_at": "2026-01-01T00:00:00+00:00"},
                     "rollback": {"kind": "rollback", "duration_s": 42.5, "rto_s": 42.5,
                                  "finished_at": "2026-01-01T01:00:00+00:00"}},
        "dlq": {"open": 5, "by_kind": {"poison-message": 2, "conflict": 3}},
        "oneshot": {"objects": [
            {"direction": "azure-to-aws", "outcome": "copied", "count": 10, "bytes": 1000},
            {"direction": "azure-to-aws", "outcome": "failed", "count": 1, "bytes": 7}],
            "rows": [{"direction": "azure-to-aws", "outcome": "written", "count": 12}],
            "schemas": [
                {"direction": "azure-to-aws", "subject": "object-metadata",
                 "outcome": "passed", "count": 20},
                {"direction": "azure-to-aws", "subject": "object-metadata",
                 "outcome": "warned", "count": 2},
                {"direction": "azure-to-aws", "subject": "documentdb-document",
                 "outcome": "rejected", "count": 1}],
            "schemas_unchecked": [{"direction": "azure-to-aws", "count": 4}]},
        "quotas": [{"quota": "vpc-network-interfaces", "used": 3500, "limit": 5000,
                    "ratio": 0.7}],
        "governance": {"enforce": "reject", "lineage": "file"},
    }
