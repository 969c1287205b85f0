"""The exporters against real servers: CloudWatch on moto (batches within the
API's limits, the values CloudWatch then holds, dashboards and alarms put by
``monitoring export --apply``, the quota monitors where moto has the APIs), Azure
Monitor through OpenTelemetry to a local ingestion receiver that checks the
payload, and the one-shot side: ``crosswind metrics --once`` after known runs,
``crosswind dashboard`` from the state store alone (in Chromium), its token."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crosswind.observability.azure_monitor import AzureMonitorExporter
from crosswind.observability.catalogue import samples
from crosswind.observability.cloudwatch import (
    MAX_DATA_PER_REQUEST,
    CloudWatchExporter,
)
from crosswind.observability.quotas import check_quotas
from crosswind.observability.readers import Sample
from crosswind.observability.rules import cloudwatch_alarms
from crosswind.rig.emulators import Moto
from tests.integration.conftest import Env, unique
from tests.integration.monitoring_rig import (
    Receiver,
    artefact_dir,
    browser,
    get_json,
    get_text,
    http_open,
    receiver,
)
from tests.unit.monitoring_fixtures import known_document

__all__ = ["browser", "receiver"]  # fixtures

pytestmark = pytest.mark.integration


def aws(moto: Moto, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto.endpoint, aws_access_key_id="test",
                        aws_secret_access_key="test", region_name="us-east-1")


def cli(env: Env, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args, "-c",
                           str(env.config_path)], capture_output=True, text=True,
                          timeout=300, **kw)


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


# -- CloudWatch --------------------------------------------------------------------------

def test_cloudwatch_batches_on_moto_within_the_limits_and_with_the_values(moto: Moto) -> None:
    client = aws(moto, "cloudwatch")
    sizes: list[tuple[int, int]] = []

    def measure(request: Any, **_: Any) -> None:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        if request.headers.get("Content-Encoding") in (b"gzip", "gzip"):  # botocore gzips them
            body = gzip.decompress(body)
        # the uncompressed request, however it is encoded (query, JSON or CBOR)
        sizes.append((len(body), body.count(b"MetricName")))

    client.meta.events.register("before-send.cloudwatch.PutMetricData", measure)
    ns = unique("Crosswind")
    ex = CloudWatchExporter(client, ns, {"Estate": "flights"})
    doc = known_document()
    ex.put(samples(doc))  # sets the counters' base
    doc["status"]["streams"][0]["applied"] = 29  # 25 more than the base
    many = [Sample("crosswind_backlog", (("stream", f"s{i:04d}-" + "x" * 300),
                                          ("kind", "objects")), float(i)) for i in range(2300)]
    sizes.clear()
    got = ex.put([*samples(doc), *many])
    assert got["requests"] == len(sizes) >= 3
    for size, count in sizes:
        assert size <= 1_000_000
        assert count <= MAX_DATA_PER_REQUEST
    assert sum(c for _, c in sizes) == got["datums"]

    def stat(name: str, dims: list[dict[str, str]], statistic: str) -> float:
        now = datetime.now(UTC)
        points = client.get_metric_statistics(
            Namespace=ns, MetricName=name, Dimensions=dims, StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5), Period=3600, Statistics=[statistic])
        return float(sum(p[statistic] for p in points["Datapoints"]))

    estate = [{"Name": "Estate", "Value": "flights"}]
    assert stat("crosswind_worker_utilisation_ratio", estate, "Maximum") == 0.75
    labelled = [{"Name": "stream", "Value": "azure-blob-events"},
                {"Name": "kind", "Value": "objects"}, *estate]
    assert stat("crosswind_changes_applied_total", labelled, "Sum") == 25
    # the roll-up (no label dimensions) that the alarms watch
    assert stat("crosswind_breaker_open", estate, "Maximum") == 1
    listed = client.list_metrics(Namespace=ns, MetricName="crosswind_backlog")["Metrics"]
    assert len(listed) >= 100


def test_monitoring_export_apply_puts_dashboard_and_alarms_to_moto(
        make_env: Callable[..., Env], moto: Moto, tmp_path: Path) -> None:
    prefix = unique("cw") + "-"
    env = make_env(extra=f'\n[monitoring]\nalarm_prefix = "{prefix}"\nquotas = true\n'
                         'cloudwatch_namespace = "Crosswind/Test"\n')
    out = tmp_path / "export"
    p = cli(env, "monitoring", "export", "--out", str(out), "--apply", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    client = aws(moto, "cloudwatch")
    alarms = client.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    expected = cloudwatch_alarms(env.config)
    assert sorted(a["AlarmName"] for a in alarms) == sorted(a["AlarmName"] for a in expected)
    assert sorted(report["cloudwatch"]["alarms"]) == sorted(a["AlarmName"] for a in expected)
    by_name = {a["AlarmName"]: a for a in alarms}
    w = by_name[f"{prefix}CrosswindWorkersSaturated"]
    assert w["Threshold"] == 0.7 and w["Namespace"] == "Crosswind/Test"
    assert w["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert w["EvaluationPeriods"] == 5
    lam = by_name[f"{prefix}CrosswindLambdaConcurrencyHigh"]
    assert lam["Namespace"] == "AWS/Lambda" and lam["Threshold"] == 700
    # a metric-math alarm: the DLQ growing
    dlq = client.describe_alarms(AlarmNames=[f"{prefix}CrosswindDLQGrowing"],
                                 AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    assert dlq and any(m.get("Expression") == "DIFF(m1)" for m in dlq[0]["Metrics"])
    body = client.get_dashboard(DashboardName=f"{prefix}crosswind")["DashboardBody"]
    assert json.loads(body) == json.loads((out / "cloudwatch/dashboard.json").read_text())


def test_quota_monitors_where_moto_has_the_apis(moto: Moto) -> None:
    ec2 = aws(moto, "ec2")
    before = len(ec2.describe_network_interfaces()["NetworkInterfaces"])
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    for _ in range(3):
        ec2.create_network_interface(SubnetId=subnet)
    got = {q["quota"]: q for q in check_quotas(lambda s: aws(moto, s), 1000)}
    eni = got["vpc-network-interfaces"]
    assert eni["used"] == before + 3 and eni["limit"] == 5000
    assert eni["ratio"] == pytest.approx((before + 3) / 5000)
    # moto has no Lambda GetAccountSettings: reported as such, never guessed
    lam = got["lambda-concurrency"]
    assert "error" in lam and "ratio" not in lam


# -- Azure Monitor -----------------------------------------------------------------------

def _track(path: str, body: Any) -> tuple[int, Any]:
    items = body if isinstance(body, list) else [body]
    return 200, {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}


def metrics_posted(rec: Receiver) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for body in rec.bodies("/v2.1/track"):
        for env in body if isinstance(body, list) else [body]:
            data = env["data"]["baseData"]
            props = frozenset((data.get("properties") or {}).items())
            for m in data["metrics"]:
                out[(m["name"], props)] = float(m["value"])
    return out


def test_azure_monitor_payload_on_a_local_receiver(receiver: Callable[..., Receiver],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    # the exporter's own usage metrics would go to the receiver too, until process exit
    monkeypatch.setenv("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")
    rec = receiver(_track)
    key = str(uuid.uuid4())
    ex = AzureMonitorExporter(f"InstrumentationKey={key};IngestionEndpoint={rec.url}/",
                              interval_s=3600)
    try:
        doc = known_document()
        ex.update(samples(doc))
        assert ex.flush()
        first = metrics_posted(rec)
        envs = [e for b in rec.bodies("/v2.1/track") for e in (b if isinstance(b, list)
                                                                  else [b])]
        assert envs and all(e["iKey"] == key for e in envs)
        assert all(e["name"].endswith("Metric") for e in envs)
        assert first[("crosswind_worker_utilisation_ratio", frozenset())] == 0.75
        assert first[("crosswind_breaker_open", frozenset({("endpoint", "azure-blob")}))] == 1
        assert first[("crosswind_validation_completeness_ratio",
                      frozenset({("direction", "azure-to-aws")}))] == pytest.approx(0.9985)
        # counters go as deltas: 25 more changes applied → 25
        doc["status"]["streams"][0]["applied"] += 25
        rec.posts.clear()
        ex.update(samples(doc))
        assert ex.flush()
        second = metrics_posted(rec)
        applied = second[("crosswind_changes_applied_total",
                          frozenset({("stream", "azure-blob-events"), ("kind", "objects")}))]
        assert applied == 25
        assert not any(name == "crosswind_replication_lag_seconds" for name, _ in second)
    finally:
        ex.shutdown()


# -- one-shot runs, the dashboard from the state store -------------------------------------

def test_metrics_once_after_known_runs(make_env: Callable[..., Env]) -> None:
    env = make_env()
    sizes = [10 * (i + 1) for i in range(15)]
    for i, n in enumerate(sizes):
        env.container.upload_blob(f"k/{i:02d}", b"z" * n)
    assert cli(env, "sync", "objects", "--direction", "azure-to-aws").returncode == 0
    env.container.upload_blob("k/new", b"n" * 5)
    assert cli(env, "sync", "objects", "--direction", "azure-to-aws").returncode == 0
    v = cli(env, "validate", "--objects")
    assert v.returncode == 0, v.stderr
    p = cli(env, "metrics", "--once")
    assert p.returncode == 0, p.stderr
    m = scraped(p.stdout)

    def oneshot(outcome: str, name: str = "crosswind_objects_total") -> float:
        return m[(name, frozenset({("mode", "oneshot"), ("direction", "azure-to-aws"),
                                   ("outcome", outcome)}))]

    assert oneshot("copied") == 16
    assert oneshot("copied", "crosswind_object_bytes_total") == sum(sizes) + 5
    assert oneshot("skipped") == 15  # the second run found them in step
    assert oneshot("failed") == 0
    d = frozenset({("direction", "azure-to-aws")})
    assert m[("crosswind_validation_completeness_ratio", d)] == 1.0
    assert m[("crosswind_validation_passed", d)] == 1.0
    assert m[("crosswind_service_up", frozenset())] == 0
    assert m[("crosswind_migration_phase", frozenset({("phase", "pre_cutover")}))] == 1
    # --out: a file for node_exporter's textfile collector
    target = env.tmp / "textfile" / "crosswind.prom"
    assert cli(env, "metrics", "--once", "--out", str(target)).returncode == 0
    assert scraped(target.read_text()) == m | {k: v for k, v in scraped(
        target.read_text()).items() if k[0] == "crosswind_build_info"}


class Dashboard:
    def __init__(self, env: Env, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crosswind", "dashboard", "-c", str(env.config_path),
             "--bind", "127.0.0.1:0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **(extra_env or {})})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), (line, self.proc.stderr and
                                                      self.proc.stderr.read())
        self.url = line.rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture
def dashboards() -> Iterator[Callable[..., Dashboard]]:
    made: list[Dashboard] = []

    def start(env: Env, *args: str, **kw: Any) -> Dashboard:
        d = Dashboard(env, *args, **kw)
        made.append(d)
        return d

    yield start
    for d in made:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def _wait_attr(page: Any, selector: str, attribute: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = page.locator(selector).first.get_attribute(attribute)
        if got:
            return str(got)
        time.sleep(0.2)
    raise AssertionError(f"{selector} has no {attribute}")


def journal_a_rollback(env: Env) -> list[str]:
    """A rollback as the executor leaves it: journaled steps and its report."""
    from crosswind.cutover.journal import StepJournal
    from crosswind.live.status import StatusStore
    from crosswind.state import StateStore

    steps = ["check_gates", "begin", "freeze_aws", "wait_drained", "final_validation",
             "point_of_no_return", "prove_forward", "complete"]
    state = StateStore(env.config.state_dir)
    try:
        journal = StepJournal(state)
        for name in steps:
            journal.intent("f" * 64, "rollback", name)
            journal.outcome("f" * 64, "rollback", name, "ok")
        StatusStore(state).mark("last_rollback", {
            "kind": "rollback", "plan_hash": "f" * 64, "status": "succeeded",
            "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:00:42.500+00:00", "duration_s": 42.5,
            "rto_s": 42.5, "steps": [{"name": n, "outcome": "ok"} for n in steps]})
    finally:
        state.close()
    return steps


def test_the_dashboard_from_the_state_store_alone(make_env: Callable[..., Env],
                                                  dashboards: Callable[..., Dashboard],
                                                  browser: Any, tmp_path: Path) -> None:
    env = make_env()
    for i in range(5):
        env.container.upload_blob(f"v/{i}", b"v" * 64)
    assert cli(env, "sync", "objects", "--direction", "azure-to-aws").returncode == 0
    assert cli(env, "validate", "--objects").returncode == 0
    steps = journal_a_rollback(env)
    dash = dashboards(env)
    status = get_json(f"{dash.url}/api/status")
    assert status["service"]["running"] is False
    metrics = scraped(get_text(f"{dash.url}/metrics"))
    assert metrics[("crosswind_objects_total", frozenset(
        {("mode", "oneshot"), ("direction", "azure-to-aws"), ("outcome", "copied")}))] == 5
    assert metrics[("crosswind_rollback_rto_seconds", frozenset())] == 42.5
    page = browser.new_page(viewport={"width": 1366, "height": 850})
    try:
        page.goto(f"{dash.url}/")
        _wait_attr(page, "body", "data-status-at")
        _wait_attr(page, "body", "data-dashboard-at")
        assert page.locator("[data-testid=service]").get_attribute("data-value") == "stopped"
        assert page.locator("[data-testid=phase]").get_attribute("data-value") == \
            status["phase"]
        assert page.locator("[data-testid=dlq-open]").get_attribute("data-value") == \
            str(status["dlq_open"])
        _wait_attr(page, "[data-testid=oneshot-copied]", "data-value")
        assert page.locator("[data-testid=oneshot-copied]").get_attribute("data-value") == "5"
        rows = page.locator("[data-testid=validations] tbody tr[data-run]")
        assert rows.count() == 1
        assert "pass" in rows.first.inner_text()
        assert float(rows.first.locator("td").nth(4).get_attribute("data-value")) == 100
        # the last switch: its RTO and its journaled steps as a timeline
        _wait_attr(page, "[data-testid=rto]", "data-value")
        assert page.locator("[data-testid=rto]").get_attribute("data-value") == "42.5"
        bars = page.locator("#timeline rect[data-step]")
        assert bars.count() == len(steps)
        assert [bars.nth(i).get_attribute("data-step") for i in range(len(steps))] == steps
        assert page.locator('[data-switch="rollback"]').inner_text().split()[1] == "succeeded"
        board = get_json(f"{dash.url}/api/dashboard")
        assert [s["name"] for s in board["timeline"]["steps"]] == steps
        assert board["switches"]["rollback"]["rto_s"] == 42.5
        # nothing is fetched from anywhere but this origin
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.reload()
        _wait_attr(page, "body", "data-status-at")
        assert requested and all(u.startswith(dash.url) for u in requested)
        shot = tmp_path / "dashboard-state-store.png"
        page.screenshot(path=str(shot), full_page=True)
        shutil.copy(shot, artefact_dir() / shot.name)
    finally:
        page.close()
    dash.stop()


def test_a_token_guards_the_dashboard_and_a_wide_bind_needs_one(
        make_env: Callable[..., Env], dashboards: Callable[..., Dashboard], browser: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(extra='\n[monitoring]\nhttp_token = "env:CW_TEST_DASHBOARD_TOKEN"\n')
    secret = uuid.uuid4().hex
    dash = dashboards(env, extra_env={"CW_TEST_DASHBOARD_TOKEN": secret})
    for path in ("/api/status", "/metrics", "/", "/healthz", "/static/app.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            http_open(f"{dash.url}{path}")
        assert refused.value.code == 401 and refused.value.read() == b""
    assert get_json(f"{dash.url}/api/status", token=secret)["phase"] == "pre_cutover"
    page = browser.new_page()
    try:
        page.goto(f"{dash.url}/?token={secret}")  # once: then a cookie, not the address bar
        assert page.url == f"{dash.url}/"
        _wait_attr(page, "body", "data-status-at")
        assert page.locator("[data-testid=phase]").get_attribute("data-value") == "pre_cutover"
    finally:
        page.close()
    assert secret not in get_text_with(f"{dash.url}/metrics", secret)
    # beyond loopback without a token: refused before listening
    plain = make_env()
    p = subprocess.run([sys.executable, "-m", "crosswind", "dashboard", "-c",
                        str(plain.config_path), "--bind", "0.0.0.0:0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "http_token" in p.stderr


def get_text_with(url: str, token: str) -> str:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with http_open(req) as r:
        return str(r.read().decode())
