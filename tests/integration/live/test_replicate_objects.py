"""`crosswind replicate` for objects on the rig: events through real queues,
the reconcile as the safety net, status and the HTTP endpoint, clean stop."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from crosswind.migration import Phase
from tests.integration.live.conftest import LiveEnv, Service, stream

pytestmark = pytest.mark.integration


def test_azure_events_replicate_to_s3_with_lag_and_a_clean_stop(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    # (the guard's percentage would hold a delete of 1 of a few objects: see its own test)
    live = make_live_env(replicate="max_delete_percent = 100")
    live.put_blob("before/start.json", b'{"n": 0}', event=False)  # the first reconcile's
    svc = services(live)
    st = svc.wait_until(lambda s: s["last_reconcile"] is not None
                        and stream(s, "reconcile")["applied"] >= 1, what="first reconcile")
    assert st["direction"] == "azure-to-aws" and st["phase"] == "pre_cutover"
    keys = [f"events/2026/12/01/FX{i:04d}.json" for i in range(20)] + ["a//b", "ünï 名.json"]
    for i, k in enumerate(keys):
        live.put_blob(k, json.dumps({"i": i}).encode(), metadata={"Flight": f"FX{i}"})
    live.delete_blob("before/start.json")
    st = svc.wait_until(lambda s: stream(s, "azure-blob-events")["applied"] >= len(keys) + 1,
                        what="events applied")
    ev = stream(st, "azure-blob-events")
    assert ev["failed"] == 0 and ev["lag_s"]["count"] >= len(keys)
    assert 0 <= ev["lag_s"]["p99"] < 30
    got = live.s3_keys()
    assert set(got) == set(keys)
    assert got["events/2026/12/01/FX0003.json"] == b'{"i": 3}'
    head = live.s3.head_object(Bucket=live.bucket, Key="events/2026/12/01/FX0003.json")
    assert head["Metadata"]["flight"] == "FX3"
    # every message acknowledged: nothing left in the queue
    svc.wait_until(lambda s: stream(s, "azure-blob-events")["backlog"] == 0, what="acks")
    # the endpoint serves the same document
    url = st["service"]["http"]
    with urllib.request.urlopen(f"{url}/api/status", timeout=5) as r:  # noqa: S310
        served = json.load(r)
    assert served["direction"] == "azure-to-aws" and served["service"]["running"]
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:  # noqa: S310
        assert r.status == 200
    assert svc.terminate() == 0
    after = live.status()
    assert not after["service"]["running"] and after["service"]["stopped_at"]
    assert stream(after, "azure-blob-events")["applied"] >= len(keys) + 1


def test_lost_events_are_found_by_the_reconcile_as_drift(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env(replicate="reconcile_interval_s = 10\ndrift_grace_s = 0")
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    live.put_blob("with-event.json", b"1")
    live.put_blob("no-event.json", b"2", event=False)
    st = svc.wait_until(lambda s: (s["last_reconcile"] or {}).get("drift", 0) >= 1,
                        timeout=40, what="drift")
    assert "no-event.json" in " ".join(st["last_reconcile"]["drift_examples"])
    svc.wait_until(lambda s: stream(s, "reconcile")["applied"] >= 1, what="drift applied")
    assert set(live.s3_keys()) == {"with-event.json", "no-event.json"}
    assert svc.terminate() == 0


def test_after_cutover_s3_notifications_replicate_to_azure(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env(replicate="max_delete_percent = 100")
    live.set_phase(Phase.CUTTING_OVER)
    live.set_phase(Phase.POST_CUTOVER)
    svc = services(live, "--direction", "aws-to-azure")
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    keys = ["flights/FX1.json", "odd key+plus.json", "percent%41.json", "深/😀.json"]
    for k in keys:
        live.s3.put_object(Bucket=live.bucket, Key=k, Body=k.encode(),
                           ContentType="application/json", Metadata={"origin": "aws"})
    st = svc.wait_until(lambda s: stream(s, "s3-events")["applied"] >= len(keys),
                        what="s3 events applied")
    assert stream(st, "s3-events")["failed"] == 0
    got = live.blob_keys()
    assert got == {k: k.encode() for k in keys}
    props = live.container.get_blob_client("flights/FX1.json").get_blob_properties()
    assert props.metadata["origin"] == "aws"
    assert props.content_settings.content_type == "application/json"
    live.s3.delete_object(Bucket=live.bucket, Key="flights/FX1.json")
    svc.wait_until(lambda s: "flights/FX1.json" not in live.blob_keys(), what="delete applied")
    assert svc.terminate() == 0


def test_direction_must_agree_with_the_phase(make_live_env: Callable[..., LiveEnv],
                                             services: Callable[..., Service]) -> None:
    live = make_live_env()
    svc = services(live, "--direction", "aws-to-azure")
    assert svc.wait(60) == 2
    assert "disagrees with the migration phase pre_cutover" in svc.stderr()


def test_exit_when_idle_and_status_when_stopped(make_live_env: Callable[..., LiveEnv],
                                                services: Callable[..., Service]) -> None:
    live = make_live_env()
    live.put_blob("x.json", b"x", event=False)
    svc = services(live, "--exit-when-idle", "1")
    assert svc.wait(60) == 0
    st: dict[str, Any] = live.status()
    assert not st["service"]["running"]
    assert stream(st, "reconcile")["applied"] == 1
    assert set(live.s3_keys()) == {"x.json"}


def test_preflight_probes_the_event_queue(make_live_env: Callable[..., LiveEnv]) -> None:
    import subprocess
    import sys

    live = make_live_env()

    def preflight(direction: str, *more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "crosswind", "preflight", "-c",
                               str(live.path), "-d", direction, *more], capture_output=True,
                              text=True, timeout=120)

    def queue_probes(direction: str) -> dict[str, str]:
        r = preflight(direction, "--json")
        assert r.returncode == 0, r.stderr
        return {p["permission"]: p["result"] for p in json.loads(r.stdout)["probes"]
                if p["store"].startswith(("azure-queue://", "sqs://"))}

    # the source's event queue: read and depth; receive only while it is empty (S3
    # leaves its s3:TestEvent in the SQS queue, so there it is skipped, with a reason)
    for direction in ("azure-to-aws", "aws-to-azure"):
        probes = queue_probes(direction)
        assert probes.get("read (attributes), delete") == "ok", (direction, probes)
        assert probes.get("read (depth)") == "ok", (direction, probes)
        assert probes.get("receive") in ("ok", "skipped"), (direction, probes)
    live.path.write_text(live.path.read_text().replace(
        f'queue = "{live.queue.queue_name}"', 'queue = "no-such-queue"'))
    bad = preflight("azure-to-aws")
    # the table of probes, then one line naming what is missing
    assert bad.returncode == 3, bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: preflight azure-to-aws: missing: ") and \
        "no-such-queue" in last, last
