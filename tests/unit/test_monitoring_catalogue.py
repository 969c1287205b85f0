"""The metric catalogue: names after Prometheus conventions, each metric read
from the document exactly as defined, and the text exposition carrying the
known figures."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crosswind.config import parse_config
from crosswind.errors import ConfigError
from crosswind.observability.catalogue import (
    METRICS,
    alert_names,
    collect,
    resolved_alerts,
    samples,
)
from crosswind.observability.prometheus import exposition
from crosswind.observability.readers import HistogramSample, Sample
from tests.unit.monitoring_fixtures import known_document

NAME = re.compile(r"^crosswind_[a-z0-9_]+$")


def values(doc: dict[str, object]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels)): s.value for s in samples(doc)
            if isinstance(s, Sample)}


def one(vals: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
        **labels: str) -> float:
    return vals[(name, frozenset(labels.items()))]


def test_names_follow_prometheus_conventions() -> None:
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    assert len(alert_names()) == len(set(alert_names()))
    for m in METRICS:
        assert NAME.match(m.name), m.name
        assert m.help and m.source
        if m.type == "counter":
            assert m.name.endswith("_total"), m.name
        else:
            assert not m.name.endswith("_total"), m.name
        if m.unit == "seconds":
            assert m.name.endswith("_seconds"), m.name
        if m.unit == "bytes":
            assert m.name.endswith(("_bytes", "_bytes_total")), m.name
        if m.unit == "ratio":
            assert m.name.endswith("_ratio"), m.name
        if m.type == "histogram":
            assert m.buckets == tuple(sorted(m.buckets))
        assert "le" not in m.labels and "quantile" not in m.labels


def test_the_issue_minimum_is_in_the_catalogue() -> None:
    names = {m.name for m in METRICS}
    for needed in ("crosswind_objects_total", "crosswind_object_bytes_total",
                   "crosswind_rows_total", "crosswind_changes_applied_total",
                   "crosswind_replication_lag_seconds", "crosswind_backlog",
                   "crosswind_reconcile_drift", "crosswind_dlq_entries",
                   "crosswind_breaker_open", "crosswind_request_duration_seconds",
                   "crosswind_request_latency_baseline_seconds",
                   "crosswind_auth_failures_total", "crosswind_worker_utilisation_ratio",
                   "crosswind_connection_pool_utilisation_ratio",
                   "crosswind_validation_completeness_ratio",
                   "crosswind_validation_pass_rate_ratio", "crosswind_migration_phase",
                   "crosswind_rollback_rto_seconds"):
        assert needed in names


def test_each_reader_yields_only_its_own_metric_with_its_labels() -> None:
    for m, ss in collect(known_document()):
        for s in ss:
            assert s.name == m.name
            assert [k for k, _ in s.labels] == list(m.labels), m.name
            assert isinstance(s, HistogramSample) == (m.type == "histogram")
    # every metric has figures in the known document (the fixture covers them all)
    empty = [m.name for m, ss in collect(known_document()) if not ss]
    assert empty == []


def test_known_figures() -> None:
    v = values(known_document())
    assert one(v, "crosswind_objects_total", mode="oneshot", direction="azure-to-aws",
               outcome="copied") == 10
    assert one(v, "crosswind_objects_total", mode="service", direction="azure-to-aws",
               outcome="copied") == 4
    # the service's failures are its object streams' DLQ entries
    assert one(v, "crosswind_objects_total", mode="service", direction="azure-to-aws",
               outcome="failed") == 1
    assert one(v, "crosswind_object_bytes_total", mode="oneshot", direction="azure-to-aws",
               outcome="copied") == 1000
    assert ("crosswind_object_bytes_total", frozenset(
        {("mode", "oneshot"), ("direction", "azure-to-aws"), ("outcome", "failed")})) not in v
    assert one(v, "crosswind_rows_total", mode="service", direction="azure-to-aws",
               outcome="written") == 7
    assert one(v, "crosswind_rows_total", mode="oneshot", direction="azure-to-aws",
               outcome="written") == 12
    assert one(v, "crosswind_changes_applied_total", stream="azure-blob-events",
               kind="objects") == 4
    assert one(v, "crosswind_replication_lag_slo_ratio") == pytest.approx(330 / 300)
    assert one(v, "crosswind_backlog", stream="azure-blob-events", kind="objects") == 3
    assert ("crosswind_backlog", frozenset({("stream", "table-poll"), ("kind", "rows")})) \
        not in v  # no backlog known: nothing made up
    assert one(v, "crosswind_reconcile_drift", kind="rows") == 1
    assert one(v, "crosswind_breaker_open", endpoint="azure-blob") == 1
    assert one(v, "crosswind_breaker_open", endpoint="sqs") == 1  # half-open is not closed
    assert one(v, "crosswind_breaker_open", endpoint="s3") == 0
    assert one(v, "crosswind_auth_failures_total", endpoint="azure-blob",
               principal="account devstoreaccount1") == 3
    assert one(v, "crosswind_auth_failures_total", endpoint="[replicate].http 0.0.0.0:9464",
               principal="client 10.0.0.7") == 2
    assert one(v, "crosswind_endpoint_requests_in_flight", endpoint="s3") == 1
    assert one(v, "crosswind_connection_pool_utilisation_ratio", endpoint="s3") == 1 / 64
    assert one(v, "crosswind_request_latency_baseline_seconds", endpoint="s3",
               operation="put") == pytest.approx(0.020)
    ratio = one(v, "crosswind_request_latency_baseline_ratio", endpoint="s3", operation="put")
    # recent: minutes 5 and 6 (5 requests of 20 ms, 40 of 30 ms)
    assert ratio == pytest.approx((5 * 0.02 + 40 * 0.03) / 45 / 0.02)
    assert one(v, "crosswind_worker_utilisation_ratio") == 0.75
    # the latest finished validation (a running one has no figures yet)
    assert one(v, "crosswind_validation_completeness_ratio",
               direction="azure-to-aws") == pytest.approx(0.9985)
    assert one(v, "crosswind_validation_pass_rate_ratio", direction="azure-to-aws") == 0.99
    assert one(v, "crosswind_validation_passed", direction="azure-to-aws") == 0
    assert one(v, "crosswind_rollback_rto_seconds") == 42.5
    assert one(v, "crosswind_cutover_duration_seconds") == 61.5
    assert one(v, "crosswind_rollback_trigger_firing", trigger="lag") == 1
    assert one(v, "crosswind_dlq_entries", kind="conflict") == 3
    assert one(v, "crosswind_dlq_open_entries") == 5
    assert one(v, "crosswind_aws_quota_usage_ratio", quota="vpc-network-interfaces") == 0.7
    assert one(v, "crosswind_migration_phase", phase="pre_cutover") == 1
    assert one(v, "crosswind_migration_phase", phase="post_cutover") == 0
    # governance: the stewardship, and the validation before write of runs and service
    assert one(v, "crosswind_governance_info", domain="ADL", steward="ana", owner="flight-ops",
               flow_id="26", enforce="reject", lineage="file") == 1
    checks = {"mode": "service", "direction": "azure-to-aws", "subject": "object-metadata"}
    assert one(v, "crosswind_schema_checks_total", **checks, outcome="passed") == 4
    assert one(v, "crosswind_schema_checks_total", **checks, outcome="rejected") == 1
    assert one(v, "crosswind_schema_checks_total", mode="oneshot", direction="azure-to-aws",
               subject="object-metadata", outcome="warned") == 2
    assert one(v, "crosswind_schema_rejections_total", mode="service",
               direction="azure-to-aws", subject="documentdb-document") == 2
    assert one(v, "crosswind_schema_rejections_total", mode="oneshot",
               direction="azure-to-aws", subject="documentdb-document") == 1
    # warned items are no rejections
    assert ("crosswind_schema_rejections_total", frozenset(
        {("mode", "oneshot"), ("direction", "azure-to-aws"),
         ("subject", "object-metadata")})) not in v
    assert one(v, "crosswind_schema_unchecked_total", mode="service",
               direction="azure-to-aws") == 2
    assert one(v, "crosswind_schema_unchecked_total", mode="oneshot",
               direction="azure-to-aws") == 4
    assert one(v, "crosswind_lineage_events_total", outcome="sent") == 8
    assert one(v, "crosswind_lineage_events_total", outcome="failed") == 1


def test_exposition_parses_and_carries_the_figures() -> None:
    text = exposition(known_document).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # prometheus-client's parser names counters without _total
    assert families["crosswind_objects"].type == "counter"
    lag = families["crosswind_replication_lag_seconds"]
    assert lag.type == "histogram"
    got = {(s.name, s.labels.get("le")): s.value for s in lag.samples
           if s.labels.get("stream") == "azure-blob-events"}
    assert got[("crosswind_replication_lag_seconds_bucket", "0.5")] == 1
    assert got[("crosswind_replication_lag_seconds_bucket", "2.0")] == 2
    assert got[("crosswind_replication_lag_seconds_bucket", "5.0")] == 3
    assert got[("crosswind_replication_lag_seconds_bucket", "120.0")] == 3
    assert got[("crosswind_replication_lag_seconds_bucket", "300.0")] == 4
    assert got[("crosswind_replication_lag_seconds_bucket", "+Inf")] == 4
    assert got[("crosswind_replication_lag_seconds_count", None)] == 4
    assert got[("crosswind_replication_lag_seconds_sum", None)] == pytest.approx(205.8)
    assert "# TYPE crosswind_worker_utilisation_ratio gauge" in text
    assert "crosswind_build_info{version=\"9.9.9\"} 1.0" in text


def test_a_stopped_service_shows_as_down_with_its_last_figures() -> None:
    v = values(known_document(running=False))
    assert one(v, "crosswind_service_up") == 0
    assert one(v, "crosswind_changes_applied_total", stream="azure-blob-events",
               kind="objects") == 4
    assert "crosswind_switch_running" not in {name for name, _ in v}


def test_an_empty_document_makes_no_figures_up() -> None:
    got = samples({"status": {}})
    assert {s.name for s in got} <= {"crosswind_build_info", "crosswind_service_up"}


def test_a_reader_that_trips_loses_only_its_own_metric() -> None:
    doc = known_document()
    doc["quotas"] = [{"no-quota-name": 1, "ratio": 0.5}]  # KeyError in the quota readers
    names = {m.name for m, _ in collect(doc)}
    assert "crosswind_aws_quota_usage_ratio" not in names
    assert "crosswind_objects_total" in names


def _cfg(extra: str, tmp_path: Path) -> object:
    import tomllib

    text = ('[azure]\nconnection_string = "UseDevelopmentStorage=true"\ncontainer = "c"\n'
            'emulator = true\n[aws]\nbucket = "b"\n' + extra)
    return parse_config(tomllib.loads(text), tmp_path)


def test_thresholds_follow_the_config(tmp_path: Path) -> None:
    defaults = {a.name: a for a in resolved_alerts()}
    assert defaults["CrosswindCompletenessBelowTarget"].threshold == pytest.approx(0.999)
    assert defaults["CrosswindPassRateBelowTarget"].threshold == pytest.approx(0.995)
    assert defaults["CrosswindWorkersSaturated"].threshold == 0.7
    assert defaults["CrosswindEndpointLatencyDegraded"].threshold == 1.2
    cfg = _cfg("[validation]\ncompleteness_target = 99.0\n"
               "[monitoring.alerts.CrosswindWorkersSaturated]\nthreshold = 0.5\nfor_s = 0\n"
               "[monitoring.alerts.CrosswindAwsQuotaHigh]\nenabled = false\n", tmp_path)
    got = {a.name: a for a in resolved_alerts(cfg)}  # type: ignore[arg-type]
    assert got["CrosswindCompletenessBelowTarget"].threshold == pytest.approx(0.99)
    assert got["CrosswindWorkersSaturated"].threshold == 0.5
    assert got["CrosswindWorkersSaturated"].for_s == 0
    assert "CrosswindAwsQuotaHigh" not in got
    bad = _cfg("[monitoring.alerts.NoSuchAlert]\nthreshold = 1\n", tmp_path)
    with pytest.raises(ConfigError, match="unknown alert"):
        resolved_alerts(bad)  # type: ignore[arg-type]


def test_no_value_is_nan_or_infinite() -> None:
    for s in samples(known_document()):
        if isinstance(s, Sample):
            assert math.isfinite(s.value), s
