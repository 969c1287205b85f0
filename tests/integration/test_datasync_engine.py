"""``[sync] engine = "datasync"`` against the rig.

What is real here: crosswind's aiobotocore DataSync and S3 clients, the moto
server's DataSync API (locations, tasks, executions and their status steps),
Azurite (read by the stand-in with the SAS crosswind passed), moto's S3,
SecantusDB for the rows, crosswind's validation and metadata ingestion.

What is a stand-in (``tests/datasync_server.py``): the DataSync operations moto
lacks (CreateLocationAzureBlob and its update/describe, UpdateLocationS3,
tags) and the whole data plane — the bytes are copied and the task report is
written by the stand-in, in the documented shape, not by DataSync.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)
from pymongo import MongoClient

from crosswind.config import load_config
from crosswind.datasync.run import run_datasync
from crosswind.model import Direction
from crosswind.rig.emulators import Azurite, Moto, Secantus
from crosswind.state import StateStore
from crosswind.sync.objects import options_from_config
from tests.datasync_server import DataSyncServer
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::111222333444:role/crosswind-datasync"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
           "KBHBeksoGMGw==")


@pytest.fixture(scope="session")
def datasync(moto: Moto) -> Iterator[DataSyncServer]:
    server = DataSyncServer(moto.endpoint).start()
    yield server
    server.stop()


@dataclass
class DsEnv:
    config_path: Path
    container: ContainerClient
    table: Any
    bucket: str
    report_bucket: str
    s3: Any
    sas_var: str
    server: DataSyncServer
    mongo_db: str

    def sas(self, hours: int = 2) -> str:
        return generate_container_sas(
            "devstoreaccount1", self.container.container_name, account_key=DEV_KEY,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=hours))

    def cli(self, *args: str, sas: str | None = None,
            unset_sas: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, self.sas_var: sas or self.sas()}
        if unset_sas:
            del env[self.sas_var]
        return subprocess.run([sys.executable, "-m", "crosswind", *args, "--config",
                               str(self.config_path)], capture_output=True, text=True,
                              timeout=300, env=env)

    def keys_in_bucket(self) -> list[str]:
        r = self.s3.list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in r.get("Contents", []))

    def requests(self, op: str) -> list[dict[str, Any]]:
        """This estate's requests of ``op`` (by the container or the task name)."""
        name = f"crosswind-{self.container.container_name}-{self.bucket}"
        return [r["body"] for r in self.server.requests() if r["operation"] == op
                and (name in json.dumps(r["body"]) or self.container.container_name
                     in json.dumps(r["body"]))]


PATTERN = "events/{carrier:[A-Z]{2}}/{event_id}.json"


@pytest.fixture
def make_ds_env(azurite: Azurite, moto: Moto, secantus: Secantus, datasync: DataSyncServer,
                blob_service: BlobServiceClient, s3_client: Any,
                tmp_path: Path) -> Callable[..., DsEnv]:
    tables = TableServiceClient.from_connection_string(azurite.connection_string)

    def make(datasync_extra: str = "", drop: str | None = None) -> DsEnv:
        name = unique("ds").lower()
        container = blob_service.create_container(name)
        table = tables.create_table(name.replace("-", ""))
        s3_client.create_bucket(Bucket=name)
        s3_client.create_bucket(Bucket=f"{name}-reports")
        sas_var = "CW_TEST_SAS_" + name.replace("-", "_").upper()
        ds_lines = textwrap.dedent(f"""
            [datasync]
            endpoint_url = "{datasync.endpoint}"
            sas_token = "env:{sas_var}"
            bucket_access_role_arn = "{ROLE}"
            report_bucket_arn = "arn:aws:s3:::{name}-reports"
            poll_interval_s = 0.05
            report_wait_s = 5
            """) + textwrap.dedent(datasync_extra)
        if drop:
            ds_lines = "\n".join(line for line in ds_lines.splitlines()
                                 if not line.startswith(drop))
        text = textwrap.dedent(f"""
            [azure]
            connection_string = "{azurite.connection_string}"
            container = "{name}"
            table = "{name.replace('-', '')}"
            emulator = true

            [aws]
            bucket = "{name}"
            endpoint_url = "{moto.endpoint}"
            access_key_id = "test"
            secret_access_key = "test"
            documentdb_uri = "{secantus.uri}"
            database = "{name}"
            collection = "rows"
            emulator = true

            [state]
            dir = "state-{name}"

            [sync]
            engine = "datasync"

            [keys]
            pattern = "{PATTERN}"
            partition_key = "{{carrier}}"
            row_key = "{{event_id}}"
            """) + ds_lines + "\n"
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return DsEnv(path, container, table, name, f"{name}-reports", s3_client, sas_var,
                     datasync, name)

    return make


def put_events(env: DsEnv, n: int, start: int = 0) -> list[str]:
    keys = []
    for i in range(start, start + n):
        key = f"events/{'AB' if i % 2 else 'CD'}/e{i:03d}.json"
        env.container.upload_blob(key, json.dumps({"i": i}).encode(), overwrite=True,
                                  metadata={"source": "fxip"})
        env.table.upsert_entity({"PartitionKey": key.split("/")[1],
                                 "RowKey": f"e{i:03d}", "seq": i})
        keys.append(key)
    return keys


def _report(p: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert p.stdout, p.stderr
    return dict(json.loads(p.stdout))


def test_a_run_creates_the_task_moves_validates_and_ingests(
        make_ds_env: Callable[..., DsEnv], secantus: Secantus) -> None:
    """End to end through the CLI. The bytes and the task report come from the
    stand-in data plane; everything crosswind does around them is real."""
    env = make_ds_env()
    keys = put_events(env, 12)
    env.container.upload_blob("other/skip-me.json", b"{}")
    sas = env.sas()
    # --verbose: crosswind's INFO logs are on stderr too, and checked below.
    p = env.cli("--verbose", "sync", "objects", "--direction", "azure-to-aws", "--prefix",
                "events/", "--json", sas=sas)
    assert p.returncode == 0, p.stderr
    r = _report(p)
    assert r["engine"] == "datasync" and r["status"] == "succeeded"
    assert r["copied"]["count"] == 12
    ds = r["datasync"]
    assert [a.split()[0] for a in ds["actions"]] == ["created"] * 3
    assert ds["task_report"]["verified"]["count"] == 12
    assert ds["crosswind_check"] == {"confirmed": 12, "unconfirmed": 0,
                                     "unconfirmed_examples": []}
    assert ds["progress"]["status"] == "SUCCESS"
    assert r["metadata_ingestion"]["status"] == "succeeded"
    assert r["metadata_ingestion"]["written"] == 12
    assert r["validation"]["verdict"] == "pass", r["validation"]
    assert env.keys_in_bucket() == sorted(keys)  # the prefix kept other/ out

    # What crosswind asked DataSync for.
    (task,) = env.requests("CreateTask")
    assert task["TaskMode"] == "ENHANCED"
    assert task["Options"]["TransferMode"] == "CHANGED"
    assert task["Options"]["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
    assert task["Options"]["PreserveDeletedFiles"] == "PRESERVE"
    assert task["Includes"] == [{"FilterType": "SIMPLE_PATTERN", "Value": "/events/*"}]
    assert task["TaskReportConfig"]["Destination"]["S3"]["S3BucketArn"] == \
        f"arn:aws:s3:::{env.report_bucket}"
    (s3loc,) = env.requests("CreateLocationS3")
    assert s3loc["S3Config"]["BucketAccessRoleArn"] == ROLE
    (az,) = env.requests("CreateLocationAzureBlob")
    assert az["SasConfiguration"]["Token"] == sas and "AgentArns" not in az

    # The copies are recorded as verified, and the rows are in DocumentDB.
    cfg = load_config(env.config_path)
    state = StateStore(cfg.state_dir)
    try:
        assert sorted(v.key for v in state.iter_verified("azure-to-aws", "")) == sorted(keys)
    finally:
        state.close()
    client: MongoClient[dict[str, Any]] = MongoClient(secantus.uri)
    try:
        assert client[env.mongo_db]["rows"].count_documents({}) == 12
    finally:
        client.close()

    # A lineage run, as the crosswind engine leaves one.
    events = [json.loads(x) for x in
              (cfg.state_dir / "lineage" / "events.jsonl").read_text().splitlines()]
    assert any(e["job"]["name"] == "sync-objects.azure-to-aws" and e["eventType"] == "COMPLETE"
               for e in events)

    # The SAS value is nowhere but in the two calls that carry it.
    report_file = cfg.state_dir / "reports" / f"sync-objects-{r['run_id']}.json"
    leaks = {"stdout": p.stdout, "stderr": p.stderr, "report": report_file.read_text()}
    for f in cfg.state_dir.rglob("*"):
        if f.is_file():
            leaks[str(f)] = f.read_bytes().decode("latin-1")
    sig = sas.split("sig=")[1].split("&")[0]
    for where, text in leaks.items():
        assert sas not in text and sig not in text, where
    for req in env.server.requests():
        if req["operation"] not in ("CreateLocationAzureBlob", "UpdateLocationAzureBlob"):
            assert sig not in json.dumps(req["body"]), req["operation"]


def test_a_rerun_updates_what_it_made_and_copies_only_changes(
        make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    put_events(env, 4)
    first = _report(env.cli("sync", "objects", "--direction", "azure-to-aws", "--json"))
    assert first["status"] == "succeeded", first.get("error")
    put_events(env, 1, start=10)
    rotated = env.sas(hours=5)  # a new token: DataSync must get it
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--json", sas=rotated)
    assert p.returncode == 0, p.stderr
    second = _report(p)
    ds1, ds2 = first["datasync"], second["datasync"]
    assert ds2["task"] == ds1["task"]
    assert ds2["source_location"] == ds1["source_location"]
    assert ds2["destination_location"] == ds1["destination_location"]
    assert [a.split()[0] for a in ds2["actions"]] == ["updated"] * 3
    assert len(env.requests("CreateTask")) == 1
    assert len(env.requests("CreateLocationAzureBlob")) == 1
    assert env.requests("UpdateTask")[-1]["Options"]["TransferMode"] == "CHANGED"
    updates = [r for r in env.server.requests()
               if r["operation"] == "UpdateLocationAzureBlob"
               and r["body"]["LocationArn"] == ds1["source_location"]]
    assert updates[-1]["body"]["SasConfiguration"]["Token"] == rotated
    assert second["copied"]["count"] == 1  # changed only
    assert second["skipped"]["count"] == 4
    assert second["validation"]["verdict"] == "pass"


def test_delete_maps_to_remove_and_the_guard_cancels(make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    put_events(env, 3)
    env.s3.put_object(Bucket=env.bucket, Key="events/ZZ/gone.json", Body=b"{}")
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--delete",
                "--max-delete", "5", "--max-delete-percent", "100", "--json")
    assert p.returncode == 0, p.stderr
    r = _report(p)
    assert env.requests("CreateTask")[-1]["Options"]["PreserveDeletedFiles"] == "REMOVE"
    assert r["deleted"]["count"] == 1
    assert "events/ZZ/gone.json" not in env.keys_in_bucket()

    # DataSync's estimate of deletes over the limit: the execution is cancelled.
    env.s3.put_object(Bucket=env.bucket, Key="events/ZZ/a.json", Body=b"{}")
    env.s3.put_object(Bucket=env.bucket, Key="events/ZZ/b.json", Body=b"{}")
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--delete",
                "--max-delete", "1", "--max-delete-percent", "100", "--json")
    assert p.returncode == 4, p.stderr
    r = _report(p)
    assert r["status"] == "aborted" and "DataSync estimates 2 deletes" in r["error"]
    assert any(q["operation"] == "CancelTaskExecution" and
               q["body"]["TaskExecutionArn"] == r["datasync"]["execution"]
               for q in env.server.requests())


def test_an_execution_in_error_fails_the_run_clearly(make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    put_events(env, 2)
    sas = env.sas()
    # The detail names the token, as a careless service might: it must not get out.
    env.server.control(fail_next={"ErrorCode": "SasTokenExpired",
                                  "ErrorDetail": f"token {sas} was refused"})
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--json", sas=sas)
    assert p.returncode == 3, p.stderr
    r = _report(p)
    assert r["status"] == "failed"
    assert "ended in ERROR: SasTokenExpired" in r["error"] and "\n" not in r["error"]
    assert "validation" not in r and "metadata_ingestion" not in r
    sig = sas.split("sig=")[1].split("&")[0]
    assert sig not in p.stdout + p.stderr
    assert env.keys_in_bucket() == []
    # The next run is free to start again (the task is not stuck RUNNING).
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--json")
    assert p.returncode == 0, p.stderr


def test_a_missing_setting_is_one_line_naming_it(make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env(drop="bucket_access_role_arn")
    p = env.cli("sync", "objects", "--direction", "azure-to-aws")
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "[datasync].bucket_access_role_arn is required" in lines[0]
    assert env.server.requests() is not None and env.requests("CreateTask") == []


def test_a_filter_datasync_cannot_say_stops_before_any_call(
        make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    before = len(env.server.requests())
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--exclude", "*.tmp")
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "--exclude '*.tmp'" in lines[0]
    assert len(env.server.requests()) == before


def test_workers_with_the_datasync_engine_is_refused_in_one_line(
        make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    before = len(env.server.requests())
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--workers", "local:2")
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "does not apply with [sync] engine" in lines[0]
    assert len(env.server.requests()) == before


def test_an_execution_past_its_timeout_is_cancelled(make_ds_env: Callable[..., DsEnv],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_ds_env("timeout_s = 0.5\n")
    put_events(env, 1)
    monkeypatch.setenv(env.sas_var, env.sas())
    cfg = load_config(env.config_path)
    env.server.control(hang_next=True)
    d = Direction.AZURE_TO_AWS
    outcome = asyncio.run(run_datasync(cfg, d, options_from_config(cfg, d)))
    assert outcome.result.status == "failed" and outcome.result.exit_code == 3
    error = outcome.result.error or ""
    assert "still TRANSFERRING" in error and "timeout_s" in error and "cancelled" in error
    assert any(q["operation"] == "CancelTaskExecution" and
               q["body"]["TaskExecutionArn"] == outcome.details["datasync"]["execution"]
               for q in env.server.requests())


def test_aws_to_azure_is_refused_in_one_line(make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    p = env.cli("sync", "objects", "--direction", "aws-to-azure")
    assert p.returncode == 2
    assert 'moves objects azure-to-aws only' in p.stderr


def test_a_repointed_container_replaces_what_crosswind_made(
        make_ds_env: Callable[..., DsEnv], azurite: Azurite) -> None:
    """A location cannot be re-pointed: a new one and a new task are made, and
    crosswind's old ones deleted (found by their tags)."""
    env = make_ds_env()
    put_events(env, 1)
    first = _report(env.cli("sync", "objects", "--direction", "azure-to-aws", "--json"))
    assert first["status"] == "succeeded", first.get("error")
    # The same container under another URL (localhost for 127.0.0.1): another location.
    url = f"{azurite.blob_url}/{env.container.container_name}".replace("127.0.0.1",
                                                                       "localhost")
    text = env.config_path.read_text().replace(
        "[datasync]\n", f'[datasync]\ncontainer_url = "{url}"\n')
    env.config_path.write_text(text)
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--json")
    assert p.returncode == 0, p.stderr
    second = _report(p)
    ds1, ds2 = first["datasync"], second["datasync"]
    assert ds2["source_location"] != ds1["source_location"]
    assert ds2["destination_location"] == ds1["destination_location"]
    assert ds2["task"] != ds1["task"]
    assert f"deleted old task {ds1['task']}" in ds2["actions"]
    assert f"deleted old location {ds1['source_location']}" in ds2["actions"]
    listed = {r["LocationArn"] for r in _list_locations(env.server)}
    assert ds1["source_location"] not in listed and ds2["source_location"] in listed


def _list_locations(server: DataSyncServer) -> list[dict[str, Any]]:
    import boto3

    ds = boto3.client("datasync", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    return list(ds.list_locations(MaxResults=100)["Locations"])


def test_a_dry_run_shows_the_requests_and_calls_nothing(
        make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    put_events(env, 2)
    before = len(env.server.requests())
    sas = env.sas()
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--dry-run", "--json", sas=sas)
    assert p.returncode == 0, p.stderr
    r = _report(p)
    would = r["datasync"]["would_request"]
    assert would["CreateTask"]["TaskMode"] == "ENHANCED"
    assert "SasConfiguration" not in would["CreateLocationAzureBlob"]
    assert len(env.server.requests()) == before and env.keys_in_bucket() == []
    assert "validation" not in r


def test_the_terminal_summary_names_the_execution(make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    put_events(env, 2)
    p = env.cli("sync", "objects", "--direction", "azure-to-aws")
    assert p.returncode == 0, p.stderr
    assert "DataSync: created task arn:aws:datasync:" in p.stderr
    assert "DataSync execution arn:aws:datasync:" in p.stderr and "SUCCESS" in p.stderr
    assert "crosswind confirmed 2 of the copies DataSync verified" in p.stderr
    assert "validation: pass" in p.stderr


def test_an_interrupted_run_is_resumed_by_following_the_same_execution(
        make_ds_env: Callable[..., DsEnv], monkeypatch: pytest.MonkeyPatch) -> None:
    """crosswind stopped while DataSync runs (Ctrl-C, a crash): the execution goes
    on, and the next run follows it instead of starting another."""
    env = make_ds_env()
    keys = put_events(env, 3)
    monkeypatch.setenv(env.sas_var, env.sas())
    cfg = load_config(env.config_path)
    d = Direction.AZURE_TO_AWS
    env.server.control(hang_next=True)

    def starts() -> int:
        return sum(q["operation"] == "StartTaskExecution" for q in env.server.requests())

    before = starts()

    async def interrupted() -> None:
        run = asyncio.create_task(run_datasync(cfg, d, options_from_config(cfg, d)))
        # The server runs in another thread: no event to wait on.
        while starts() == before:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # following it now
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(interrupted())
    state = StateStore(cfg.state_dir)
    try:
        assert state.runs("objects")[0]["status"] == "interrupted"
    finally:
        state.close()
    env.server.control(release=True)
    outcome = asyncio.run(run_datasync(cfg, d, options_from_config(cfg, d)))
    assert outcome.result.status == "succeeded", outcome.result.error
    assert starts() == before + 1  # the first run's only
    assert outcome.details["datasync"]["task_report"]["verified"]["count"] == 3
    assert env.keys_in_bucket() == sorted(keys)


def test_objects_datasync_failed_are_reported_and_the_rest_ingested(
        make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    keys = put_events(env, 4)
    env.server.control(fail_keys=[keys[1]])
    try:
        p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--json")
    finally:
        env.server.control(fail_keys=[])
    assert p.returncode == 1, p.stderr
    r = _report(p)
    assert r["status"] == "failed"
    assert r["failures"] == [{"key": keys[1], "kind": "DataSyncTransferred",
                              "reason": "AccessDenied: stand-in: refused for the test"}]
    assert r["failed"]["count"] == 1 and r["copied"]["count"] == 3
    assert r["metadata_ingestion"]["written"] == 3  # the confirmed copies' rows
    assert r["validation"]["verdict"] == "fail"
    # The object and its row: both missing, both found by crosswind's validation.
    assert r["validation"]["discrepancy_counts"] == {"missing_on_destination": 2}


def test_an_unresolvable_sas_reference_is_one_line_naming_the_setting(
        make_ds_env: Callable[..., DsEnv]) -> None:
    env = make_ds_env()
    p = env.cli("sync", "objects", "--direction", "azure-to-aws", "--json", unset_sas=True)
    assert p.returncode == 2, p.stderr
    r = _report(p)
    assert "[datasync].sas_token" in r["error"] and env.sas_var in r["error"]
    assert "\n" not in r["error"]
    assert env.requests("CreateLocationAzureBlob") == []
