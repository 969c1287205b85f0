"""Dashboards as code: one list of panels over the catalogue's metrics,
rendered as a CloudWatch dashboard body, an Azure Monitor workbook and a
Grafana dashboard (Prometheus data source). A panel's threshold lines are the
alerts of its metric, so a dashboard shows exactly where the alerts fire.
Pure: each function returns a document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from crosswind.observability.catalogue import BY_NAME, Metric, resolved_alerts
from crosswind.observability.rules import kql_series

if TYPE_CHECKING:
    from crosswind.config import Config

View = Literal["value", "rate", "stat"]


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    metric: str
    view: View = "value"
    #: the labels to draw one line per (a subset of the metric's)
    by: tuple[str, ...] = ()

    @property
    def m(self) -> Metric:
        return BY_NAME[self.metric]


PANELS: tuple[Panel, ...] = (
    Panel("Migration phase", "crosswind_migration_phase", "stat", ("phase",)),
    Panel("Replicating", "crosswind_replication_direction", "stat", ("direction",)),
    Panel("Lag p99 per stream (s)", "crosswind_replication_lag_p99_seconds", by=("stream",)),
    Panel("Lag against the SLO (1 = at the SLO)", "crosswind_replication_lag_slo_ratio"),
    Panel("Changes applied per stream (/s)", "crosswind_changes_applied_total", "rate",
          ("stream",)),
    Panel("Bytes copied (/s)", "crosswind_object_bytes_total", "rate", ("direction",)),
    Panel("Backlog per stream", "crosswind_backlog", by=("stream",)),
    Panel("Oldest pending change (s)", "crosswind_oldest_pending_change_seconds"),
    Panel("DLQ open entries by kind", "crosswind_dlq_entries", by=("kind",)),
    Panel("DLQ open entries", "crosswind_dlq_open_entries"),
    Panel("Circuit breakers not closed", "crosswind_breaker_open", by=("endpoint",)),
    Panel("Latency against its baseline", "crosswind_request_latency_baseline_ratio",
          by=("endpoint", "operation")),
    Panel("Request latency (s)", "crosswind_request_latency_seconds",
          by=("endpoint", "operation")),
    Panel("Auth failures (/s)", "crosswind_auth_failures_total", "rate", ("endpoint",)),
    Panel("Worker utilisation", "crosswind_worker_utilisation_ratio"),
    Panel("Connection pool utilisation", "crosswind_connection_pool_utilisation_ratio",
          by=("endpoint",)),
    Panel("Validation completeness", "crosswind_validation_completeness_ratio",
          by=("direction",)),
    Panel("Validation pass rate", "crosswind_validation_pass_rate_ratio", by=("direction",)),
    Panel("Reconcile drift", "crosswind_reconcile_drift", by=("kind",)),
    Panel("Rollback triggers fired", "crosswind_rollback_trigger_firing", by=("trigger",)),
    Panel("Last rollback RTO (s)", "crosswind_rollback_rto_seconds", "stat"),
    Panel("Last cutover duration (s)", "crosswind_cutover_duration_seconds", "stat"),
    Panel("AWS quota use", "crosswind_aws_quota_usage_ratio", by=("quota",)),
)


def _thresholds(cfg: Config | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for a in resolved_alerts(cfg):
        if a.kind == "value":
            out.setdefault(a.metric.name, []).append(a.threshold)
    return out


# -- Grafana (Prometheus) ----------------------------------------------------------------

def promql(p: Panel) -> str:
    by = f" by ({', '.join(p.by)})" if p.by else ""
    if p.view == "rate":
        return f"sum{by} (rate({p.metric}[5m]))"
    return f"max{by} ({p.metric})"


_GRAFANA_UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit", "count": "short",
                  "info": "short"}


def grafana(cfg: Config | None = None) -> dict[str, Any]:
    lines = _thresholds(cfg)
    panels = []
    for i, p in enumerate(PANELS):
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        steps += [{"color": "red", "value": t} for t in sorted(lines.get(p.metric, []))]
        unit = "Bps" if p.view == "rate" and p.m.unit == "bytes" else \
            "ops" if p.view == "rate" else _GRAFANA_UNITS[p.m.unit]
        panels.append({
            "id": i + 1, "title": p.title, "description": p.m.help,
            "type": "stat" if p.view == "stat" else "timeseries",
            "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "targets": [{"refId": "A", "expr": promql(p),
                         "legendFormat": " ".join("{{" + b + "}}" for b in p.by) or p.metric}],
            "fieldConfig": {"defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line"}} if p.view != "stat" else {},
            }, "overrides": []},
        })
    return {
        "title": "crosswind", "uid": "crosswind", "tags": ["crosswind", "migration"],
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels,
    }


# -- CloudWatch --------------------------------------------------------------------------

def _search(ns: str, p: Panel, extra: dict[str, str], stat: str) -> str:
    schema = ",".join([ns, *sorted(extra), *p.m.labels])
    terms = [f'MetricName="{p.metric}"'] + [f'{k}="{v}"' for k, v in sorted(extra.items())]
    return f"SEARCH('{{{schema}}} {' '.join(terms)}', '{stat}', 60)"


def cloudwatch_dashboard(cfg: Config | None = None) -> dict[str, Any]:
    ns = cfg.monitoring.cloudwatch_namespace if cfg is not None else "Crosswind"
    region = cfg.aws.region if cfg is not None else "us-east-1"
    extra = dict(cfg.monitoring.cloudwatch_dimensions) if cfg is not None else {}
    lines = _thresholds(cfg)
    widgets = [{"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {
        "markdown": "# crosswind\nAzure ⇄ AWS migration: replication, cutover and rollback. "
                    "Red lines are the alert thresholds."}}]
    for i, p in enumerate(PANELS):
        stat = "Sum" if p.view == "rate" else "Maximum"
        props: dict[str, Any] = {
            "title": p.title + (" — per minute" if p.view == "rate" else ""),
            "region": region, "stat": stat, "period": 60,
            "view": "singleValue" if p.view == "stat" else "timeSeries",
            "metrics": [[{"expression": _search(ns, p, extra, stat), "id": "e1",
                          "label": p.metric}]],
        }
        if lines.get(p.metric):
            props["annotations"] = {"horizontal": [
                {"label": "alert", "value": t, "color": "#d62728"}
                for t in sorted(lines[p.metric])]}
        widgets.append({"type": "metric", "x": (i % 2) * 12, "y": 2 + (i // 2) * 6,
                        "width": 12, "height": 6, "properties": props})
    return {"widgets": widgets}


# -- Azure Monitor workbook ----------------------------------------------------------------

def kql(p: Panel) -> str:
    by = "".join(f", {b}" for b in p.by)
    base = kql_series(p.metric, p.by)
    if p.view == "rate":
        return base + f"\n| summarize per_second = sum(valueSum) / 60.0 by bin(timestamp, 1m){by}"
    return base + f"\n| summarize value = max(value) by bin(timestamp, 1m){by}"


def azure_workbook(cfg: Config | None = None) -> dict[str, Any]:
    lines = _thresholds(cfg)
    items: list[dict[str, Any]] = [{"type": 1, "name": "title", "content": {
        "json": "# crosswind\nAzure ⇄ AWS migration: replication, cutover and rollback, from "
                "the OpenTelemetry metrics in Application Insights (customMetrics)."}}]
    for i, p in enumerate(PANELS):
        title = p.title + (f" — alert at {', '.join(f'{t:g}' for t in lines[p.metric])}"
                           if lines.get(p.metric) else "")
        items.append({"type": 3, "name": f"panel-{i + 1}", "content": {
            "version": "KqlItem/1.0", "query": kql(p), "size": 0, "title": title,
            "timeContext": {"durationMs": 21_600_000}, "queryType": 0,
            "resourceType": "microsoft.insights/components",
            "visualization": "tiles" if p.view == "stat" else "timechart"},
            "customWidth": "50"})
    return {"version": "Notebook/1.0", "items": items, "fallbackResourceIds": [],
            "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/"
                       "master/schema/workbook.json"}
