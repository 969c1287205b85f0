"""``crosswind sync objects --workers …`` as a user runs it: a coordinator process
with its own LocalCluster, SIGKILLed mid-run and resumed; bad ``--workers`` values."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from tests.integration.conftest import Env
from tests.integration.scaleout.conftest import gone

pytestmark = pytest.mark.integration


def argv(env: Env, *args: str) -> list[str]:
    return [sys.executable, "-m", "crosswind", "sync", "objects", "-d", "azure-to-aws",
            "--config", str(env.config_path), *args]


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(env, *args), capture_output=True, text=True, timeout=300)


def verified(env: Env) -> int:
    path = env.config.state_dir / "state.db"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM verified").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet
    finally:
        db.close()


def test_coordinator_killed_and_resumed(scaled_env: Callable[..., Env]) -> None:
    env = scaled_env("shard_objects = 10\n", concurrency=4)
    n = 400
    bodies = {f"e/{i:04d}": bytes([i % 251]) * 48_000 for i in range(n)}
    for key, body in bodies.items():
        env.container.upload_blob(key, body)
    proc = subprocess.Popen(argv(env, "--workers", "local:2", "--json"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while verified(env) == 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no shard came back"
            children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            time.sleep(0.05)
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = verified(env)
    assert 0 < at_kill < n, "the coordinator was not killed mid-run"
    # Its worker processes end on their own (they watch their parent).
    assert len(children) >= 2
    assert not gone(children), "worker processes outlived the coordinator"

    p = cli(env, "--workers", "local:2", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["status"] == "succeeded" and report["failed"]["count"] == 0
    # What was recorded before the kill is skipped; nothing is counted twice.
    assert report["skipped"]["count"] >= at_kill
    assert report["copied"]["count"] + report["skipped"]["count"] == n
    assert verified(env) == n
    s3: Any = env.s3
    for key, body in list(bodies.items())[::37]:
        got = s3.get_object(Bucket=env.bucket, Key=key)["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(body).digest()
    listed = sum(len(page.get("Contents", [])) for page in
                 s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket))
    assert listed == n
    # And a single-process run afterwards agrees that nothing is left to do.
    p = cli(env, "--json")
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout)
    assert last["copied"]["count"] == 0 and last["skipped"]["count"] == n


@pytest.mark.parametrize(("value", "says"), [
    ("local:0", "local needs 1 to 256"),
    ("local:x", "neither local:N"),
    ("4", "neither local:N"),
    ("udp://127.0.0.1:8786", "neither local:N"),
    ("tcp://", "neither local:N"),
    ("tcp://127.0.0.1:99999", "not a TCP port"),
])
def test_bad_workers_value(scaled_env: Callable[..., Env], value: str, says: str) -> None:
    env = scaled_env()
    p = cli(env, "--workers", value)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_bad_workers_in_config(scaled_env: Callable[..., Env]) -> None:
    env = scaled_env()
    with env.config_path.open("a") as f:
        f.write('workers = "local:many"\n')  # into [scaleout], the file's last section
    p = cli(env)
    assert p.returncode == 2
    line = p.stderr.strip()
    assert "\n" not in line and "[scaleout].workers 'local:many'" in line, p.stderr


def test_unreachable_scheduler(scaled_env: Callable[..., Env]) -> None:
    env = scaled_env("connect_timeout_s = 2\n")
    env.container.upload_blob("k", b"v")
    p = cli(env, "--workers", "tcp://127.0.0.1:9")
    assert p.returncode == 3, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Dask scheduler at tcp://127.0.0.1:9" in lines[0], p.stderr
