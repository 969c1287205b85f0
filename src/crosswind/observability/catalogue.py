"""The metric catalogue: every metric crosswind exports, defined once.

Each ``Metric`` says its Prometheus name (base units, ``_total`` for counters,
``_seconds``, ``_bytes``, ``_ratio``), type, unit, labels, help, where its
value comes from (``source``, shown in the README's table), the function that
reads it from the monitoring document (``readers.py``) and the alerts that
apply to it. Everything else — the Prometheus collector, the CloudWatch and
Azure Monitor exporters, the alerts the service evaluates, the Prometheus
rules, CloudWatch alarms and Azure alert rules, the dashboards — is generated
from this list; there is no second one.

An alert is always one metric against one threshold:

* ``value``: the metric's value ``>=`` (or ``<``) the threshold, held for
  ``for_s``;
* ``increase``: a counter grew by at least the threshold over ``window_s``;
* ``growth``: a gauge rose by at least the threshold above its lowest value
  over ``window_s`` (the DLQ growing).

Thresholds that are settings (the validation targets) are ``Setting``s, read
from the config when rules are made; ``[monitoring.alerts.NAME]`` may change a
threshold, its ``for_s`` or switch an alert off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from crosswind.config import Config
from crosswind.errors import ConfigError
from crosswind.observability import readers as r

log = logging.getLogger("crosswind.observability")

MetricType = Literal["counter", "gauge", "histogram"]
Unit = Literal["seconds", "bytes", "ratio", "count", "info"]
Op = Literal[">=", "<"]
AlertKind = Literal["value", "increase", "growth"]
Severity = Literal["page", "ticket"]
#: how a labelled metric is folded into one series where a backend needs one
#: (CloudWatch alarms take one series: the exporter publishes this roll-up too)
Rollup = Literal["max", "min", "sum"]

#: replication lag histogram buckets (seconds): the SLOs (120 s, 300 s) are edges
LAG_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: request duration histogram buckets (seconds)
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                      10, 30)


@dataclass(frozen=True, slots=True)
class Setting:
    """A threshold that is a config setting: ``section.name`` times ``scale``."""

    path: str
    scale: float = 1.0

    def value(self, cfg: Config | None) -> float:
        section, name = self.path.split(".")
        # Without a config: the setting's default (the sections' defaults are instances).
        holder = getattr(cfg, section) if cfg is not None \
            else Config.model_fields[section].default
        # 99.9 × 0.01 is 0.9990000000000001 in binary: rules should say 0.999
        return round(float(getattr(holder, name)) * self.scale, 12)


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    op: Op
    threshold: float | Setting
    summary: str
    kind: AlertKind = "value"
    for_s: float = 0.0
    #: the look-back of ``increase`` and ``growth``
    window_s: float = 0.0
    severity: Severity = "page"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    type: MetricType
    unit: Unit
    help: str
    #: where the value comes from (the README's metric table)
    source: str
    read: Callable[[r.Doc], Iterable[r.AnySample]]
    labels: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    rollup: Rollup = "max"
    #: a fixed histogram's bucket edges
    buckets: tuple[float, ...] = ()

    @property
    def base_name(self) -> str:
        """The name without ``_total`` (prometheus-client adds it to counters)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


@dataclass(frozen=True, slots=True)
class ResolvedAlert:
    """An alert with its effective threshold and duration (config applied)."""

    name: str
    metric: Metric
    op: Op
    threshold: float
    kind: AlertKind
    for_s: float
    window_s: float
    severity: Severity
    summary: str


_SVC = "service (status document)"
_RUNS = "one-shot runs (state store: runs)"

METRICS: tuple[Metric, ...] = (
    # -- the service and the migration ------------------------------------------------
    Metric("crosswind_build_info", "gauge", "info", "Always 1; the crosswind version.",
           "the installed package", r.build_info, ("version",)),
    Metric("crosswind_service_up", "gauge", "count",
           "1 while the replication service runs (fresh heartbeat, live process).",
           _SVC + ": service.running", r.service_up),
    Metric("crosswind_service_heartbeat_timestamp_seconds", "gauge", "seconds",
           "When the service last published its status (Unix time).",
           _SVC + ": service.heartbeat_at", r.heartbeat),
    Metric("crosswind_migration_phase", "gauge", "count",
           "1 for the current migration phase, 0 for the others.",
           "state store: migration phase", r.phase, ("phase",)),
    Metric("crosswind_replication_direction", "gauge", "count",
           "1 for the direction replication runs in now, 0 for the other.",
           "state store: migration phase", r.direction, ("direction",)),
    # -- objects and rows --------------------------------------------------------------
    Metric("crosswind_objects_total", "counter", "count",
           "Objects by outcome: copied, skipped (already in step), failed, deleted. "
           "mode=oneshot sums the sync objects runs, mode=service the running service.",
           _RUNS + " and the service's appliers", r.objects_total,
           ("mode", "direction", "outcome"), rollup="sum"),
    Metric("crosswind_object_bytes_total", "counter", "bytes",
           "Bytes of the objects counted in crosswind_objects_total.",
           _RUNS + " and the service's appliers", r.object_bytes_total,
           ("mode", "direction", "outcome"), rollup="sum"),
    Metric("crosswind_rows_total", "counter", "count",
           "Metadata rows by outcome: written, unchanged, failed, deleted.",
           _RUNS + " (sync metadata) and the service's row streams", r.rows_total,
           ("mode", "direction", "outcome"), rollup="sum"),
    # -- streams of changes -------------------------------------------------------------
    Metric("crosswind_changes_applied_total", "counter", "count",
           "Changes brought in step per stream (copied, deleted or found in step).",
           _SVC + ": streams[].applied", r.stream_field("applied"), ("stream", "kind"),
           rollup="sum"),
    Metric("crosswind_changes_failed_total", "counter", "count",
           "Changes that went to the DLQ per stream.", _SVC + ": streams[].failed",
           r.stream_field("failed"), ("stream", "kind"), rollup="sum"),
    Metric("crosswind_changes_held_total", "counter", "count",
           "Deletes held by the max-delete guard per stream.", _SVC + ": streams[].held",
           r.stream_field("held"), ("stream", "kind"), rollup="sum"),
    Metric("crosswind_replication_lag_seconds", "histogram", "seconds",
           "Replication lag per change since the service started: applied time minus "
           "the source's own event time.", _SVC + ": streams[].lag_histogram",
           r.lag_histogram, ("stream", "kind"), buckets=LAG_BUCKETS),
    Metric("crosswind_replication_lag_p99_seconds", "gauge", "seconds",
           "Lag p99 per stream over the sliding window ([replicate] lag_window_s).",
           _SVC + ": streams[].lag_s.p99", r.lag_p99, ("stream", "kind")),
    Metric("crosswind_replication_lag_slo_seconds", "gauge", "seconds",
           "The lag SLO of the current phase (lag_slo_pre_s / lag_slo_post_s).",
           _SVC + ": slo.target_s", r.slo_target),
    Metric("crosswind_replication_lag_slo_ratio", "gauge", "ratio",
           "The worse of the worst stream's lag p99 and the oldest pending change, "
           "over the SLO (1 = at the SLO).", _SVC + ": lag_p99_s, pending.oldest_s, "
           "slo.target_s", r.slo_ratio,
           alerts=(Alert("CrosswindLagOverSLO", ">=", 1.0,
                         "replication lag is at or over its SLO", for_s=60),)),
    Metric("crosswind_backlog", "gauge", "count",
           "Changes waiting per stream (queue depth, unacknowledged messages).",
           _SVC + ": streams[].backlog", r.backlog, ("stream", "kind")),
    Metric("crosswind_pending_keys", "gauge", "count",
           "Keys waiting to be applied or being applied.", _SVC + ": pending.keys",
           r.pending_keys),
    Metric("crosswind_oldest_pending_change_seconds", "gauge", "seconds",
           "How long the oldest change not yet applied has waited.",
           _SVC + ": pending.oldest_s", r.oldest_pending),
    Metric("crosswind_reconcile_drift", "gauge", "count",
           "Changes the last reconcile found that no event had brought.",
           _SVC + ": last_reconcile (objects, rows)", r.reconcile_drift, ("kind",),
           rollup="sum"),
    Metric("crosswind_reconcile_last_timestamp_seconds", "gauge", "seconds",
           "When the last reconcile finished (Unix time).", _SVC + ": last_reconcile.at",
           r.reconcile_at),
    # -- the dead-letter queue ----------------------------------------------------------
    Metric("crosswind_dlq_open_entries", "gauge", "count",
           "Open DLQ entries, objects and rows together.", "state store: DLQ",
           r.dlq_open,
           alerts=(Alert("CrosswindDLQGrowing", ">=", 1.0,
                         "the dead-letter queue is growing", kind="growth", window_s=900),)),
    Metric("crosswind_dlq_entries", "gauge", "count", "Open DLQ entries by kind.",
           "state store: DLQ", r.dlq_by_kind, ("kind",), rollup="sum"),
    # -- endpoints ----------------------------------------------------------------------
    Metric("crosswind_breaker_open", "gauge", "count",
           "1 while an endpoint's circuit breaker is not closed (open or half-open).",
           _SVC + ": breakers", r.breaker_open, ("endpoint",),
           alerts=(Alert("CrosswindBreakerOpen", ">=", 1.0,
                         "a circuit breaker is open: an endpoint is failing"),)),
    Metric("crosswind_breaker_opens_total", "counter", "count",
           "How often each breaker opened.", _SVC + ": breaker_details[].opens",
           r.breaker_opens, ("endpoint",), rollup="sum"),
    Metric("crosswind_requests_total", "counter", "count",
           "Store requests by endpoint, operation and outcome (ok; answer: the endpoint "
           "answered with an error that is no failure, e.g. not found; auth_error, "
           "unreachable, transient).", _SVC + ": requests (breaker wrappers)",
           r.requests_total, ("endpoint", "operation", "outcome"), rollup="sum"),
    Metric("crosswind_request_duration_seconds", "histogram", "seconds",
           "Store request duration by endpoint and operation.",
           _SVC + ": requests (breaker wrappers)", r.request_histogram,
           ("endpoint", "operation"), buckets=LATENCY_BUCKETS),
    Metric("crosswind_request_latency_seconds", "gauge", "seconds",
           "Recent request latency: the mean over this and the previous minute "
           "(with at least 5 requests).",
           _SVC + ": requests (breaker wrappers)", r.request_latency("latency_s"),
           ("endpoint", "operation")),
    Metric("crosswind_request_latency_baseline_seconds", "gauge", "seconds",
           "Rolling baseline latency: the median of per-minute means over the last "
           "hour (published once five minutes are known).",
           _SVC + ": requests (breaker wrappers)", r.request_latency("baseline_s"),
           ("endpoint", "operation")),
    Metric("crosswind_request_latency_baseline_ratio", "gauge", "ratio",
           "Recent latency over its baseline (1.2 = 20 % slower than usual).",
           _SVC + ": requests (breaker wrappers)", r.request_latency("ratio"),
           ("endpoint", "operation"),
           alerts=(Alert("CrosswindEndpointLatencyDegraded", ">=", 1.2,
                         "an endpoint is at least 20 % slower than its baseline",
                         for_s=300),)),
    Metric("crosswind_auth_failures_total", "counter", "count",
           "Credentials refused (401/403), per endpoint and principal: a store refusing "
           "crosswind's (counted also when a refresh then cured it), or a client without "
           "the bearer token refused by crosswind's own endpoint.",
           _SVC + ": auth_failures", r.auth_failures, ("endpoint", "principal"),
           rollup="sum",
           alerts=(Alert("CrosswindAuthFailures", ">=", 1.0,
                         "an endpoint refused crosswind's credentials", kind="increase",
                         window_s=300),)),
    Metric("crosswind_endpoint_requests_in_flight", "gauge", "count",
           "Requests under way per endpoint.", _SVC + ": requests (breaker wrappers)",
           r.endpoint_field("in_flight"), ("endpoint",), rollup="sum"),
    Metric("crosswind_connection_pool_size", "gauge", "count",
           "The client's connection pool size, where crosswind sets it (S3).",
           _SVC + ": the store clients", r.endpoint_field("pool_size"), ("endpoint",)),
    Metric("crosswind_connection_pool_utilisation_ratio", "gauge", "ratio",
           "Requests in flight over the connection pool size.",
           _SVC + ": requests (breaker wrappers)", r.pool_utilisation, ("endpoint",),
           alerts=(Alert("CrosswindConnectionPoolSaturated", ">=", 0.7,
                         "a connection pool is at least 70 % in use", for_s=300),)),
    Metric("crosswind_worker_concurrency", "gauge", "count",
           "Object appliers the service runs ([replicate] concurrency).",
           _SVC + ": workers.concurrency", r.workers("concurrency")),
    Metric("crosswind_workers_busy", "gauge", "count", "Appliers busy with a key now.",
           _SVC + ": workers.busy", r.workers("busy")),
    Metric("crosswind_worker_utilisation_ratio", "gauge", "ratio",
           "Busy appliers over the concurrency.", _SVC + ": workers", r.worker_utilisation,
           alerts=(Alert("CrosswindWorkersSaturated", ">=", 0.7,
                         "at least 70 % of the appliers are busy", for_s=300),)),
    # -- validation ---------------------------------------------------------------------
    Metric("crosswind_validation_completeness_ratio", "gauge", "ratio",
           "Completeness of the latest validation per direction (1 = every source item "
           "is on the destination).", "validation history (state store)",
           r.validation("completeness_pct"), ("direction",), rollup="min",
           alerts=(Alert("CrosswindCompletenessBelowTarget", "<",
                         Setting("validation.completeness_target", 0.01),
                         "the latest validation is under the completeness target"),)),
    Metric("crosswind_validation_pass_rate_ratio", "gauge", "ratio",
           "Consistency pass rate of the latest validation per direction.",
           "validation history (state store)", r.validation("pass_rate_pct"),
           ("direction",), rollup="min",
           alerts=(Alert("CrosswindPassRateBelowTarget", "<",
                         Setting("validation.pass_rate_target", 0.01),
                         "the latest validation is under the pass-rate target"),)),
    Metric("crosswind_validation_passed", "gauge", "count",
           "1 when the latest validation of the direction passed.",
           "validation history (state store)", r.validation_passed, ("direction",),
           rollup="min"),
    Metric("crosswind_validation_last_timestamp_seconds", "gauge", "seconds",
           "When the latest validation of the direction finished (Unix time).",
           "validation history (state store)", r.validation_at, ("direction",)),
    # -- cutover and rollback -----------------------------------------------------------
    Metric("crosswind_switch_running", "gauge", "count",
           "1 while a cutover or rollback runs in the service.", _SVC + ": switch.running",
           r.switch_running),
    Metric("crosswind_cutover_duration_seconds", "gauge", "seconds",
           "Duration of the last cutover.", "cutover reports (state store)",
           r.switch_field("cutover", "duration_s")),
    Metric("crosswind_rollback_rto_seconds", "gauge", "seconds",
           "RTO of the last rollback: from rollback start until Azure is primary again "
           "with every change applied.", "cutover reports (state store)",
           r.switch_field("rollback", "rto_s")),
    Metric("crosswind_switch_last_timestamp_seconds", "gauge", "seconds",
           "When the last cutover / rollback finished (Unix time).",
           "cutover reports (state store)", r.switch_at, ("kind",)),
    Metric("crosswind_rollback_trigger_firing", "gauge", "count",
           "1 while a rollback trigger (lag, error_rate, breaker, validation) is fired "
           "after cutover.", _SVC + ": switch.triggers", r.triggers, ("trigger",),
           alerts=(Alert("CrosswindRollbackTriggerFired", ">=", 1.0,
                         "a rollback trigger fired"),)),
    # -- governance ---------------------------------------------------------------------
    Metric("crosswind_governance_info", "gauge", "info",
           "Always 1; the flow's stewardship ([governance] domain, steward, owner, flow_id) "
           "and its enforce and lineage settings.",
           "the config ([governance])", r.governance_info,
           ("domain", "steward", "owner", "flow_id", "enforce", "lineage")),
    Metric("crosswind_schema_checks_total", "counter", "count",
           "Items checked against their subject's schema before they were written, by "
           "outcome: passed, warned (failed, written: enforce = warn), rejected (failed, "
           "not written: in the DLQ).", _RUNS + " and the service: schema_validation",
           r.schema_checks, ("mode", "direction", "subject", "outcome"), rollup="sum"),
    Metric("crosswind_schema_rejections_total", "counter", "count",
           "The rejected of crosswind_schema_checks_total, alone so that an alert can "
           "watch them.", _RUNS + " and the service: schema_validation",
           r.schema_rejections, ("mode", "direction", "subject"), rollup="sum",
           alerts=(Alert("CrosswindSchemaRejections", ">=", 1.0,
                         "items failed their schema and were not written (DLQ kind schema)",
                         kind="increase", window_s=900, severity="ticket"),)),
    Metric("crosswind_schema_unchecked_total", "counter", "count",
           "Items written unchecked because their subject has no registered version.",
           _RUNS + " and the service: schema_validation.unregistered", r.schema_unchecked,
           ("mode", "direction"), rollup="sum"),
    Metric("crosswind_lineage_events_total", "counter", "count",
           "The service's OpenLineage events: sent, failed (the transport refused or "
           "could not reach the receiver), dropped (the queue was full).",
           _SVC + ": governance.lineage", r.lineage_events, ("outcome",), rollup="sum"),
    # -- AWS quotas ---------------------------------------------------------------------
    Metric("crosswind_aws_quota_usage", "gauge", "count",
           "Use of an AWS quota (Lambda concurrent executions, VPC network interfaces).",
           "AWS APIs ([monitoring] quotas)", r.quota_field("used"), ("quota",)),
    Metric("crosswind_aws_quota_limit", "gauge", "count", "The AWS quota's value.",
           "AWS APIs ([monitoring] quotas)", r.quota_field("limit"), ("quota",)),
    Metric("crosswind_aws_quota_usage_ratio", "gauge", "ratio",
           "Use of an AWS quota over its value.", "AWS APIs ([monitoring] quotas)",
           r.quota_field("ratio"), ("quota",),
           alerts=(Alert("CrosswindAwsQuotaHigh", ">=", 0.7,
                         "an AWS quota is at least 70 % used", severity="ticket"),)),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def resolved_alerts(cfg: Config | None = None) -> list[ResolvedAlert]:
    """Every alert with the thresholds of ``cfg`` (its targets and its
    ``[monitoring.alerts]`` overrides); the catalogue's defaults without one."""
    overrides = cfg.monitoring.alerts if cfg is not None else {}
    unknown = sorted(set(overrides) - set(alert_names()))
    if unknown:
        raise ConfigError(f"[monitoring.alerts]: unknown alert(s) {', '.join(unknown)}; the "
                          f"alerts are {', '.join(alert_names())}")
    out: list[ResolvedAlert] = []
    for m in METRICS:
        for a in m.alerts:
            o = overrides.get(a.name)
            if o is not None and not o.enabled:
                continue
            threshold = a.threshold.value(cfg) if isinstance(a.threshold, Setting) \
                else float(a.threshold)
            if o is not None and o.threshold is not None:
                threshold = o.threshold
            for_s = o.for_s if o is not None and o.for_s is not None else a.for_s
            out.append(ResolvedAlert(a.name, m, a.op, threshold, a.kind, for_s, a.window_s,
                                     a.severity, a.summary))
    return out


def alert_names() -> list[str]:
    return [a.name for m in METRICS for a in m.alerts]


def collect(doc: r.Doc) -> list[tuple[Metric, list[r.AnySample]]]:
    """Every metric's samples from one monitoring document. A reader that trips on
    an odd document loses its own metric, never the whole scrape."""
    out: list[tuple[Metric, list[r.AnySample]]] = []
    for m in METRICS:
        try:
            samples = list(m.read(doc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("metric %s: cannot read it from the status: %s", m.name, exc)
            continue
        out.append((m, samples))
    return out


def samples(doc: r.Doc) -> list[r.AnySample]:
    return [s for _, ss in collect(doc) for s in ss]
