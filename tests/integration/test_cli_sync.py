"""The CLI end to end: JSON report, exit codes, inventory, runs, the progress bar on a TTY."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.integration


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args, "--config",
                           str(env.config_path)], capture_output=True, text=True, timeout=300)


def test_sync_json_report_inventory_and_runs(make_env: Any) -> None:
    env: Env = make_env()
    for i in range(25):
        env.container.upload_blob(f"events/2026/11/{i:02d}/e.json", b"x" * (i * 100))
    p = cli(env, "sync", "objects", "--direction", "azure-to-aws", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["copied"] == {"count": 25, "bytes": sum(i * 100 for i in range(25))}
    assert report["status"] == "succeeded" and report["failures"] == []
    saved = env.config.state_dir / "reports" / f"sync-objects-{report['run_id']}.json"
    assert json.loads(saved.read_text())["copied"]["count"] == 25

    inv = cli(env, "inventory", "--side", "aws", "--json", "--depth", "3")
    assert inv.returncode == 0, inv.stderr
    rep = json.loads(inv.stdout)
    assert rep["objects"] == 25 and rep["bytes"] == report["copied"]["bytes"]
    assert rep["estimate"]["basis"].startswith("assumed")  # fewer than 100 copied so far

    runs = cli(env, "runs", "--json")
    assert [r["status"] for r in json.loads(runs.stdout)["runs"]] == ["succeeded"]


def test_exit_codes_follow_the_outcome(make_env: Any) -> None:
    env: Env = make_env(metadata_key_policy="fail", max_delete_count=0)
    s3: Any = env.s3
    s3.put_object(Bucket=env.bucket, Key="ok.json", Body=b"{}")
    s3.put_object(Bucket=env.bucket, Key="bad-meta.json", Body=b"{}",
                  Metadata={"content-owner": "ops"})  # not a C# identifier: fails by policy
    p = cli(env, "sync", "objects", "--direction", "aws-to-azure", "--json")
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    assert [f["key"] for f in report["failures"]] == ["bad-meta.json"]
    assert "content-owner" in report["failures"][0]["reason"]

    env.container.upload_blob("only-on-azure", b"x")
    p = cli(env, "sync", "objects", "--direction", "aws-to-azure", "--delete", "--json")
    assert p.returncode == 4
    assert json.loads(p.stdout)["status"] == "aborted"
    assert env.container.get_blob_client("only-on-azure").exists()


def test_progress_bar_and_summary_on_a_terminal(make_env: Any) -> None:
    env: Env = make_env()
    for i in range(30):
        env.container.upload_blob(f"k{i:03d}", os.urandom(2048))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crosswind", "sync", "objects", "--config",
         str(env.config_path), "--direction", "azure-to-aws"],
        stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "COLUMNS": "160"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(120) == 0
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert "30/30 objects" in out  # the progress line
    assert "copied" in out and "report:" in out  # the summary
