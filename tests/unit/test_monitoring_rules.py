"""Alert rules and dashboards generated from the catalogue: Prometheus rules
pass ``promtool check rules`` and their generated unit tests (each alert fires
at its threshold and not short of it) pass ``promtool test rules`` — and fail
when a threshold is moved; CloudWatch alarms, Azure alert rules and the
dashboards cover every alert with the same thresholds."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from crosswind.config import parse_config
from crosswind.observability import dashboards, rules
from crosswind.observability.catalogue import BY_NAME, resolved_alerts
from crosswind.observability.export import RULE_TESTS, RULES, write_artefacts

PROMTOOL = shutil.which("promtool")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool is missing: make setup installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    write_artefacts(out)
    return out


def test_the_rules_pass_promtool_check_and_their_unit_tests(exported: Path) -> None:
    check = promtool("check", "rules", RULES, cwd=exported)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(resolved_alerts())} rules found" in check.stdout
    test = promtool("test", "rules", RULE_TESTS, cwd=exported)
    assert test.returncode == 0, test.stdout + test.stderr
    doc = yaml.safe_load((exported / RULE_TESTS).read_text())
    # two cases per alert: at the threshold it fires, just short of it it does not
    names = [t["name"] for t in doc["tests"]]
    assert len(names) == 2 * len(resolved_alerts())
    assert sum(n.endswith("fires") for n in names) == len(resolved_alerts())


@pytest.mark.parametrize("factor", [0.98, 1.02])
def test_the_promtool_tests_catch_a_moved_threshold(exported: Path, tmp_path: Path,
                                                    factor: float) -> None:
    """Move every threshold in the rules' expressions (only there: the annotations
    stay as they were) by 2 %: the generated tests must fail for every alert."""
    text = (exported / RULES).read_text()

    def moved(m: re.Match[str]) -> str:
        return f"{m.group(1)}{float(m.group(2)) * factor!r}"

    mutated = re.sub(r"(expr: .*(?:>=|<) )([0-9.]+)", moved, text)
    assert mutated != text
    (tmp_path / Path(RULES).name).write_text(mutated)
    (tmp_path / "t.yml").write_text((exported / RULE_TESTS).read_text())
    result = promtool("test", "rules", "t.yml", cwd=tmp_path)
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (\w+)", result.stdout + result.stderr))
    # increase/growth alerts compare whole steps: 2 % cannot move them across one
    value_alerts = {a.name for a in resolved_alerts() if a.kind == "value"}
    assert value_alerts <= failed


def test_config_thresholds_reach_every_backend(tmp_path: Path) -> None:
    import tomllib

    cfg = parse_config(tomllib.loads(
        '[azure]\nconnection_string = "UseDevelopmentStorage=true"\ncontainer = "c"\n'
        'emulator = true\n[aws]\nbucket = "b"\n[validation]\ncompleteness_target = 99.0\n'
        '[monitoring]\ncloudwatch_namespace = "Estate/Flights"\nalarm_prefix = "flights-"\n'
        'cloudwatch_dimensions = {Estate = "flights"}\n'
        'cloudwatch_alarm_actions = ["arn:aws:sns:us-east-1:123456789012:pager"]\n'
        'quotas = true\nlambda_concurrency_quota = 2000\n'
        '[monitoring.alerts.CrosswindWorkersSaturated]\nthreshold = 0.8\n'), tmp_path)
    prom = {r["alert"]: r for r in rules.prometheus_rules(cfg)["groups"][0]["rules"]}
    assert prom["CrosswindCompletenessBelowTarget"]["expr"] == \
        "crosswind_validation_completeness_ratio < 0.99"
    assert prom["CrosswindWorkersSaturated"]["expr"] == \
        "crosswind_worker_utilisation_ratio >= 0.8"
    alarms = {a["AlarmName"]: a for a in rules.cloudwatch_alarms(cfg)}
    w = alarms["flights-CrosswindWorkersSaturated"]
    assert w["Threshold"] == 0.8 and w["Namespace"] == "Estate/Flights"
    assert w["Dimensions"] == [{"Name": "Estate", "Value": "flights"}]
    assert w["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:pager"]
    lam = alarms["flights-CrosswindLambdaConcurrencyHigh"]
    assert lam["Namespace"] == "AWS/Lambda" and lam["Threshold"] == 1400
    arm = rules.azure_alert_rules(cfg)
    crit = {r["properties"]["displayName"]: r["properties"]["criteria"]["allOf"][0]
            for r in arm["resources"]}
    assert crit["flights-CrosswindCompletenessBelowTarget"]["threshold"] == pytest.approx(0.99)
    assert crit["flights-CrosswindCompletenessBelowTarget"]["operator"] == "LessThan"
    assert crit["flights-CrosswindWorkersSaturated"]["threshold"] == 0.8
    board = dashboards.cloudwatch_dashboard(cfg)
    search = json.dumps(board)
    assert "{Estate/Flights,Estate" in search and 'Estate=\\"flights\\"' in search


def test_every_alert_is_in_every_backend_with_its_threshold() -> None:
    alerts = {a.name: a for a in resolved_alerts()}
    prom = {r["alert"]: r for r in rules.prometheus_rules()["groups"][0]["rules"]}
    alarms = {a["AlarmName"]: a for a in rules.cloudwatch_alarms()}
    arm = {r["properties"]["displayName"]: r for r in rules.azure_alert_rules()["resources"]}
    assert set(prom) == set(alarms) == set(arm) == set(alerts)
    for name, a in alerts.items():
        assert prom[name]["expr"].endswith(f" {a.op} {rules._num(a.threshold)}")
        assert alarms[name]["Threshold"] == a.threshold
        assert alarms[name]["ComparisonOperator"] == (
            "GreaterThanOrEqualToThreshold" if a.op == ">=" else "LessThanThreshold")
        crit = arm[name]["properties"]["criteria"]["allOf"][0]
        assert crit["threshold"] == a.threshold
        assert crit["operator"] == ("GreaterThanOrEqual" if a.op == ">=" else "LessThan")
        assert f'name == "{a.metric.name}"' in crit["query"]
        if a.metric.labels:  # one Azure alert per label set, like Prometheus
            assert [d["name"] for d in crit["dimensions"]] == list(a.metric.labels)
    # a for_s of 5 minutes is 5 one-minute periods in CloudWatch
    assert alarms["CrosswindWorkersSaturated"]["EvaluationPeriods"] == 5
    assert alarms["CrosswindAuthFailures"]["Statistic"] == "Sum"
    assert alarms["CrosswindDLQGrowing"]["Metrics"][1]["Expression"] == "DIFF(m1)"


def test_the_arm_template_is_deployable_json() -> None:
    arm = rules.azure_alert_rules()
    assert arm["$schema"].endswith("deploymentTemplate.json#")
    assert set(arm["parameters"]) == {"appInsightsId", "location", "actionGroupIds", "prefix"}
    for r in arm["resources"]:
        assert r["type"] == "Microsoft.Insights/scheduledQueryRules"
        p = r["properties"]
        assert re.fullmatch(r"PT\d+[MH]", p["windowSize"]) and p["scopes"]
        assert p["criteria"]["allOf"][0]["metricMeasureColumn"] == "measure"
        assert "| extend measure" in p["criteria"]["allOf"][0]["query"] or \
            "summarize measure" in p["criteria"]["allOf"][0]["query"]


def test_dashboards_show_every_alerting_metric_with_its_threshold() -> None:
    for p in dashboards.PANELS:
        assert p.metric in BY_NAME
        assert set(p.by) <= set(p.m.labels)
    on_panels = {p.metric for p in dashboards.PANELS}
    value_alerts = [a for a in resolved_alerts() if a.kind == "value"]
    assert {a.metric.name for a in resolved_alerts()} <= on_panels
    g = dashboards.grafana()
    assert len(g["panels"]) == len(dashboards.PANELS)
    steps = {p["targets"][0]["expr"]: p["fieldConfig"]["defaults"]["thresholds"]["steps"]
             for p in g["panels"]}
    for a in value_alerts:
        expr = next(e for e in steps if a.metric.name in e)
        assert a.threshold in [s["value"] for s in steps[expr]]
    cw = dashboards.cloudwatch_dashboard()
    metric_widgets = [w for w in cw["widgets"] if w["type"] == "metric"]
    assert len(metric_widgets) == len(dashboards.PANELS)
    for w in metric_widgets:
        assert all(k in w for k in ("x", "y", "width", "height"))
        assert w["properties"]["metrics"][0][0]["expression"].startswith("SEARCH(")
    lines = [h["value"] for w in metric_widgets
             for h in w["properties"].get("annotations", {}).get("horizontal", [])]
    assert 0.7 in lines and 1.2 in lines
    wb = dashboards.azure_workbook()
    assert wb["version"] == "Notebook/1.0"
    queries = [i["content"]["query"] for i in wb["items"] if i["type"] == 3]
    assert len(queries) == len(dashboards.PANELS)
    assert all(q.startswith("customMetrics") for q in queries)


def test_export_writes_every_file(exported: Path) -> None:
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file())
    assert files == sorted([RULES, RULE_TESTS, "grafana/crosswind-dashboard.json",
                            "cloudwatch/dashboard.json", "cloudwatch/alarms.json",
                            "azure/workbook.json", "azure/alert-rules.json", "metrics.json"])
    catalogue = json.loads((exported / "metrics.json").read_text())
    assert len(catalogue["metrics"]) == len(BY_NAME)
