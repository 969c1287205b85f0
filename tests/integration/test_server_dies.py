"""A destination server dies in the middle of a run: the run stops with one clear
error, nothing unverified is recorded, and the next run converges."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from crosswind.rig.emulators import Azurite, Moto

pytestmark = pytest.mark.integration


def verified_count(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=10)
    try:
        return int(con.execute("SELECT count(*) FROM verified").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_destination_dies_mid_run_then_recovers(
    moto: Moto, s3_client: Any, tmp_path: Path
) -> None:
    s3_client.create_bucket(Bucket="dies-src")
    source = {}
    for i in range(400):
        data = os.urandom(300 + i)
        key = f"e/{i:04d}.json"
        s3_client.put_object(Bucket="dies-src", Key=key, Body=data)
        source[key] = hashlib.md5(data).hexdigest()

    azurite = Azurite(tmp_path / "az").start()
    try:
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
            "dies-dst")
        cfg = tmp_path / "cw.toml"
        cfg.write_text(textwrap.dedent(f"""
            [azure]
            connection_string = "{azurite.connection_string}"
            container = "dies-dst"
            emulator = true
            [aws]
            bucket = "dies-src"
            endpoint_url = "{moto.endpoint}"
            access_key_id = "test"
            secret_access_key = "test"
            emulator = true
            [state]
            dir = "state"
            [sync]
            concurrency = 4
            """))
        db = tmp_path / "state" / "state.db"
        cmd = [sys.executable, "-m", "crosswind", "sync", "objects", "--config", str(cfg),
               "--direction", "aws-to-azure"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while verified_count(db) < 40 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the server could be killed"
        assert azurite.proc is not None
        azurite.proc.send_signal(signal.SIGKILL)
        azurite.proc.wait(10)
        t0 = time.monotonic()
        _, stderr = proc.communicate(timeout=180)
        stopped_after = time.monotonic() - t0
        assert proc.returncode == 3, stderr
        assert "cannot reach the endpoint" in stderr
        assert "Traceback" not in stderr
        assert stopped_after < 60, f"took {stopped_after:.0f}s to give up"

        # Same ports and data directory, as an operator would restart it.
        azurite.proc = None
        azurite.start()
        # Azurite loses its latest writes on SIGKILL, possibly the container itself.
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        if not service.get_container_client("dies-dst").exists():
            service.create_container("dies-dst")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        container = BlobServiceClient.from_connection_string(
            azurite.connection_string).get_container_client("dies-dst")
        got = {b.name: hashlib.md5(container.download_blob(b.name).readall()).hexdigest()
               for b in container.list_blobs()}
        assert got == source
    finally:
        azurite.stop()
