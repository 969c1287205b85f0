"""The live part of `make demo`: the replication service, then the whole
cutover story — plan, two approvals, cutover, writes on AWS arriving on Azure,
a rollback with its measured RTO, and the audit chain verified.

Azurite emits no Event Grid events, so the demo enqueues the ones Event Grid
would deliver for what it writes on Azure; moto delivers real S3 → SQS
notifications for what it writes on AWS.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.queue import QueueServiceClient
from pymongo import MongoClient

from crosswind.config import load_config
from crosswind.live.events import azure_queue_body, blob_event
from crosswind.live.report import read_status
from crosswind.rig.emulators import Rig

QUEUE = "flight-events-changes"

Step = Callable[..., None]


def banner(text: str) -> None:
    print(f"\n\033[1;35m== {text}\033[0m", flush=True)


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    path = directory / f"{name}_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@demo",
                    "-f", str(path)], check=True)
    return path, Path(f"{path}.pub").read_text().strip()


def add_live_config(cfg: Path, rig: Rig, work: Path, bucket: str) -> tuple[Path, Path]:
    """Event queues, [replicate] and [cutover] with two approvers and demo hooks."""
    keys = work / "keys"
    keys.mkdir(exist_ok=True)
    alice, alice_pub = keypair(keys, "alice")
    bob, bob_pub = keypair(keys, "bob")
    s3 = boto3.client("s3", endpoint_url=rig.moto.endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=rig.moto.endpoint, aws_access_key_id="test",
                       aws_secret_access_key="test", region_name="us-east-1")
    url = sqs.create_queue(QueueName="nxop-flight-events-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*",
                                                              "s3:ObjectRemoved:*"]}]})
    QueueServiceClient.from_connection_string(rig.azurite.connection_string).create_queue(QUEUE)
    hooks = work / "hooks.log"
    text = cfg.read_text()
    text = text.replace("[azure]\n", f'[azure]\nqueue = "{QUEUE}"\n', 1)
    text = text.replace("[aws]\n", f'[aws]\nsqs_queue_url = "{url}"\n', 1)

    def hook(name: str) -> str:
        return f'{name} = "echo $(date +%T) {name} $CROSSWIND_PHASE >> {hooks}"'

    text += f"""
[replicate]
http = "127.0.0.1:0"
status_interval_s = 0.5
reconcile_interval_s = 600
table_poll_interval_s = 1
validate_interval_s = 0

[cutover]
quiet_period_s = 2
probe_event_wait_s = 2   # Azurite emits no events: the probe is handed over after 2 s
drain_timeout_s = 120
rollback_preapproved = true
{hook("freeze_command")}
{hook("unfreeze_command")}
{hook("switch_command")}
{hook("unswitch_command")}
{hook("aws_freeze_command")}
{hook("aws_unfreeze_command")}

[cutover.approvers.alice]
public_key = "{alice_pub}"
role = "platform"

[cutover.approvers.bob]
public_key = "{bob_pub}"
role = "security"
"""
    cfg.write_text(text)
    return alice, bob


def wait_for(cfg: Path, pred: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = read_status(load_config(cfg))
        if doc["service"]["running"] and pred(doc):
            return doc
        time.sleep(0.3)
    raise RuntimeError(f"demo: timed out waiting for {what}")


def stream(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in doc["streams"] if s["name"] == name), {"applied": 0})


def live_story(rig: Rig, work: Path, cfg_path: Path, env: dict[str, str], container: str,
               bucket: str, crosswind: Callable[..., int],
               checks: list[tuple[str, int, frozenset[int]]]) -> None:
    alice, bob = add_live_config(cfg_path, rig, work, bucket)
    cfg = str(cfg_path)

    def step(title: str, *args: str, ok: frozenset[int] = frozenset({0})) -> int:
        banner(title)
        rc = crosswind(*args, "--config", cfg, env=env)
        checks.append((title, rc, ok))
        return rc

    def captured(*args: str) -> tuple[int, str]:
        print(f"\033[2m$ crosswind {' '.join(args)} --config {cfg}\033[0m", flush=True)
        p = subprocess.run([sys.executable, "-m", "crosswind", *args, "--config", cfg],
                           env=env, capture_output=True, text=True)
        sys.stderr.write(p.stderr)
        return p.returncode, p.stdout

    banner("the replication service: crosswind replicate (runs until SIGTERM)")
    log = (work / "replicate.log").open("wb")
    service = subprocess.Popen([sys.executable, "-m", "crosswind", "replicate", "--config",
                                cfg], env=env, stderr=log, stdout=subprocess.DEVNULL)
    try:
        first = wait_for(cfg_path, lambda d: d["last_reconcile"] is not None,
                         "the first reconcile", timeout=300)
        url = first["service"]["http"]
        print(f"dashboard: {url}/  (metrics: {url}/metrics, status: {url}/api/status)")
        banner("new flight events on Azure, with the events Event Grid would deliver")
        blobs = BlobServiceClient.from_connection_string(rig.azurite.connection_string)
        c = blobs.get_container_client(container)
        queue = QueueServiceClient.from_connection_string(
            rig.azurite.connection_string).get_queue_client(QUEUE)
        table = TableServiceClient.from_connection_string(
            rig.azurite.connection_string).get_table_client("FlightEventMetadata")
        rng = random.Random(7)
        before = stream(read_status(load_config(cfg_path)), "azure-blob-events")["applied"]
        for i in range(40):
            eid = uuid.UUID(int=rng.getrandbits(128))
            key = f"events/2026/12/01/FX{i:04d}/DFW-LAX/departure-{eid}.json"
            r = c.get_blob_client(key).upload_blob(
                json.dumps({"flight": f"FX{i:04d}", "event_id": str(eid)}).encode(),
                overwrite=True, content_settings=ContentSettings(
                    content_type="application/json"), metadata={"Carrier": "FX"})
            queue.send_message(azure_queue_body(blob_event(
                "upsert", container, key, event_time=datetime.now(UTC),
                etag=str(r["etag"]).strip('"'))))
            table.upsert_entity({"PartitionKey": f"FX{i:04d}_20261201", "RowKey": str(eid),
                                 "EventType": "departure", "Gate": f"A{i}"})
        wait_for(cfg_path, lambda d: stream(d, "azure-blob-events")["applied"] >= before + 40
                 and stream(d, "table-poll")["applied"] >= 40, "the new events replicated")
        step("what the service is doing, with the measured lag", "status")

        banner("cutover: a passing validation, then plan, two approvals, start")
        step("validate objects and rows (the cutover gate needs a passing one)", "validate",
             "--objects", "--metadata")
        rc, out = captured("cutover", "plan", "--json")
        doc = json.loads(out)
        dlq = int(doc["inputs"]["dlq_open"])
        if rc != 0:
            failing = [g["name"] for g in doc["gates"] if not g["passed"]]
            print(f"the plan's gates fail: {', '.join(failing)} — the {dlq} DLQ entries are "
                  "the demo's badly named objects and orphan rows; acknowledge them")
            rc, out = captured("cutover", "plan", "--ack-dlq", str(dlq), "--json")
        plan = json.loads(out)["plan_hash"]
        checks.append(("cutover plan", rc, frozenset({0})))
        step("approval 1 of 2: alice (platform)", "cutover", "approve", "--plan", plan,
             "--key", str(alice))
        step("approval 2 of 2: bob (security)", "cutover", "approve", "--plan", plan,
             "--key", str(bob))
        step("cutover start: freeze, drain, validate, point of no return, reverse proven, "
             "switch", "cutover", "start", "--plan", plan)
        wait_for(cfg_path, lambda d: d["direction"] == "aws-to-azure", "the flip")

        banner("AWS is primary: writes on AWS arrive on Azure (S3 -> SQS, change stream)")
        s3 = boto3.client("s3", endpoint_url=rig.moto.endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
        mongo: MongoClient[dict[str, Any]] = MongoClient(env["DOCDB_URI"])
        coll = mongo["nxop"]["flight_event_metadata"]
        for i in range(10):
            key = f"events/2026/12/02/FX9{i:03d}/LAX-DFW/arrival-aws-{i}.json"
            s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"on": "aws"}).encode(),
                          ContentType="application/json")
            coll.insert_one({"_id": f"FX9{i:03d}_20261202/aws-{i}",
                             "PartitionKey": f"FX9{i:03d}_20261202", "RowKey": f"aws-{i}",
                             "EventType": "arrival"})
        wait_for(cfg_path, lambda d: stream(d, "s3-events")["applied"] >= 10
                 and stream(d, "docdb-changes")["applied"] >= 10, "AWS writes on Azure")
        step("the service after cutover", "status")

        banner("rollback: pre-approved by the cutover's approvals, RTO measured")
        rc, out = captured("rollback", "plan", "--json")
        rplan = json.loads(out)["plan_hash"]
        checks.append(("rollback plan", rc, frozenset({0})))
        step("rollback start", "rollback", "start", "--plan", rplan)
        wait_for(cfg_path, lambda d: d["direction"] == "azure-to-aws", "forward again")
        step("the switches, step by step, with the RTO", "cutover", "status")
        step("the audit chain of plans, approvals, steps: verified", "audit", "verify")
        print(f"hooks ran: {(work / 'hooks.log').read_text().strip()}")
    finally:
        banner("stopping the replication service (SIGTERM: a clean stop)")
        service.send_signal(signal.SIGTERM)
        try:
            checks.append(("replicate stops cleanly", service.wait(60), frozenset({0})))
        except subprocess.TimeoutExpired:
            service.kill()
            checks.append(("replicate stops cleanly", -9, frozenset({0})))
        log.close()
