"""Alert rules for the real systems, generated from the catalogue's alerts
(``resolved_alerts``: thresholds and durations with the config applied), so
Prometheus, CloudWatch, Azure Monitor and the service itself fire at the same
values. Pure: each function returns documents; the CLI writes or puts them.

* Prometheus: an alerting rule group (``promtool check rules``) and its unit
  tests (``promtool test rules``): per alert, a series at the threshold fires
  and one just short of it does not.
* CloudWatch: ``PutMetricAlarm`` requests on the crosswind namespace. A
  labelled metric is alarmed on its roll-up series (no label dimensions), which
  the CloudWatch exporter publishes next to the labelled ones.
* Azure Monitor: an ARM template of log search alert rules
  (``Microsoft.Insights/scheduledQueryRules``) over the ``customMetrics`` table
  the OpenTelemetry exporter fills in Application Insights.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from crosswind.observability.catalogue import ResolvedAlert, resolved_alerts

if TYPE_CHECKING:
    from crosswind.config import Config

GROUP = "crosswind"
#: example label values for a labelled metric's test series
_EXAMPLE_LABELS = {"endpoint": "s3", "operation": "put", "stream": "azure-blob-events",
                   "kind": "objects", "direction": "azure-to-aws", "trigger": "lag",
                   "quota": "vpc-network-interfaces", "phase": "post_cutover",
                   "mode": "service", "outcome": "ok"}


def duration(seconds: float) -> str:
    """Prometheus duration: ``5m``, ``90s``, ``0s``."""
    s = math.ceil(seconds)
    return f"{s // 60}m" if s and s % 60 == 0 else f"{s}s"


def _num(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def promql(a: ResolvedAlert) -> str:
    m = a.metric.name
    if a.kind == "increase":
        left = f"increase({m}[{duration(a.window_s)}])"
    elif a.kind == "growth":
        left = f"{m} - min_over_time({m}[{duration(a.window_s)}])"
    else:
        left = m
    return f"{left} {a.op} {_num(a.threshold)}"


def describe(a: ResolvedAlert) -> str:
    what = {"value": a.metric.name,
            "increase": f"the increase of {a.metric.name} over {duration(a.window_s)}",
            "growth": f"the rise of {a.metric.name} over {duration(a.window_s)}"}[a.kind]
    held = f" for {duration(a.for_s)}" if a.for_s else ""
    return f"{what} {a.op} {_num(a.threshold)}{held}"


def _annotations(a: ResolvedAlert) -> dict[str, str]:
    return {"summary": f"crosswind: {a.summary}", "description": describe(a)}


def prometheus_rules(cfg: Config | None = None) -> dict[str, Any]:
    rules = []
    for a in resolved_alerts(cfg):
        rule: dict[str, Any] = {"alert": a.name, "expr": promql(a)}
        if a.for_s:
            rule["for"] = duration(a.for_s)
        rule["labels"] = {"severity": a.severity}
        rule["annotations"] = _annotations(a)
        rules.append(rule)
    return {"groups": [{"name": GROUP, "interval": "1m", "rules": rules}]}


def _series(a: ResolvedAlert) -> dict[str, str]:
    return {k: _EXAMPLE_LABELS.get(k, "x") for k in a.metric.labels}


def _selector(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _short_of(a: ResolvedAlert) -> float:
    """A value just short of the threshold on the side that does not fire."""
    if a.kind != "value":
        return max(0.0, a.threshold - 1.0)  # counters and DLQ sizes move in whole steps
    step = max(abs(a.threshold) * 0.001, 1e-6)
    return float(f"{a.threshold - step:.10g}") if a.op == ">=" else a.threshold


def _firing(a: ResolvedAlert) -> float:
    if a.op == ">=" or a.kind != "value":
        return a.threshold
    return float(f"{a.threshold - max(abs(a.threshold) * 0.001, 1e-6):.10g}")


def _values(a: ResolvedAlert, value: float) -> str:
    if a.kind == "value":
        return f"{_num(value)}x30"
    # a counter / gauge at 0 for 10 minutes, then up by `value`
    return f"0x10 {_num(value)}x20"


def _eval_time(a: ResolvedAlert) -> str:
    if a.kind == "value":
        return duration(60 * (math.ceil(a.for_s / 60) + 2))
    return "12m"


def promtool_tests(rule_file: str, cfg: Config | None = None) -> dict[str, Any]:
    """``promtool test rules`` input: each alert fires at its threshold (held long
    enough) and stays silent just short of it."""
    tests = []
    for a in resolved_alerts(cfg):
        labels = _series(a)
        series = _selector(a.metric.name, labels)
        exp = {"exp_labels": {**labels, "severity": a.severity},
               "exp_annotations": _annotations(a)}
        for value, alerts in ((_firing(a), [exp]), (_short_of(a), [])):
            tests.append({
                "name": f"{a.name} at {_num(value)}: {'fires' if alerts else 'silent'}",
                "interval": "1m",
                "input_series": [{"series": series, "values": _values(a, value)}],
                "alert_rule_test": [{"eval_time": _eval_time(a), "alertname": a.name,
                                     "exp_alerts": alerts}],
            })
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


# -- CloudWatch ------------------------------------------------------------------------

def _cw_dims(cfg: Config | None) -> list[dict[str, str]]:
    dims = cfg.monitoring.cloudwatch_dimensions if cfg is not None else {}
    return [{"Name": k, "Value": v} for k, v in sorted(dims.items())]


def cloudwatch_alarms(cfg: Config | None = None) -> list[dict[str, Any]]:
    """``PutMetricAlarm`` keyword arguments, one per alert (plus the Lambda
    concurrency monitor with ``[monitoring] quotas``)."""
    ns = cfg.monitoring.cloudwatch_namespace if cfg is not None else "Crosswind"
    prefix = cfg.monitoring.alarm_prefix if cfg is not None else ""
    actions = list(cfg.monitoring.cloudwatch_alarm_actions) if cfg is not None else []
    dims = _cw_dims(cfg)
    out: list[dict[str, Any]] = []
    for a in resolved_alerts(cfg):
        common: dict[str, Any] = {
            "AlarmName": f"{prefix}{a.name}", "AlarmDescription": f"{a.summary} ({describe(a)})",
            "ActionsEnabled": bool(actions), "AlarmActions": actions, "OKActions": actions,
            "Threshold": a.threshold, "TreatMissingData": "notBreaching",
            "ComparisonOperator": ("GreaterThanOrEqualToThreshold" if a.op == ">="
                                   else "LessThanThreshold"),
        }
        if a.kind == "growth":
            period = 300
            periods = max(1, math.ceil(a.window_s / period))
            out.append({**common, "EvaluationPeriods": periods, "DatapointsToAlarm": 1,
                        "Metrics": [
                            {"Id": "m1", "ReturnData": False, "MetricStat": {
                                "Metric": {"Namespace": ns, "MetricName": a.metric.name,
                                           "Dimensions": dims},
                                "Period": period, "Stat": "Maximum"}},
                            {"Id": "e1", "Expression": "DIFF(m1)", "ReturnData": True,
                             "Label": f"rise of {a.metric.name} per {period // 60} min"}]})
            continue
        if a.kind == "increase":
            # counters reach CloudWatch as what they grew by since the last put
            period, stat, periods = max(60, int(a.window_s)), "Sum", 1
        else:
            period, stat = 60, "Maximum" if a.op == ">=" else "Minimum"
            periods = max(1, math.ceil(a.for_s / period))
        out.append({**common, "Namespace": ns, "MetricName": a.metric.name,
                    "Dimensions": dims, "Statistic": stat, "Period": period,
                    "EvaluationPeriods": periods, "DatapointsToAlarm": periods})
    if cfg is not None and cfg.monitoring.quotas:
        quota = cfg.monitoring.lambda_concurrency_quota
        out.append({
            "AlarmName": f"{prefix}CrosswindLambdaConcurrencyHigh",
            "AlarmDescription": f"Lambda concurrent executions at 70 % of the account quota "
                                f"({quota})",
            "ActionsEnabled": bool(actions), "AlarmActions": actions, "OKActions": actions,
            "Namespace": "AWS/Lambda", "MetricName": "ConcurrentExecutions", "Dimensions": [],
            "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 3,
            "DatapointsToAlarm": 3, "Threshold": math.floor(0.7 * quota),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching"})
    return out


# -- Azure Monitor -----------------------------------------------------------------------

def kql_series(name: str, labels: tuple[str, ...]) -> str:
    """The ``customMetrics`` rows of one crosswind metric, its labels as columns."""
    q = f'customMetrics\n| where name == "{name}"'
    for label in labels:
        q += f'\n| extend {label} = tostring(customDimensions["{label}"])'
    return q


def _iso_duration(seconds: float) -> str:
    s = max(60, math.ceil(seconds))
    if s % 3600 == 0:
        return f"PT{s // 3600}H"
    return f"PT{math.ceil(s / 60)}M"


def azure_alert_rules(cfg: Config | None = None) -> dict[str, Any]:
    """An ARM template: one log search alert rule per alert, on the Application
    Insights resource the exporter writes to (parameter ``appInsightsId``)."""
    prefix = cfg.monitoring.alarm_prefix if cfg is not None else ""
    resources = []
    for a in resolved_alerts(cfg):
        labels = a.metric.labels
        by = f" by {', '.join(labels)}" if labels else ""
        base = kql_series(a.metric.name, labels)
        if a.kind == "increase":
            # counters arrive as deltas: their sum over the window is the increase
            query = base + f"\n| summarize measure = sum(valueSum){by}"
            agg, window = "Total", a.window_s
        elif a.kind == "growth":
            query = (base + f"\n| summarize arg_max(timestamp, value), low = min(value){by}"
                     "\n| extend measure = value - low")
            agg, window = "Maximum", a.window_s
        else:
            query = base + "\n| extend measure = value"
            agg = "Maximum" if a.op == ">=" else "Minimum"
            window = max(60.0, a.for_s)
        criteria: dict[str, Any] = {
            "query": query, "timeAggregation": agg, "metricMeasureColumn": "measure",
            "operator": "GreaterThanOrEqual" if a.op == ">=" else "LessThan",
            "threshold": a.threshold,
            "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
        }
        if labels:
            criteria["dimensions"] = [{"name": k, "operator": "Include", "values": ["*"]}
                                      for k in labels]
        resources.append({
            "type": "Microsoft.Insights/scheduledQueryRules",
            "apiVersion": "2021-08-01",
            "name": f"[concat(parameters('prefix'), '{prefix}{a.name}')]",
            "location": "[parameters('location')]",
            "properties": {
                "displayName": f"{prefix}{a.name}",
                "description": f"{a.summary} ({describe(a)})",
                "severity": 1 if a.severity == "page" else 3,
                "enabled": True,
                "evaluationFrequency": "PT1M",
                "windowSize": _iso_duration(window),
                "scopes": ["[parameters('appInsightsId')]"],
                "criteria": {"allOf": [criteria]},
                "autoMitigate": True,
                "actions": {"actionGroups": "[parameters('actionGroupIds')]"},
            },
        })
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/"
                   "deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "appInsightsId": {"type": "string", "metadata": {
                "description": "Resource id of the Application Insights component the "
                               "crosswind exporter writes to"}},
            "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
            "actionGroupIds": {"type": "array", "defaultValue": []},
            "prefix": {"type": "string", "defaultValue": ""},
        },
        "resources": resources,
    }
