"""Metadata-row fixtures: a fresh table (Azurite), database (SecantusDB),
container and state dir per test, and a config naming them all.

Helpers write rows with the SDKs directly (not through crosswind), so a test
compares crosswind's result with what the services themselves hold.
"""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from pymongo import MongoClient
from pymongo.collection import Collection

from crosswind.config import Config, load_config
from crosswind.entities import CODEC_OPTIONS, Entity, document_to_entity
from crosswind.rig.emulators import Azurite, Secantus, _bin, _wait_port, free_port, stop_process
from crosswind.stores.azure_tables import from_sdk, to_sdk
from tests.integration.conftest import unique

T = TypeVar("T")

DEMO_PATTERN = ("events/{date:%Y/%m/%d}/{carrier:[A-Z0-9]{2}}{flight:int}/"
                "{origin:[A-Z]{3}}-{dest:[A-Z]{3}}/{event_type}-{event_id}.json")
DEMO_KEYS = f"""
[keys]
pattern = "{DEMO_PATTERN}"
partition_key = "{{carrier}}{{flight}}_{{date:%Y%m%d}}"
row_key = "{{event_id}}"
"""


def arun(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class MetaEnv:
    config_path: Path
    config: Config
    table: Any  # azure.data.tables.TableClient (sync), for arranging and checking
    coll: Collection[dict[str, Any]]
    container: ContainerClient
    tmp: Path

    def put_rows(self, *entities: Entity) -> None:
        for e in entities:
            self.table.upsert_entity(to_sdk(e), mode="replace")

    def put_many(self, entities: list[Entity]) -> None:
        """Bulk arrange: transactions of 100 rows of one partition."""
        by_pk: dict[str, list[Entity]] = {}
        for e in entities:
            by_pk.setdefault(e.partition_key, []).append(e)
        for rows in by_pk.values():
            for i in range(0, len(rows), 100):
                self.table.submit_transaction(
                    [("upsert", to_sdk(e), {"mode": "replace"}) for e in rows[i : i + 100]])

    def delete_rows(self, *keys: tuple[str, str]) -> None:
        for pk, rk in keys:
            self.table.delete_entity(pk, rk)

    def azure_rows(self) -> dict[tuple[str, str], Entity]:
        return {(e.partition_key, e.row_key): e
                for e in (from_sdk(r) for r in self.table.list_entities())}

    def documents(self) -> dict[tuple[str, str], Entity]:
        return {(e.partition_key, e.row_key): e
                for e in (document_to_entity(d) for d in self.coll.find())}

    def reload(self, extra: str = "") -> MetaEnv:
        text = self.config_path.read_text() + textwrap.dedent(extra)
        self.config_path.write_text(text)
        self.config = load_config(self.config_path)
        return self


@pytest.fixture(scope="session")
def table_service(azurite: Azurite) -> TableServiceClient:
    return TableServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="session")
def mongo(secantus: Secantus) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        secantus.uri, uuidRepresentation="standard", tz_aware=True)
    yield client
    client.close()


def meta_config(azurite: Azurite, mongo_uri: str, name: str, metadata: str = "",
                keys: str = DEMO_KEYS) -> str:
    return textwrap.dedent(f"""
        [azure]
        connection_string = "{azurite.connection_string}"
        container = "{name}"
        table = "{name.replace('-', '')}"
        emulator = true

        [aws]
        bucket = "{name}"
        documentdb_uri = "{mongo_uri}"
        database = "{name}"
        collection = "rows"
        emulator = true

        [state]
        dir = "state-{name}"

        [metadata]
        """) + _with_defaults(textwrap.dedent(metadata)) + keys


# Small batches and short waits keep tests quick; a test's own settings win.
_TEST_DEFAULTS = {"batch_size": "50", "idle_timeout_s": "0.5", "flush_interval_s": "0.2"}


def _with_defaults(metadata: str) -> str:
    given = {line.split("=")[0].strip() for line in metadata.splitlines() if "=" in line}
    extra = "".join(f"{k} = {v}\n" for k, v in _TEST_DEFAULTS.items() if k not in given)
    return extra + metadata


@pytest.fixture
def make_meta_env(azurite: Azurite, secantus: Secantus, table_service: TableServiceClient,
                  mongo: MongoClient[dict[str, Any]], blob_service: BlobServiceClient,
                  tmp_path: Path) -> Callable[..., MetaEnv]:
    def make(metadata: str = "", mongo_uri: str | None = None,
             client: MongoClient[dict[str, Any]] | None = None) -> MetaEnv:
        name = unique("md").lower()
        table = table_service.create_table(name.replace("-", ""))
        container = blob_service.create_container(name)
        path = tmp_path / f"{name}.toml"
        path.write_text(meta_config(azurite, mongo_uri or secantus.uri, name, metadata))
        coll = (client or mongo)[name].get_collection("rows", codec_options=CODEC_OPTIONS)
        return MetaEnv(path, load_config(path), table, coll, container, tmp_path)

    return make


@pytest.fixture
def short_history_secantus(tmp_path: Path) -> Iterator[str]:
    """A SecantusDB of its own that keeps only 50 oplog entries (pruned every
    1,000 writes), so a saved resume token can really fall out of the history."""
    port = free_port()
    proc = subprocess.Popen(
        [_bin("secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path",
         ":memory:", "--log-level", "ERROR", "--oplog-max-entries", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_port(port, proc, "secantusd", 60)
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
    stop_process(proc)
