"""``crosswind monitoring export``: every generated artefact, written to a
directory (write-then-rename, so a half-written file never replaces a good one).

    prometheus/crosswind-alerts.yml        alerting rules (promtool check rules)
    prometheus/crosswind-alerts.test.yml   their unit tests (promtool test rules)
    grafana/crosswind-dashboard.json       a Grafana dashboard (Prometheus data source)
    cloudwatch/dashboard.json              a CloudWatch dashboard body
    cloudwatch/alarms.json                 PutMetricAlarm requests
    azure/workbook.json                    an Azure Monitor workbook
    azure/alert-rules.json                 an ARM template of log search alert rules
    metrics.json                           the catalogue itself (names, types, labels, alerts)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from crosswind.observability import dashboards, rules
from crosswind.observability.catalogue import METRICS, resolved_alerts

if TYPE_CHECKING:
    from crosswind.config import Config

RULES = "prometheus/crosswind-alerts.yml"
RULE_TESTS = "prometheus/crosswind-alerts.test.yml"
DASHBOARD_NAME = "crosswind"


def catalogue_document(cfg: Config | None = None) -> dict[str, Any]:
    alerts = {a.name: a for a in resolved_alerts(cfg)}
    return {"metrics": [
        {"name": m.name, "type": m.type, "unit": m.unit, "labels": list(m.labels),
         "help": m.help, "source": m.source,
         "alerts": [{"name": a.name, "kind": a.kind, "op": a.op,
                     "threshold": alerts[a.name].threshold, "for_s": alerts[a.name].for_s,
                     "window_s": a.window_s, "severity": a.severity}
                    for a in m.alerts if a.name in alerts]}
        for m in METRICS]}


def artefacts(cfg: Config | None = None) -> dict[str, str]:
    """Relative path → file text."""
    def js(doc: Any) -> str:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

    def yml(doc: Any) -> str:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)

    return {
        RULES: yml(rules.prometheus_rules(cfg)),
        RULE_TESTS: yml(rules.promtool_tests(Path(RULES).name, cfg)),
        "grafana/crosswind-dashboard.json": js(dashboards.grafana(cfg)),
        "cloudwatch/dashboard.json": js(dashboards.cloudwatch_dashboard(cfg)),
        "cloudwatch/alarms.json": js(rules.cloudwatch_alarms(cfg)),
        "azure/workbook.json": js(dashboards.azure_workbook(cfg)),
        "azure/alert-rules.json": js(rules.azure_alert_rules(cfg)),
        "metrics.json": js(catalogue_document(cfg)),
    }


def write_artefacts(out: Path, cfg: Config | None = None) -> list[Path]:
    written = []
    for rel, text in artefacts(cfg).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def apply_cloudwatch(cfg: Config) -> dict[str, Any]:
    """Put the CloudWatch dashboard and alarms (``--apply``)."""
    from crosswind.observability.aws import client
    from crosswind.observability.cloudwatch import put_dashboards_and_alarms

    name = f"{cfg.monitoring.alarm_prefix}{DASHBOARD_NAME}"
    return put_dashboards_and_alarms(client(cfg.aws, "cloudwatch"),
                                     {name: dashboards.cloudwatch_dashboard(cfg)},
                                     rules.cloudwatch_alarms(cfg))


def metric_table() -> str:
    """The README's metric table (a test keeps the README equal to it)."""
    rows = ["| metric | type | labels | meaning | from |", "|---|---|---|---|---|"]
    for m in METRICS:
        labels = ", ".join(f"`{k}`" for k in m.labels) or "–"
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {m.help} | {m.source} |")
    return "\n".join(rows) + "\n"


def alert_table(cfg: Config | None = None) -> str:
    """The README's alert table: defaults of the catalogue (a test keeps it equal)."""
    from crosswind.observability.rules import describe

    rows = ["| alert | fires when | severity |", "|---|---|---|"]
    for a in resolved_alerts(cfg):
        rows.append(f"| `{a.name}` | {a.summary}: `{describe(a)}` | {a.severity} |")
    return "\n".join(rows) + "\n"
