"""SIGKILL at any moment, start again: the run converges, re-copies nothing that
was verified, and never leaves a partial or corrupt object visible."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def start_sync(env: Env) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "crosswind", "sync", "objects", "--config",
         str(env.config_path), "--direction", "azure-to-aws", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def verified(db: Path) -> dict[str, tuple[str, int]]:
    """key -> (source etag, run id) of every verified copy recorded so far."""
    if not db.exists():
        return {}
    con = sqlite3.connect(db, timeout=10)
    try:
        rows = con.execute("SELECT key, src_etag, run_id FROM verified").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return {k: (e, r) for k, e, r in rows}


def destination_md5s(env: Env) -> dict[str, str]:
    s3: Any = env.s3
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=env.bucket, Key=o["Key"])["Body"].read()
            out[o["Key"]] = hashlib.md5(body).hexdigest()
    return out


def test_sigkill_mid_run_then_converge(make_env: Any) -> None:
    env = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=64 * MiB,
                   concurrency=8)
    source: dict[str, str] = {}
    for i in range(300):
        data = os.urandom(512 + i)
        key = f"events/2026/11/{i % 28 + 1:02d}/AA{i:04d}/dep.json"
        env.container.upload_blob(key, data, metadata={"Seq": str(i)})
        source[key] = hashlib.md5(data).hexdigest()
    for i in range(3):
        data = os.urandom(12 * MiB + i)
        key = f"archives/big-{i}.bin"
        env.container.upload_blob(key, data)
        source[key] = hashlib.md5(data).hexdigest()

    db = env.config.state_dir / "state.db"
    kills = 0
    # Kill at growing progress points, and once almost at once (mid-listing).
    for threshold in (0, 40, 150):
        proc = start_sync(env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(verified(db)) >= threshold:
                # threshold 0: shortly after start, while listing or first copies
                time.sleep(0.05 if threshold else 1.5)
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        # Whatever is visible at the destination is complete and correct.
        for key, md5 in destination_md5s(env).items():
            assert source[key] == md5, f"{key} is visible but not the source's bytes"
    assert kills >= 2, "the runs finished before they could be killed"

    before = verified(db)
    assert before, "nothing was verified before the last kill"
    # Leftover multipart uploads may exist now; the next run aborts them.
    proc = start_sync(env)
    assert proc.wait(300) == 0
    after = verified(db)
    final_run = max(r for _, r in after.values())
    recopied = [k for k, (etag, run) in after.items()
                if run == final_run and k in before and before[k][0] == etag]
    assert recopied == [], f"verified objects copied again: {recopied[:5]}"
    assert destination_md5s(env) == source
    s3: Any = env.s3
    uploads = s3.list_multipart_uploads(Bucket=env.bucket).get("Uploads", [])
    assert uploads == [], "a crashed run's multipart uploads were left open"


KILL_AFTER_CREATE = """
import asyncio, os, signal, sys
from crosswind.config import load_config
from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncRun
from crosswind.sync.objects import options_from_config

class KillAfterCreate:
    # CreateMultipartUpload has been answered; the process dies before anything
    # else runs, i.e. before the upload id can be recorded.
    def __init__(self, inner):
        self.inner = inner
    def __getattr__(self, name):
        return getattr(self.inner, name)
    async def start_upload(self, key, props, **kw):
        await self.inner.start_upload(key, props, **kw)
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    cfg = load_config(sys.argv[1])
    direction = Direction(sys.argv[2])
    src = await open_object_store(cfg, direction.source_side)
    dst = KillAfterCreate(await open_object_store(cfg, direction.destination_side))
    state = StateStore(cfg.state_dir)
    state.lock()
    await SyncRun(src, dst, state, options_from_config(cfg, direction)).run()

asyncio.run(main())
"""


def test_sigkill_between_creating_an_upload_and_recording_it(make_env: Any) -> None:
    """The upload a run created but could not record before it was killed is
    aborted by the next run (its intent was recorded first)."""
    env = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=32 * MiB)
    data = os.urandom(6 * MiB)
    env.container.upload_blob("big.bin", data)
    s3: Any = env.s3
    # Somebody else's upload of another key is none of crosswind's business.
    foreign = s3.create_multipart_upload(Bucket=env.bucket, Key="big.bin.other")["UploadId"]
    child = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_CREATE, str(env.config_path), "azure-to-aws"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    open_now = s3.list_multipart_uploads(Bucket=env.bucket).get("Uploads", [])
    assert {u["Key"] for u in open_now} == {"big.bin", "big.bin.other"}

    proc = start_sync(env)
    assert proc.wait(120) == 0
    left = s3.list_multipart_uploads(Bucket=env.bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("big.bin.other", foreign)]
    assert destination_md5s(env) == {"big.bin": hashlib.md5(data).hexdigest()}
