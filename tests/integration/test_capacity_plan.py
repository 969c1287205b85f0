"""`crosswind inventory --plan` on the rig: the probe reaches both real servers,
its probe objects are gone afterwards, the source is never written, the
figures hang together, and bad values are refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.integration


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args, "--config",
                           str(env.config_path)], capture_output=True, text=True, timeout=300)


def _s3_keys(env: Env) -> list[str]:
    s3: Any = env.s3
    return [o["Key"] for o in s3.list_objects_v2(Bucket=env.bucket).get("Contents", [])]


def test_plan_measures_both_endpoints_and_leaves_nothing(make_env: Any) -> None:
    env: Env = make_env()
    for i in range(40):
        env.container.upload_blob(f"events/2026/11/{i:02d}/e.json", b"x" * 4096)
    env.container.upload_blob("events/big.bin", b"y" * (2 * 1024 * 1024))
    blobs_before = sorted(b.name for b in env.container.list_blobs())

    p = cli(env, "inventory", "--side", "azure", "--plan", "--workers", "local:2",
            "--concurrency", "8", "--probe-seconds", "1.4", "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    plan = rep["plan"]
    assert rep["objects"] == 41 and plan["workers"] == 2 and plan["in_flight"] == 16
    reqs = plan["measured"]["requests"]
    for name in (f"azure://devstoreaccount1/{env.container.container_name}",
                 f"s3://{env.bucket}"):
        assert any(k.startswith(name) for k in reqs), (name, list(reqs))
    put = next(v for k, v in reqs.items() if "PUT (small)" in k)
    assert put["burst_requests"] > 0 and put["latency_alone_ms"] > 0
    assert plan["measured"]["probe_objects_written"] > 0
    assert plan["measured"]["probe_objects_removed"] == plan["measured"]["probe_objects_written"]
    # probe objects only on the destination, and none left; the source untouched
    assert _s3_keys(env) == []
    assert sorted(b.name for b in env.container.list_blobs()) == blobs_before
    copy = plan["copy"]
    assert copy["duration_s"] > 0 and copy["bottleneck"] in copy["by_resource_s"]
    assert copy["duration_s"] == max(copy["by_resource_s"].values())
    assert rep["estimate"]["basis"] == "measured by the probe (--plan)"
    v = plan["validation"]
    for mode in ("sampled", "full", "deep"):
        terms = v[mode]["by_resource_s"]
        assert v[mode]["duration_s"] >= max(terms["source listing"], terms["destination listing"])
    res = plan["resources"]
    assert res["connections_per_endpoint"] >= 16
    assert res["memory_total_mb"] >= 2 * res["memory_per_worker_mb"] - 0.2
    assert res["lambda_concurrency"] is None and plan["warnings"] == []

    table = cli(env, "inventory", "--side", "azure", "--plan", "--probe-seconds", "0.7")
    assert table.returncode == 0, table.stderr
    assert "capacity plan (measured)" in table.stderr and "full copy" in table.stderr
    assert _s3_keys(env) == []


@pytest.mark.parametrize(("args", "needle"), [
    (("--plan", "--workers", "0"), "--workers must be N or local:N from 1"),
    (("--plan", "--workers", "tcp://x:8786"), "--workers must be N or local:N"),
    (("--plan", "--concurrency", "-3"), "--concurrency must be a whole number from 1 to 1024"),
    (("--plan", "--probe-seconds", "nan"), "--probe-seconds must be a number of seconds"),
    (("--workers", "2"), "go with --plan"),
    (("--plan", "--serverless"), "--serverless needs [azure] table"),
])
def test_bad_values_are_one_line_errors(make_env: Any, args: tuple[str, ...],
                                        needle: str) -> None:
    env: Env = make_env()
    p = cli(env, "inventory", "--side", "azure", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert _s3_keys(env) == []


def test_serverless_probes_the_row_and_the_document(make_env: Any, secantus: Any,
                                                     azurite: Any) -> None:
    from azure.data.tables import TableServiceClient

    env: Env = make_env()
    for i in range(10):
        env.container.upload_blob(f"events/{i}.json", b"{}" * 100)
    tname = env.bucket.replace("-", "")
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(tname)
    text = env.config_path.read_text()
    text = text.replace("[azure]\n", f'[azure]\ntable = "{tname}"\n', 1)
    text = text.replace("[aws]\n", f'[aws]\ndocumentdb_uri = "{secantus.uri}"\n'
                        f'database = "{env.bucket}"\ncollection = "rows"\n', 1)
    # a quota under the event source mapping's minimum of 2: always exceeded
    env.config_path.write_text(text + "\n[monitoring]\nlambda_concurrency_quota = 1\n")
    p = cli(env, "inventory", "--side", "azure", "--plan", "--serverless",
            "--probe-seconds", "0.7", "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)["plan"]
    res = plan["resources"]
    reqs = plan["measured"]["requests"]
    assert reqs["azure table point read"]["latency_alone_ms"] > 0
    assert reqs["documentdb find"]["latency_alone_ms"] > 0
    # Little's law: the copy rate times the handler's time per record, at least 2
    assert res["lambda_concurrency"] >= 2
    assert res["lambda_concurrency"] >= plan["copy"]["objects_per_s"] * res["lambda_record_s"]
    assert any("over the account quota of 1" in w for w in plan["warnings"]), plan["warnings"]


def test_plan_after_cutover_writes_probes_to_azure_only(make_env: Any) -> None:
    """--side aws plans S3 → Azure: the probe objects go to the container and go away."""
    env: Env = make_env()
    s3: Any = env.s3
    for i in range(12):
        s3.put_object(Bucket=env.bucket, Key=f"events/{i}.json", Body=b"z" * 3000)
    p = cli(env, "inventory", "--side", "aws", "--plan", "--probe-seconds", "0.7", "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)["plan"]
    assert plan["source"] == f"s3://{env.bucket}"
    assert plan["destination"].startswith("azure://")
    m = plan["measured"]
    assert m["probe_objects_removed"] == m["probe_objects_written"] > 0
    assert list(env.container.list_blobs()) == []
    assert sorted(_s3_keys(env)) == sorted(f"events/{i}.json" for i in range(12))
