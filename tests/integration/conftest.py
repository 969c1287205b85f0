"""Real servers on loopback, started once per test session.

Azurite (Blob, Queue, Table), moto server (S3 and friends) and SecantusDB
(MongoDB wire protocol) each run as a child process on a free port, are
polled until ready and stopped with SIGTERM at the end. Tests isolate
themselves with fresh container/bucket/database names rather than restarts.
"""

from __future__ import annotations

import itertools
import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueServiceClient

from crosswind.config import Config, load_config
from crosswind.rig.emulators import Azurite, Moto, Secantus

_counter = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = Moto().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secantus() -> Iterator[Secantus]:
    server = Secantus().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def blob_service(azurite: Azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="session")
def s3_client(moto: Moto) -> object:
    return boto3.client(
        "s3", endpoint_url=moto.endpoint, aws_access_key_id="test",
        aws_secret_access_key="test", region_name="us-east-1",
    )


@pytest.fixture(scope="session")
def queue_service(azurite: Azurite) -> QueueServiceClient:
    """Azurite's queue service (sync SDK), to create queues and write as others do."""
    return QueueServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="session")
def sqs_client(moto: Moto) -> object:
    return boto3.client(
        "sqs", endpoint_url=moto.endpoint, aws_access_key_id="test",
        aws_secret_access_key="test", region_name="us-east-1",
    )


@dataclass
class Env:
    """One isolated estate: a fresh container, bucket and state dir, and a config for them."""

    config_path: Path
    config: Config
    container: ContainerClient
    bucket: str
    s3: object
    tmp: Path


@pytest.fixture
def make_env(
    azurite: Azurite, moto: Moto, blob_service: BlobServiceClient, s3_client: object,
    tmp_path: Path,
) -> Callable[..., Env]:
    def make(extra: str = "", container_name: str | None = None, **sync: object) -> Env:
        name = unique("cw")
        # A fixed container name when a test needs one; the bucket stays unique.
        cname = container_name or name
        container = blob_service.create_container(cname)
        s3_client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
        settings = {"concurrency": 16, **sync}
        sync_lines = "\n".join(f"{k} = {v!r}" for k, v in settings.items()).replace("'", '"')
        text = textwrap.dedent(f"""
            [azure]
            connection_string = "{azurite.connection_string}"
            container = "{cname}"
            emulator = true

            [aws]
            bucket = "{name}"
            endpoint_url = "{moto.endpoint}"
            access_key_id = "test"
            secret_access_key = "test"
            emulator = true

            [state]
            dir = "state-{name}"

            [sync]
            """) + sync_lines + "\n" + textwrap.dedent(extra)
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return Env(path, load_config(path), container, name, s3_client, tmp_path)

    return make
