"""The replication service on the rig: an estate with its event queues (an
Azurite Storage Queue for Event Grid deliveries, a moto SQS queue that the
bucket's real S3 event notifications go to), and the service run as the real
CLI in a child process, watched through the state store as `crosswind status`
watches it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient
from pymongo import MongoClient

from crosswind.config import Config, load_config
from crosswind.entities import CODEC_OPTIONS, Entity, document_to_entity
from crosswind.live.events import azure_queue_body, blob_event
from crosswind.live.report import read_status
from crosswind.migration import MigrationStore, Phase
from crosswind.rig.emulators import Secantus
from crosswind.state import StateStore
from crosswind.stores.azure_tables import from_sdk, to_sdk
from tests.integration.conftest import Env, unique
from tests.integration.metadata.conftest import mongo, table_service

__all__ = ["mongo", "table_service"]  # session fixtures shared with the metadata tests


@dataclass
class LiveEnv:
    env: Env
    queue: QueueClient
    sqs: Any
    sqs_url: str
    path: Path
    #: with rows=True: the Azure table (sync SDK) and the DocumentDB collection
    table: Any = None
    coll: Any = None

    def put_rows(self, *entities: Entity) -> None:
        for e in entities:
            self.table.upsert_entity(to_sdk(e), mode="replace")

    def azure_rows(self) -> dict[tuple[str, str], Entity]:
        return {(e.partition_key, e.row_key): e
                for e in (from_sdk(r) for r in self.table.list_entities())}

    def documents(self) -> dict[tuple[str, str], Entity]:
        return {(e.partition_key, e.row_key): e
                for e in (document_to_entity(d) for d in self.coll.find())}

    @property
    def config(self) -> Config:
        return load_config(self.path)

    @property
    def container(self) -> Any:
        return self.env.container

    @property
    def bucket(self) -> str:
        return self.env.bucket

    @property
    def s3(self) -> Any:
        return self.env.s3

    def put_blob(self, key: str, data: bytes, *, event: bool = True, **kw: Any) -> None:
        """Write a blob and enqueue the event Event Grid would deliver for it."""
        r = self.container.get_blob_client(key).upload_blob(data, overwrite=True, **kw)
        if event:
            self.blob_event("upsert", key, etag=str(r["etag"]).strip('"'), size=len(data))

    def delete_blob(self, key: str, *, event: bool = True) -> None:
        self.container.delete_blob(key)
        if event:
            self.blob_event("delete", key)

    def blob_event(self, op: str, key: str, **kw: Any) -> None:
        ev = blob_event(op, self.container.container_name, key,  # type: ignore[arg-type]
                        event_time=datetime.now(UTC), **kw)
        self.queue.send_message(azure_queue_body(ev))

    def s3_keys(self) -> dict[str, bytes]:
        """What the bucket holds (a key deleted between listing and reading is left out:
        the service may be at work)."""
        out: dict[str, bytes] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for o in page.get("Contents", []):
                try:
                    out[o["Key"]] = self.s3.get_object(Bucket=self.bucket, Key=o["Key"])[
                        "Body"].read()
                except self.s3.exceptions.NoSuchKey:
                    continue
        return out

    def blob_keys(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for b in self.container.list_blobs():
            try:
                out[b.name] = self.container.download_blob(b.name).readall()
            except ResourceNotFoundError:
                continue
        return out

    def set_phase(self, phase: Phase) -> None:
        state = StateStore(self.config.state_dir)
        try:
            store = MigrationStore(state)
            store.transition(store.get().version, phase, by="test")
        finally:
            state.close()

    def status(self) -> dict[str, Any]:
        return read_status(self.config)


@pytest.fixture
def make_live_env(make_env: Callable[..., Env], queue_service: QueueServiceClient,
                  sqs_client: Any, secantus: Secantus, table_service: TableServiceClient,
                  mongo: MongoClient[dict[str, Any]]) -> Callable[..., LiveEnv]:
    def make(replicate: str = "", *, rows: bool = False, metadata: str = "",
             **kw: Any) -> LiveEnv:
        qname = unique("q").lower()[:63]
        queue_service.create_queue(qname)
        url = sqs_client.create_queue(QueueName=unique("sqs"))["QueueUrl"]
        env = make_env(**kw)
        arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        env.s3.put_bucket_notification_configuration(  # type: ignore[attr-defined]
            Bucket=env.bucket, NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        text = env.config_path.read_text()
        text = text.replace("[aws]\n", f'[aws]\nsqs_queue_url = "{url}"\n', 1)
        text = text.replace("[azure]\n", f'[azure]\nqueue = "{qname}"\n', 1)
        table = coll = None
        if rows:
            tname = env.bucket.replace("-", "")
            table = table_service.create_table(tname)
            coll = mongo[env.bucket].get_collection("rows", codec_options=CODEC_OPTIONS)
            text = text.replace("[azure]\n", f'[azure]\ntable = "{tname}"\n', 1)
            text = text.replace("[aws]\n", f'[aws]\ndocumentdb_uri = "{secantus.uri}"\n'
                                f'database = "{env.bucket}"\ncollection = "rows"\n', 1)
            text += ("\n[metadata]\nbatch_size = 50\nflush_interval_s = 0.2\n"
                     + metadata + "\n")
        # Quick settings for tests; a test's own [replicate] lines win.
        defaults = {"http": '"127.0.0.1:0"', "status_interval_s": "0.2",
                    "shutdown_grace_s": "10", "receive_wait_s": "1", "breaker_reset_s": "2",
                    "table_poll_interval_s": "0.5"}
        given = {line.split("=")[0].strip() for line in replicate.splitlines() if "=" in line}
        text += ("\n[replicate]\n" + "".join(f"{k} = {v}\n" for k, v in defaults.items()
                                            if k not in given) + replicate + "\n")
        env.config_path.write_text(text)
        return LiveEnv(env, queue_service.get_queue_client(qname), sqs_client, url,
                       env.config_path, table, coll)

    return make


class Service:
    """``crosswind replicate`` in a child process."""

    def __init__(self, live: LiveEnv, *args: str) -> None:
        self.live = live
        self.log = live.path.with_suffix(f".{int(time.time() * 1000)}.log")
        env = {**os.environ, "CROSSWIND_VERBOSE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crosswind", "replicate", "-c", str(live.path), *args],
            stdout=subprocess.PIPE, stderr=self.log.open("wb"), env=env)

    def wait_until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60,
                   what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"replicate exited with {self.proc.returncode} while "
                                     f"waiting for {what}:\n{self.stderr()}")
            st = self.live.status()
            if st["service"]["running"] and pred(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last status:\n"
                             f"{json.dumps(st, indent=1)[:3000]}\n{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)


@pytest.fixture
def services() -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(live: LiveEnv, *args: str) -> Service:
        s = Service(live, *args)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


def stream(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in st["streams"] if s["name"] == name), {"applied": 0})
