"""Object sync sharded over a Dask cluster (2 worker processes), on the real rig
(Azurite → moto S3): the same result as one process, a worker SIGKILLed mid-run,
and secrets that reach the workers only as references."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import pickle
import signal
import sqlite3
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
from distributed import Client

from crosswind.model import Direction
from crosswind.scaleout.coordinator import sync_objects_distributed
from crosswind.scaleout.spec import parse_workers
from crosswind.scaleout.task import ShardOutcome, ShardTask
from crosswind.sync.objects import options_from_config, sync_objects
from crosswind.sync.report import sync_report
from tests.integration.conftest import Env
from tests.integration.scaleout.conftest import AZ_VAR, S3_SECRET

pytestmark = pytest.mark.integration

D = Direction.AZURE_TO_AWS
ODD = ["a//b", "dir/", "/lead", "sp ace", "pct%2Fx", "q?x=1", "tab\tx", "ünï/çødé ✈",
       "emoji/😀/x", "\ue000private"]
#: report fields that differ between any two runs (ids, names, clocks)
_VOLATILE = {"run_id", "source", "destination", "started_at", "finished_at", "duration_s",
             "throughput", "crosswind_version"}


def seed(env: Env, n: int = 90) -> None:
    """An estate with every kind of key the march meets: new, already copied,
    changed at the source, extra at the destination, odd names."""
    s3: Any = env.s3
    for i in range(n):
        env.container.upload_blob(f"events/{i % 7}/{i:04d}.json", b"e" * (i * 37 % 900),
                                  metadata={"n": str(i)})
    for i, key in enumerate(ODD):
        env.container.upload_blob(key, f"odd {i}".encode())
    for i in range(0, n, 9):  # at the destination already, the same bytes
        s3.put_object(Bucket=env.bucket, Key=f"events/{i % 7}/{i:04d}.json",
                      Body=b"e" * (i * 37 % 900))
    for i in range(3, n, 30):  # at the destination with other bytes
        s3.put_object(Bucket=env.bucket, Key=f"events/{i % 7}/{i:04d}.json", Body=b"stale")
    s3.put_object(Bucket=env.bucket, Key="zz/extra-only-at-destination", Body=b"x")


def destination(env: Env) -> dict[str, tuple[int, str, dict[str, str]]]:
    s3: Any = env.s3
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=env.bucket, Key=o["Key"])
            body = got["Body"].read()
            # The two estates' source mtimes differ by the seconds between their uploads
            meta = {k: v for k, v in got["Metadata"].items() if k != "crosswind-mtime"}
            out[o["Key"]] = (len(body), hashlib.md5(body).hexdigest(), meta)
    return out


def records(env: Env) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(env.config.state_dir / "state.db")
    try:
        return db.execute("SELECT key, src_size, md5, dst_etag FROM verified"
                          " WHERE direction=? ORDER BY key", (D.value,)).fetchall()
    finally:
        db.close()


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between any two runs. Examples and failures
    are sorted: one process lists them as its concurrent copies and checks end
    (an order that differs from run to run), shards by key."""
    out = {k: v for k, v in report.items() if k not in _VOLATILE}
    for name in ("would_copy", "would_delete", "schema_validation"):
        if name in out:
            out[name] = {**out[name], "examples": sorted(out[name]["examples"], key=str)}
    # one process lists failures as the copies end, in whatever order that is
    out["failures"] = sorted(out["failures"], key=str)
    return out


def single(env: Env, **overrides: Any) -> dict[str, Any]:
    opts = options_from_config(env.config, D, **overrides)
    return sync_report(asyncio.run(sync_objects(env.config, D, opts)))


def distributed(env: Env, client: Client, **seams: Any) -> dict[str, Any]:
    overrides = seams.pop("overrides", {})
    opts = options_from_config(env.config, D, **overrides)
    spec = parse_workers(client.scheduler.address)
    return sync_report(asyncio.run(
        sync_objects_distributed(env.config, D, opts, spec, **seams)))


def test_same_result_as_one_process(scaled_env: Callable[..., Env],
                                    dask_cluster: Client) -> None:
    one, many = scaled_env(), scaled_env()
    seed(one)
    seed(many)
    tasks: list[ShardTask] = []
    first = single(one, delete=True)
    sharded = distributed(many, dask_cluster, overrides={"delete": True},
                          on_submit=tasks.append)
    assert first["status"] == "succeeded", (first["error"], first["failed"])
    assert comparable(sharded) == comparable(first)
    assert first["copied"]["count"] > 0 and len(first["copy_reasons"]) >= 2
    assert first["deleted"]["count"] == 1
    # Many more shards than workers, whose ranges tile the key space in order.
    assert len(tasks) >= 6
    ranges = [t.shard.range for t in tasks]
    assert ranges[0].after is None and ranges[-1].upto is None
    assert all(a.upto == b.after for a, b in itertools.pairwise(ranges))
    assert destination(many) == destination(one)
    assert records(many) == records(one)
    # A second run finds nothing to do, on both.
    again_one, again_many = single(one), distributed(many, dask_cluster)
    assert comparable(again_many) == comparable(again_one)
    assert again_many["copied"]["count"] == 0
    assert again_many["skipped"]["count"] == first["copied"]["count"] + first["skipped"][
        "count"]


def test_an_estate_smaller_than_one_shard_is_spread_over_the_workers(
        scaled_env: Callable[..., Env], dask_cluster: Client) -> None:
    """With the default 1,000 keys a shard, a 100-key estate would be one shard on
    one worker: the coordinator reads ahead what the cluster takes at once and,
    the listing ending within it, cuts it over every slot (2 workers x 2)."""
    env = scaled_env(scaleout="")
    seed(env)
    tasks: list[ShardTask] = []
    report = distributed(env, dask_cluster, on_submit=tasks.append)
    assert report["status"] == "succeeded", report["error"]
    assert len(tasks) >= 4
    counts = [t.shard.count for t in tasks]
    assert sum(counts) == 90 + len(ODD) + 1 and max(counts) <= -(-sum(counts) // 4)


def test_dry_run_matches_one_process(scaled_env: Callable[..., Env],
                                     dask_cluster: Client) -> None:
    one, many = scaled_env(), scaled_env()
    seed(one, 40)
    seed(many, 40)
    a = single(one, dry_run=True, delete=True)
    b = distributed(many, dask_cluster, overrides={"dry_run": True, "delete": True})
    assert comparable(b) == comparable(a)
    assert b["would_copy"]["count"] > 0 and b["would_delete"]["count"] == 1
    assert destination(many) == destination(one)


def test_worker_killed_mid_run(scaled_env: Callable[..., Env], dask_cluster: Client) -> None:
    env = scaled_env("shard_objects = 10\n", concurrency=4)
    n = 160
    for i in range(n):
        env.container.upload_blob(f"k/{i:04d}", bytes([i % 251]) * 40_000)
    before = dask_cluster.run(os.getpid)
    killed: list[int] = []

    def kill_a_busy_worker(_: ShardOutcome) -> None:
        if killed:
            return
        busy = [w for w, keys in dask_cluster.processing().items() if keys]
        if busy:
            killed.append(before[busy[0]])
            os.kill(before[busy[0]], signal.SIGKILL)

    report = distributed(env, dask_cluster, on_outcome=kill_a_busy_worker)
    assert killed, "no worker was busy to be killed"
    assert report["status"] == "succeeded", report
    assert report["copied"]["count"] == n and report["failed"]["count"] == 0
    got = destination(env)
    assert len(got) == n
    for i in range(n):
        body = bytes([i % 251]) * 40_000
        assert got[f"k/{i:04d}"][:2] == (len(body), hashlib.md5(body).hexdigest())
    assert len(records(env)) == n
    # The nanny started a new process in its place; the cluster is whole again.
    dask_cluster.wait_for_workers(2, timeout=60)
    assert killed[0] not in dask_cluster.run(os.getpid).values()


def test_secrets_reach_workers_by_reference_only(scaled_env: Callable[..., Env],
                                                 dask_cluster: Client) -> None:
    env = scaled_env()
    for i in range(30):
        env.container.upload_blob(f"s/{i:03d}", b"secret-free %d" % i)
    raw = env.config_path.read_text()
    assert S3_SECRET not in raw and f"env:{AZ_VAR}" in raw
    az_cs = os.environ[AZ_VAR]
    az_key = az_cs.split("AccountKey=")[1].split(";")[0]
    payloads: list[bytes] = []

    def keep(task: ShardTask) -> None:
        payloads.append(cloudpickle.dumps(task))
        payloads.append(pickle.dumps(task))

    report = distributed(env, dask_cluster, on_submit=keep)
    # The workers resolved the references themselves: everything was copied.
    assert report["status"] == "succeeded" and report["copied"]["count"] == 30, report
    assert len(payloads) >= 6
    for p in payloads:
        for secret in (S3_SECRET, az_key, az_cs):
            assert secret.encode() not in p
        assert f"env:{AZ_VAR}".encode() in p  # the reference is what travels
    text = str(report)
    assert S3_SECRET not in text and az_key not in text


def test_reverse_direction_and_failures_flow_back(scaled_env: Callable[..., Env],
                                                  dask_cluster: Client) -> None:
    """S3 → Azure, with a key Azure refuses ("a\\\\b"): the failure is the
    shard's, the coordinator records it in its state and report as one process does."""
    w2a = Direction.AWS_TO_AZURE
    envs = scaled_env("shard_objects = 4\n"), scaled_env("shard_objects = 4\n")
    for env in envs:
        s3: Any = env.s3
        for i, key in enumerate([*ODD, "a\\b", *(f"r/{j:02d}" for j in range(20))]):
            s3.put_object(Bucket=env.bucket, Key=key, Body=f"body {i}".encode())
    one, many = envs
    a = sync_report(asyncio.run(sync_objects(one.config, w2a, options_from_config(
        one.config, w2a))))
    b = sync_report(asyncio.run(sync_objects_distributed(
        many.config, w2a, options_from_config(many.config, w2a),
        parse_workers(dask_cluster.scheduler.address))))
    assert a["status"] == "failed" and a["failed"]["count"] == 1
    for r in (a, b):  # the reason starts with the store's (estate's own) name
        for f in r["failures"]:
            f["reason"] = f["reason"].split(": ", 1)[1]
    assert comparable(b) == comparable(a)
    assert [f["key"] for f in b["failures"]] == ["a\\b"]
    db = sqlite3.connect(many.config.state_dir / "state.db")
    try:
        rows = db.execute("SELECT run_id, key, kind FROM failures").fetchall()
    finally:
        db.close()
    assert rows == [(b["run_id"], "a\\b", a["failures"][0]["kind"])]
    blobs = {x.name: x.size for x in many.container.list_blobs()}
    assert blobs == {x.name: x.size for x in one.container.list_blobs()}
    assert len(blobs) == len(ODD) + 20


GOVERNANCE = """
[governance]
enforce = "reject"
"""
EVENT = "events/2026/11/26/AA{:04d}/DFW-LAX/departure-{:08d}-0000-0000-0000-000000000000.json"


def test_schema_rejections_reach_the_coordinators_dlq(scaled_env: Callable[..., Env],
                                                      dask_cluster: Client) -> None:
    from azure.storage.blob import ContentSettings
    from typer.testing import CliRunner

    from crosswind.cli import app
    from crosswind.governance.registry import Registry
    from crosswind.governance.subjects import builtin_schema
    from crosswind.state import StateStore

    envs = scaled_env("shard_objects = 3\n", extra=GOVERNANCE), scaled_env(
        "shard_objects = 3\n", extra=GOVERNANCE)
    json_type = ContentSettings(content_type="application/json")
    for env in envs:
        state = StateStore(env.config.state_dir)
        try:
            Registry(state).register("object-metadata", builtin_schema("object-metadata"))
        finally:
            state.close()
        for i in range(8):
            carrier = "aa1" if i in (2, 6) else "AA"  # two fail the schema's pattern
            env.container.upload_blob(EVENT.format(i, i), b'{"ok": true}',
                                      content_settings=json_type,
                                      metadata={"EventType": "departure", "Carrier": carrier,
                                                "SourceSystem": "FXIP"})
    one, many = envs
    a = single(one)
    b = distributed(many, dask_cluster)
    assert a["schema_validation"]["rejected"] == 2 and a["copied"]["count"] == 6
    assert comparable(b) == comparable(a)

    def dlq(env: Env) -> list[str]:
        out = CliRunner().invoke(app, ["dlq", "list", "-c", str(env.config_path), "--kind",
                                       "schema", "--json"])
        assert out.exit_code == 0, out.output
        return sorted(i["item"] for i in json.loads(out.stdout)["items"])

    assert dlq(many) == dlq(one) == [EVENT.format(2, 2), EVENT.format(6, 6)]
