"""Monitoring of a running replication service, in one service run: a real
Prometheus scrapes ``/metrics`` and PromQL over what it scraped returns the
changes applied and their lag; the service's CloudWatch exporter (moto) and
Azure Monitor exporter (a local ingestion receiver) carry the same counts; the
generated alert rules loaded into that Prometheus fire for the same DLQ growth
the service's own alert fires for (and posts to a webhook); the dashboard in
Chromium shows exactly what ``/api/status`` says and follows replication as it
progresses; after the service stopped ``crosswind metrics --once`` serves its
last figures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from crosswind.observability.rules import prometheus_rules
from crosswind.rig.emulators import Moto
from tests.integration.conftest import unique
from tests.integration.live.conftest import LiveEnv, Service, stream
from tests.integration.monitoring_rig import (
    Prometheus,
    Receiver,
    artefact_dir,
    browser,
    get_json,
    get_text,
    prometheus,
    receiver,
)

__all__ = ["browser", "prometheus", "receiver"]  # fixtures

pytestmark = pytest.mark.integration

EVENTS = "azure-blob-events"


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def applied_total(st: dict[str, Any]) -> int:
    return sum(int(s["applied"]) for s in st["streams"])


def page_value(page: Any, selector: str, attribute: str = "data-value") -> str:
    return str(page.locator(selector).first.get_attribute(attribute))


def wait_page(page: Any, selector: str, attribute: str, pred: Callable[[str], bool],
              timeout: float = 60) -> str:
    """Poll an attribute from here: the page's CSP (script-src 'self') rightly refuses
    the string evaluation page.wait_for_function would need."""
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = page_value(page, selector, attribute)
        if got != "None" and pred(got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"{selector} {attribute}: last {got!r}")


def _track(path: str, body: Any) -> tuple[int, Any]:
    n = len(body) if isinstance(body, list) else 1
    return 200, {"itemsReceived": n, "itemsAccepted": n, "errors": []}


def azure_sum(rec: Receiver, name: str, **labels: str) -> float:
    """Counters reach Application Insights as deltas: their sum is the count."""
    total = 0.0
    for body in rec.bodies("/v2.1/track"):
        for env in body if isinstance(body, list) else [body]:
            data = env["data"]["baseData"]
            if (data.get("properties") or {}) == labels:
                total += sum(m["value"] for m in data["metrics"] if m["name"] == name)
    return total


def cloudwatch_sum(cw: Any, ns: str, name: str, dims: dict[str, str]) -> float:
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace=ns, MetricName=name, StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5), Period=3600, Statistics=["Sum"],
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()])["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def until(pred: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out: {what}")


def test_a_running_service_seen_by_prometheus_alerts_and_the_dashboard(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service],
        prometheus: Prometheus, receiver: Callable[..., Receiver], browser: Any, moto: Moto,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = receiver()
    ingest = receiver(_track)
    ns = unique("Crosswind")
    monkeypatch.setenv("CW_TEST_APPINSIGHTS", f"InstrumentationKey={uuid.uuid4()};"
                       f"IngestionEndpoint={ingest.url}/")
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    # the exporter's own usage metrics would go to the receiver too, until process exit
    monkeypatch.setenv("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")
    live = make_live_env()
    with live.path.open("a") as f:
        f.write(f'\n[monitoring]\ninterval_s = 0.5\nwebhook_url = "{hook.url}/hook"\n'
                f'cloudwatch = true\ncloudwatch_interval_s = 1\ncloudwatch_namespace = "{ns}"\n'
                'azure_monitor = true\nazure_connection_string = "env:CW_TEST_APPINSIGHTS"\n'
                'azure_interval_s = 1\n')
    svc = services(live)
    st = svc.wait_until(lambda s: s["service"]["http"] and s["last_reconcile"] is not None,
                        what="the service up, first reconcile done")
    url = st["service"]["http"]

    # -- known changes, then /metrics -------------------------------------------------
    sizes = [100 + i for i in range(12)]
    for i, n in enumerate(sizes):
        live.put_blob(f"m/{i:02d}.json", b"x" * n)
    st = svc.wait_until(lambda s: stream(s, EVENTS)["applied"] == len(sizes) and
                        s["pending"]["keys"] == 0, what="12 changes applied")
    m = scraped(get_text(f"{url}/metrics"))
    ev = frozenset({("stream", EVENTS), ("kind", "objects")})
    assert m[("crosswind_changes_applied_total", ev)] == 12
    assert m[("crosswind_replication_lag_seconds_count", ev)] == 12
    copied = frozenset({("mode", "service"), ("direction", "azure-to-aws"),
                        ("outcome", "copied")})
    assert m[("crosswind_objects_total", copied)] == 12
    assert m[("crosswind_object_bytes_total", copied)] == sum(sizes)
    puts = sum(v for (name, labels), v in m.items() if name == "crosswind_requests_total"
               and ("endpoint", "s3") in labels and ("operation", "put") in labels)
    assert puts >= 12
    assert m[("crosswind_connection_pool_size", frozenset({("endpoint", "s3")}))] == 64
    assert m[("crosswind_migration_phase", frozenset({("phase", "pre_cutover")}))] == 1
    assert m[("crosswind_service_up", frozenset())] == 1
    assert m[("crosswind_dlq_open_entries", frozenset())] == 0

    # -- the same counts in CloudWatch (moto) and Azure Monitor (the receiver) -----------
    cw = boto3.client("cloudwatch", endpoint_url=moto.endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    labels = {"stream": EVENTS, "kind": "objects"}
    until(lambda: cloudwatch_sum(cw, ns, "crosswind_changes_applied_total", labels) == 12,
          "CloudWatch holds the 12 changes")
    until(lambda: azure_sum(ingest, "crosswind_changes_applied_total", **labels) == 12,
          "Application Insights got the 12 changes")
    exporters = live.status()["alerts"]["exporters"]
    assert exporters["cloudwatch"]["requests"] >= 1 and not exporters["errors"]

    # -- a real Prometheus scrapes it ----------------------------------------------------
    rules = prometheus_rules(live.config)
    rules["groups"][0]["interval"] = "1s"  # evaluate every second, not every minute
    prometheus.set_rules(yaml.safe_dump(rules))
    prometheus.set_targets(url.removeprefix("http://"))
    sel = f'{{stream="{EVENTS}"}}'
    assert prometheus.wait_for(f"crosswind_changes_applied_total{sel}",
                               lambda v: v == 12) == 12
    assert prometheus.value(f"crosswind_replication_lag_seconds_count{sel}") == 12
    st = live.status()
    lag = stream(st, EVENTS)["lag_s"]
    p99 = prometheus.value(f"crosswind_replication_lag_p99_seconds{sel}")
    assert p99 == pytest.approx(lag["p99"], abs=1e-3)
    # the histogram's quantile lands in the bucket of the exact p99
    q = prometheus.value(
        f"histogram_quantile(0.99, sum by (le) (crosswind_replication_lag_seconds_bucket{sel}))")
    assert q is not None and q >= lag["p99"] * 0.5
    assert prometheus.value('sum(crosswind_object_bytes_total{mode="service",'
                            'outcome="copied"})') == sum(sizes)

    # -- an alert: the DLQ grows (a poison message) ---------------------------------------
    live.queue.send_message("this is not an Event Grid event")
    st = svc.wait_until(lambda s: any(a["alert"] == "CrosswindDLQGrowing"
                                      for a in (s["alerts"] or {}).get("firing", [])),
                        what="the service's DLQ alert")
    firing = next(a for a in st["alerts"]["firing"] if a["alert"] == "CrosswindDLQGrowing")
    assert firing["value"] == 1 and firing["threshold"] == 1
    posted = hook.wait(lambda b: any(x["alert"] == "CrosswindDLQGrowing" and
                                     x["status"] == "firing" for x in b))
    body = next(x for x in posted if x["alert"] == "CrosswindDLQGrowing")
    assert body["estate"]["bucket"] == live.bucket and body["summary"]
    # the same rule, generated for Prometheus, fires on what Prometheus scraped
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = prometheus.api("alerts")["alerts"]
        if any(a["labels"]["alertname"] == "CrosswindDLQGrowing" and a["state"] == "firing"
               for a in alerts):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"Prometheus did not fire CrosswindDLQGrowing: {alerts}")
    assert not any(a["labels"]["alertname"] == "CrosswindBreakerOpen" for a in alerts)

    # -- the dashboard in Chromium ----------------------------------------------------------
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{url}/")
        wait_page(page, "body", "data-status-at", bool)
        wait_page(page, "body", "data-dashboard-at", bool)
        status = get_json(f"{url}/api/status")
        assert page_value(page, "[data-testid=phase]") == status["phase"]
        assert page_value(page, "[data-testid=direction]") == status["direction"]
        assert page_value(page, "[data-testid=applied-total]") == str(applied_total(status))
        assert page_value(page, "[data-testid=dlq-open]") == str(status["dlq_open"]) == "1"
        assert page_value(page, f'tr[data-stream="{EVENTS}"] td[data-field=applied]') == \
            str(stream(status, EVENTS)["applied"])
        assert float(page_value(page, "[data-testid=lag-p99]")) == status["lag_p99_s"]
        assert page_value(page, "[data-testid=alerts-firing]") == str(
            len(status["alerts"]["firing"]))
        assert page.locator('[data-alert="CrosswindDLQGrowing"]').count() == 1
        # replication goes on: the page follows
        before = applied_total(status)
        for i in range(8):
            live.put_blob(f"n/{i}.json", b"y" * 50)
        wait_page(page, "[data-testid=applied-total]", "data-value",
                  lambda v: int(v) >= before + 8)
        svc.wait_until(lambda s: s["pending"]["keys"] == 0, what="idle again")
        time.sleep(2.5)  # one more poll of the page after the last change
        status = get_json(f"{url}/api/status")
        assert page_value(page, "[data-testid=applied-total]") == str(applied_total(status))
        assert page_value(page, f'tr[data-stream="{EVENTS}"] td[data-field=applied]') == \
            str(stream(status, EVENTS)["applied"]) == "20"
        bytes_shown = int(page_value(page, "[data-testid=bytes-total]"))
        assert bytes_shown == sum(sizes) + 8 * 50
        assert page.locator("#chart-lag polyline").count() >= 1
        assert page.locator("#chart-rate polyline").count() >= 1
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        shutil.copy(shot, artefact_dir() / "dashboard-service.png")
    finally:
        page.close()

    # -- stopped: crosswind metrics --once has the last figures --------------------------
    assert svc.terminate() == 0
    out = subprocess.run([sys.executable, "-m", "crosswind", "metrics", "-c", str(live.path),
                          "--once"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = scraped(out.stdout)
    assert m[("crosswind_service_up", frozenset())] == 0
    assert m[("crosswind_changes_applied_total", ev)] == 20
    assert m[("crosswind_dlq_entries", frozenset({("kind", "poison-message")}))] == 1
    assert json.loads(json.dumps(live.status()))["service"]["running"] is False
