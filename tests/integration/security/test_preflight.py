"""``crosswind preflight``: every permission of each direction probed on the rig
(Azurite, moto, SecantusDB), probes removed afterwards, what is missing named
with exit 3, the assumed AWS role shown; and the cutover's preflight gate is
the same check."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, generate_container_sas
from azure.storage.queue import QueueServiceClient

from crosswind.config import load_config
from crosswind.model import Direction
from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto, Secantus
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})


def estate(tmp: Path, azurite: Azurite, moto: Moto, secantus: Secantus, blob: Any, s3: Any,
           tables: Any, queues: Any, sqs: Any, *, azure: str | None = None,
           aws_extra: str = "") -> tuple[Path, str]:
    name = unique("pf").lower()
    blob.create_container(name).upload_blob("events/one.json", b"{}")
    s3.create_bucket(Bucket=name)
    tables.create_table(name.replace("-", ""))
    queues.create_queue(name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    azure = azure or f'connection_string = "{azurite.connection_string}"\n'
    text = textwrap.dedent(f"""
        [azure]
        {{azure}}container = "{name}"
        table = "{name.replace('-', '')}"
        queue = "{name}"
        emulator = true

        [aws]
        bucket = "{name}"
        endpoint_url = "{moto.endpoint}"
        access_key_id = "test"
        secret_access_key = "test"
        documentdb_uri = "{secantus.uri}"
        database = "{name}"
        sqs_queue_url = "{queue_url}"
        emulator = true
        {{aws_extra}}
        [state]
        dir = "state"
        """).replace("{azure}", azure).replace("{aws_extra}", aws_extra)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path, name


@pytest.fixture
def rig(azurite: Azurite, moto: Moto, secantus: Secantus, blob_service: BlobServiceClient,
        s3_client: Any, queue_service: QueueServiceClient, sqs_client: Any,
        tmp_path: Path) -> Any:
    tables = TableServiceClient.from_connection_string(azurite.connection_string)

    def make(**kw: Any) -> tuple[Path, str]:
        return estate(tmp_path, azurite, moto, secantus, blob_service, s3_client, tables,
                      queue_service, sqs_client, **kw)

    make.blob, make.s3, make.tables = blob_service, s3_client, tables  # type: ignore[attr-defined]
    return make


def test_both_directions_pass_and_leave_nothing_behind(rig: Any, secantus: Secantus) -> None:
    path, name = rig()
    p = cli("preflight", "-c", str(path), "--direction", "both", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["ok"] and report["missing"] == []
    assert report["directions"] == ["azure-to-aws", "aws-to-azure"]
    assert report["identities"]["aws"].startswith("arn:aws:")
    assert report["identities"]["azure"] == f"account key of {AZURITE_ACCOUNT}"
    probes = {(p["store"], p["permission"]): p for p in report["probes"]}
    azure, s3 = f"azure://{AZURITE_ACCOUNT}/{name}", f"s3://{name}"
    for store, perm in [(azure, "list"), (azure, "read"), (azure, "write"), (azure, "delete"),
                        (s3, "list"), (s3, "read"), (s3, "write"), (s3, "delete"),
                        (s3, "multipart (create, abort)"),
                        (f"azure-queue://{AZURITE_ACCOUNT}/{name}", "receive"),
                        (f"sqs://{name}", "receive")]:
        assert probes[(store, perm)]["result"] == "ok", (store, perm)
    # Reading is needed both ways; the probe ran once, for both directions.
    assert probes[(azure, "read")]["directions"] == ["azure-to-aws", "aws-to-azure"]
    docs = next(s for s, _ in probes if s.startswith("documentdb://"))
    table = next(s for s, _ in probes if s.startswith("azure-table://"))
    for store, perm in [(docs, "find"), (docs, "upsert"), (docs, "delete"),
                        (docs, "change stream"), (table, "query"), (table, "upsert"),
                        (table, "delete")]:
        assert probes[(store, perm)]["result"] == "ok", (store, perm)
    # The probes are gone.
    assert [b.name for b in rig.blob.get_container_client(name).list_blobs()] == \
        ["events/one.json"]
    assert "Contents" not in rig.s3.list_objects_v2(Bucket=name)
    assert list(rig.tables.get_table_client(name.replace("-", "")).list_entities()) == []
    from pymongo import MongoClient

    with MongoClient(secantus.uri) as m:
        assert m[name]["objects_metadata"].count_documents({}) == 0
    # The table for people.
    p = cli("preflight", "-c", str(path), "-d", "azure-to-aws")
    assert p.returncode == 0 and "all granted" in p.stderr and "multipart" in p.stderr


def test_a_read_only_sas_fails_the_direction_that_writes_to_azure(rig: Any,
                                                                   azurite: Azurite) -> None:
    path, name = rig()
    sas = generate_container_sas(AZURITE_ACCOUNT, name, account_key=AZURITE_KEY,
                                 permission="rl",
                                 expiry=datetime.now(UTC) + timedelta(hours=2))
    text = path.read_text().replace(
        f'connection_string = "{azurite.connection_string}"',
        f'account_url = "{azurite.blob_url}"\ncredential = "env:CW_PF_SAS"')
    text = text.replace('table = "', '# table = "').replace('queue = "', '# queue = "')
    path.write_text(text)
    env = {"CW_PF_SAS": sas}
    ok = cli("preflight", "-c", str(path), "-d", "azure-to-aws", env=env)
    assert ok.returncode == 0, ok.stderr
    # Expiring within sas_min_validity_h (24 h): warned.
    assert "sooner than [security] sas_min_validity_h" in ok.stderr
    p = cli("preflight", "-c", str(path), "-d", "aws-to-azure", "--json", env=env)
    assert p.returncode == 3
    report = json.loads(p.stdout)
    missing = report["missing"]
    azure = f"azure://{AZURITE_ACCOUNT}/{name}"
    assert f"{azure} SAS rlcwd" in missing and f"{azure} write" in missing
    sas_row = next(x for x in report["probes"] if x["permission"] == "SAS rlcwd")
    assert "lacks permission c (create), w (write), d (delete)" in sas_row["detail"]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: preflight aws-to-azure: missing:")
    sig = sas.split("sig=")[1].split("&")[0]
    assert sig not in p.stdout + p.stderr


def test_an_assumed_role_is_shown(rig: Any) -> None:
    role = "arn:aws:iam::123456789012:role/crosswind-replica"
    path, _ = rig(aws_extra=f'role_arn = "{role}"\nexternal_id = "env:CW_PF_EXT"\n')
    p = cli("preflight", "-c", str(path), "-d", "azure-to-aws", "--json",
            env={"CW_PF_EXT": "ext-id-123456"})
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["identities"]["aws"].startswith(
        "arn:aws:sts::123456789012:assumed-role/crosswind-replica/crosswind")
    sts = next(x for x in report["probes"] if x["store"] == "sts")
    assert sts["result"] == "ok" and sts["permission"] == f"AssumeRole {role}"


def test_the_cutover_gate_runs_the_same_probes(rig: Any) -> None:
    from crosswind.cutover.inputs import preflight

    path, name = rig()
    cfg = load_config(path)
    result = asyncio.run(preflight(cfg, Direction.AWS_TO_AZURE))
    assert result.passed, result.reason
    assert f"azure://{AZURITE_ACCOUNT}/{name}: write" in result.checked
    assert any(c.endswith(": change stream") for c in result.checked)
