"""Replication service benchmark: `crosswind replicate` under a sustained
flight-event load on the rig, in both directions.

Per direction, on one rig (Azurite, moto, SecantusDB; started here, loopback):

1. an estate: container + Azure Storage Queue (Event Grid deliveries), bucket +
   SQS queue with real S3 → SQS notifications, table + DocumentDB collection,
   a fresh state directory; after cutover the migration phase is set first
   (pre_cutover → cutting_over → post_cutover, ``crosswind.migration``);
2. a starting estate on the primary (``--seed-objects`` flight events, each an
   object and its row), written before the service starts (no events: the
   first reconcile brings it over);
3. ``crosswind replicate`` — the real CLI, a child process — with a config
   written here; the benchmark waits for its first reconcile to finish;
4. the load: ``--rate`` changes/s for ``--duration`` s on the primary, open loop
   (change *i* is due at ``t0 + i/rate`` whether or not earlier ones finished;
   how late each one starts is measured, and a generator that falls behind is
   reported, never hidden). The schedule and its pacing are crosswind's own
   (``crosswind.loadtest.schedule``/``pacing``, as ``crosswind loadtest`` uses
   them: kinds in the mix's exact proportions, keys picked by seed, one change
   of a key at a time); the writes and the comparison stay this file's own
   SDK code. A change is one of the mix (``--mix``):

   * ``new``: a new event object and its row (the estate's main traffic);
   * ``overwrite``: an event re-sent (new bytes, rev + 1) and its row updated;
   * ``metadata``: only the object's user metadata changes (Azure: Set Blob
     Metadata, a new etag; S3: a copy onto itself with REPLACE metadata);
   * ``delete``: the object and its row deleted;
   * ``row``: only the row changes (a merge of a few properties).

   Before cutover the generator enqueues the Event Grid events Azure would
   deliver (Azurite emits none): ``BlobCreated`` for a put, ``BlobDeleted``
   for a delete, with a per-blob increasing ``sequencer``, the blob's etag and
   size, ``eventTime`` = when the write was sent. **A metadata-only change
   enqueues nothing**, as on Azure (Event Grid fires no BlobCreated for Set
   Blob Metadata): the service's reconcile finds it and counts it as drift, so
   its lag is the reconcile's, bounded by ``--reconcile-interval``. After
   cutover moto delivers the real S3 → SQS notifications (a copy onto itself is
   ``ObjectCreated:Copy``), and rows follow the DocumentDB change stream.
   Row deletes before cutover reach DocumentDB only through the row reconcile
   (Azure Tables have no change feed and a poll cannot see a delete), with
   ``[metadata] propagate_deletes = true``.

5. while it runs, every ``--sample-s``: the service's ``/api/status`` (per stream
   applied, backlog, lag), pending keys, the event queue's depth read
   independently, the service's RSS and CPU (psutil), the servers' and the
   generator's CPU, the load average; a line every 10 s on stderr;
6. independent end-to-end probes: a sample of the changes is polled on the
   replica until it shows (``--probe-every``), giving lag measured outside
   crosswind, next to the service's own figures;
7. after the load: the drain (event backlog and pending keys at 0), then a
   reconcile that started after the last change (objects and rows), then the
   service is stopped (SIGTERM, exit code recorded);
8. the **independent comparison**: every object (bytes, content-type, user
   metadata less crosswind's own ``crosswind-*``/``crosswind_*`` entries) and every
   row (each property with its type, after the documented EDM → BSON mapping)
   read on both sides with the SDKs, by this file's own code, not crosswind's:
   missing, extra and different counts (lost changes must be 0). The primary
   is also checked against what the generator believes it wrote.

Targets (issue 7): lag p99 < 30 s and max < 60 s on the event-driven streams
(``azure-blob-events``/``table-poll`` before cutover, ``s3-events``/``docdb-changes``
after), service RSS flat (last vs first minute of the load), 0 lost changes.
The reconcile streams are the safety net; their lag is the reconcile interval
by design and is reported, not judged.

    python bench/replicate.py [--rate 50] [--duration 300] [--post-duration 60]
                              [--quick] [--only pre|post] [--py-spy]

Results: ``.bench/replicate.json`` (``--out``) and a summary on stdout. The machine
has 2 cores shared by the three servers, the generator and the service (and
possibly other users): figures are noisy, the load average is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psutil
from aiobotocore.session import get_session
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableServiceClient, UpdateMode
from azure.data.tables.aio import TableClient as AioTableClient
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.blob.aio import ContainerClient as AioContainerClient
from azure.storage.queue import QueueClient
from azure.storage.queue.aio import QueueClient as AioQueueClient
from benchlib import load_now, machine, table, write_json
from botocore.config import Config as BotoConfig
from bson import Binary, Int64
from pymongo import AsyncMongoClient, MongoClient

from crosswind.live.events import azure_queue_body, blob_event
from crosswind.live.status import StatusStore
from crosswind.loadtest import flights
from crosswind.loadtest.pacing import PaceStats, run_schedule
from crosswind.loadtest.pacing import q as _q
from crosswind.loadtest.schedule import FLIGHT_EVENT_SIZES, Op, ScheduleError, plan
from crosswind.loadtest.schedule import parse_mix as parse_kinds
from crosswind.migration import MigrationStore, Phase
from crosswind.rig.emulators import Rig, free_port, running_rig
from crosswind.state import StateStore

VENV_BIN = Path(sys.executable).parent
PRE, POST = "pre", "post"
DIRECTION = {PRE: "azure-to-aws", POST: "aws-to-azure"}
#: the streams the lag targets apply to (event driven); the reconciles are the safety net
EVENT_STREAMS = {PRE: ("azure-blob-events", "table-poll"), POST: ("s3-events", "docdb-changes")}
TARGET_P99_S = 30.0
TARGET_MAX_S = 60.0
#: RSS is "flat" when the last minute's median is within this of the first minute's
RSS_FLAT_TOLERANCE = 0.10
DEFAULT_MIX = "new=40,overwrite=15,metadata=15,delete=10,row=20"
KINDS = ("new", "overwrite", "metadata", "delete", "row")
RESERVED_PREFIXES = ("crosswind-", "crosswind_")
KEY_PATTERN = flights.KEY_PATTERN


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the flight-event estate ------------------------------------------------------------

#: a row's properties in a neutral form: name -> (type tag, value); tags are the EDM
#: types: s String, i32 Int32, i64 Int64, f Double, b Boolean, dt DateTime (ms), uuid Guid
Props = dict[str, tuple[str, Any]]


@dataclass
class FlightEvent:
    key: str
    pk: str
    rk: str
    carrier: str
    flight: int
    origin: str
    dest: str
    event_type: str
    at: datetime
    rev: int = 1
    row_version: int = 1
    status: str = "new"


@dataclass(frozen=True)
class ObjState:
    md5: str
    size: int
    content_type: str
    metadata: tuple[tuple[str, str], ...]


class Fake:
    """Flight events (names from ``crosswind.loadtest.flights``, by ordinal), their
    bodies, metadata and rows; deterministic per seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.namespace = f"bench-{seed}"

    def event(self, ordinal: int) -> FlightEvent:
        e = flights.flight_event(self.namespace, ordinal)
        return FlightEvent(e.key, e.pk, e.rk, e.carrier, e.flight, e.origin, e.dest,
                           e.event_type, e.at)

    def body(self, ev: FlightEvent) -> bytes:
        r = self.rng
        doc: dict[str, Any] = {
            "eventId": ev.rk, "flight": f"{ev.carrier}{ev.flight:04d}", "origin": ev.origin,
            "destination": ev.dest, "type": ev.event_type,
            "at": ev.at.isoformat(timespec="milliseconds"), "rev": ev.rev,
        }
        if ev.event_type == "position" or r.random() < 0.3:
            doc["track"] = [[round(r.uniform(-90, 90), 5), round(r.uniform(-180, 180), 5),
                             r.randint(0, 41000), r.randint(0, 86399)]
                            for _ in range(r.randint(5, 120))]
        if r.random() < 0.02:  # a raw ACARS/ADS-B dump now and then: 64-200 KiB
            doc["raw"] = r.randbytes(r.randint(32, 100) * 1024).hex()
        return json.dumps(doc, separators=(",", ":")).encode()

    def metadata(self, ev: FlightEvent) -> dict[str, str]:
        return {"flightid": f"{ev.carrier}{ev.flight:04d}", "eventtype": ev.event_type,
                "rev": str(ev.rev), "producer": "ops-feed", "status": ev.status}

    def row(self, ev: FlightEvent) -> Props:
        r = self.rng
        return {
            "Carrier": ("s", ev.carrier), "FlightNumber": ("i32", ev.flight),
            "Origin": ("s", ev.origin), "Destination": ("s", ev.dest),
            "EventType": ("s", ev.event_type), "EventTime": ("dt", ev.at),
            "Sequence": ("i64", r.randint(2**33, 2**52)),
            "DelayMinutes": ("f", self.double()), "Cancelled": ("b", r.random() < 0.03),
            "CorrelationId": ("uuid", uuid.UUID(int=r.getrandbits(128), version=4)),
            "Version": ("i32", ev.row_version), "ObjectName": ("s", ev.key),
        }

    def row_change(self, ev: FlightEvent) -> Props:
        """What a row-only update changes (merged into the row)."""
        return {"Version": ("i32", ev.row_version), "DelayMinutes": ("f", self.double()),
                "Cancelled": ("b", self.rng.random() < 0.05)}

    def double(self) -> float:
        # never integral: a JSON "15.0" must not come back as an Int32 from anyone
        return round(self.rng.uniform(-5, 240), 2) + 0.005


def content_type_of(ev: FlightEvent) -> str:
    return "application/json" if ev.rev % 2 else "application/json; charset=utf-8"


def norm_metadata(md: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    """User metadata as compared: names lower-cased (Azure keeps case but compares
    without it, S3 lower-cases), crosswind's own reserved entries left out."""
    return tuple(sorted((k.lower(), v) for k, v in (md or {}).items()
                        if not k.lower().startswith(RESERVED_PREFIXES)))


# -- rows in the SDKs' forms, and back (independent of crosswind's mapping code) --------
def _ms(dt: datetime) -> datetime:
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def to_azure(props: Props) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (tag, v) in props.items():
        if tag == "i32":
            out[name] = EntityProperty(v, EdmType.INT32)
        elif tag == "i64":
            out[name] = EntityProperty(v, EdmType.INT64)
        elif tag == "f":
            out[name] = EntityProperty(v, EdmType.DOUBLE)
        else:  # s, b, dt, uuid: the SDK types them itself
            out[name] = v
    return out


_EDM_TAGS = {"Edm.Int64": "i64", "Edm.Int32": "i32", "Edm.Double": "f", "Edm.String": "s",
             "Edm.Boolean": "b", "Edm.Guid": "uuid", "Edm.DateTime": "dt", "Edm.Binary": "bin"}


def from_azure(entity: dict[str, Any]) -> Props:
    out: Props = {}
    for name, v in entity.items():
        if name in ("PartitionKey", "RowKey", "Timestamp", "odata.etag"):
            continue
        if isinstance(v, EntityProperty):
            edm = v.edm_type.value if isinstance(v.edm_type, EdmType) else str(v.edm_type)
            tag = _EDM_TAGS.get(edm, edm)
            value = v.value
            if tag in ("i64", "i32"):
                value = int(value)
            elif tag == "dt":
                value = _ms(value)
            out[name] = (tag, value)
        elif isinstance(v, bool):
            out[name] = ("b", v)
        elif isinstance(v, int):
            out[name] = ("i32", v)
        elif isinstance(v, float):
            out[name] = ("f", v)
        elif isinstance(v, str):
            out[name] = ("s", v)
        elif isinstance(v, datetime):
            out[name] = ("dt", _ms(v))
        elif isinstance(v, uuid.UUID):
            out[name] = ("uuid", v)
        elif isinstance(v, bytes):
            out[name] = ("bin", v)
        else:
            out[name] = (type(v).__name__, repr(v))
    return out


def to_mongo(ev: FlightEvent, props: Props) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": f"{ev.pk}/{ev.rk}", "PartitionKey": ev.pk, "RowKey": ev.rk}
    for name, (tag, v) in props.items():
        doc[name] = mongo_value(tag, v)
    return doc


def mongo_value(tag: str, v: Any) -> Any:
    if tag == "i64":
        return Int64(v)
    if tag == "uuid":
        return Binary.from_uuid(v)
    return v


def from_mongo(doc: dict[str, Any]) -> Props:
    out: Props = {}
    for name, v in doc.items():
        if name in ("_id", "PartitionKey", "RowKey", "_cw"):
            continue
        if isinstance(v, bool):
            out[name] = ("b", v)
        elif isinstance(v, Int64):
            out[name] = ("i64", int(v))
        elif isinstance(v, int):
            out[name] = ("i32" if -2**31 <= v < 2**31 else "i64", v)
        elif isinstance(v, float):
            out[name] = ("f", v)
        elif isinstance(v, str):
            out[name] = ("s", v)
        elif isinstance(v, datetime):
            out[name] = ("dt", _ms(v))
        elif isinstance(v, uuid.UUID):
            out[name] = ("uuid", v)
        elif isinstance(v, Binary) and v.subtype == 4:
            out[name] = ("uuid", v.as_uuid())
        elif isinstance(v, bytes | Binary):
            out[name] = ("bin", bytes(v))
        else:
            out[name] = (type(v).__name__, repr(v))
    return out


def comparable(props: Props) -> dict[str, tuple[str, Any]]:
    return {k: (t, _ms(v) if t == "dt" else v) for k, (t, v) in props.items()}


# -- the estate -----------------------------------------------------------------------
@dataclass
class Estate:
    phase: str
    rig: Rig
    workdir: Path
    container: str
    queue: str
    bucket: str
    sqs_url: str
    table: str
    database: str
    collection: str
    state_dir: Path
    config_path: Path
    http_port: int

    @property
    def direction(self) -> str:
        return DIRECTION[self.phase]

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.rig.moto.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=BotoConfig(max_pool_connections=32,
                                              s3={"addressing_style": "path"}))

    def sqs(self) -> Any:
        return boto3.client("sqs", endpoint_url=self.rig.moto.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def blob_service(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.rig.azurite.connection_string)

    def mongo(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.rig.secantus.uri, uuidRepresentation="standard")


def create_estate(rig: Rig, phase: str, workdir: Path, reconcile_interval: float,
                  concurrency: int, metadata_concurrency: int | None = None) -> Estate:
    name = f"bench-live-{phase}"
    est = Estate(phase, rig, workdir, container=name, queue=f"{name}-events", bucket=name,
                 sqs_url="", table=f"BenchLive{phase.title()}", database=f"benchlive{phase}",
                 collection="rows", state_dir=workdir / f"state-{phase}",
                 config_path=workdir / f"replicate-{phase}.toml", http_port=free_port())
    est.blob_service().create_container(est.container)
    QueueClient.from_connection_string(rig.azurite.connection_string, est.queue).create_queue()
    TableServiceClient.from_connection_string(rig.azurite.connection_string).create_table(
        est.table)
    est.s3().create_bucket(Bucket=est.bucket)
    est.sqs_url = est.sqs().create_queue(QueueName=f"{name}-s3")["QueueUrl"]
    est.mongo()[est.database][est.collection].insert_one({"_id": "x"})  # creates it
    est.mongo()[est.database][est.collection].delete_one({"_id": "x"})
    est.config_path.write_text(textwrap.dedent(f"""\
        # written by bench/replicate.py
        [azure]
        connection_string = "{rig.azurite.connection_string}"
        container = "{est.container}"
        queue = "{est.queue}"
        table = "{est.table}"
        emulator = true

        [aws]
        bucket = "{est.bucket}"
        endpoint_url = "{rig.moto.endpoint}"
        access_key_id = "test"
        secret_access_key = "test"
        sqs_queue_url = "{est.sqs_url}"
        documentdb_uri = "{rig.secantus.uri}"
        database = "{est.database}"
        collection = "{est.collection}"
        emulator = true

        [state]
        dir = "{est.state_dir}"

        [keys]
        pattern = "{KEY_PATTERN}"
        partition_key = "{{carrier}}{{flight}}_{{date:%Y%m%d}}"
        row_key = "{{event_id}}"

        [metadata]
        # row deletes before cutover travel only with the row reconcile
        propagate_deletes = true
        {"" if metadata_concurrency is None else f"concurrency = {metadata_concurrency}"}

        [replicate]
        http = "127.0.0.1:{est.http_port}"
        reconcile_interval_s = {reconcile_interval}
        concurrency = {concurrency}
        # the load deletes ~10 % of its changes: the guard must not hold them
        max_delete_count = 1000000
        max_delete_percent = 100
        """))
    if phase == POST:
        state = StateStore(est.state_dir)
        try:
            store = MigrationStore(state)
            store.transition(store.get().version, Phase.CUTTING_OVER, by="bench")
            store.transition(store.get().version, Phase.POST_CUTOVER, by="bench")
        finally:
            state.close()
    return est


def enable_s3_notifications(est: Estate) -> None:
    """Configured after the starting estate is written, as when replication is set up
    on an existing bucket (moto then sends an s3:TestEvent, which the service ignores)."""
    arn = est.sqs().get_queue_attributes(QueueUrl=est.sqs_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    est.s3().put_bucket_notification_configuration(
        Bucket=est.bucket, NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})


# -- the primary and the replica, async -----------------------------------------------
class Sides:
    """Async clients of both sides; the primary's writes and the replica's probes."""

    def __init__(self, est: Estate) -> None:
        self.est = est
        self.pre = est.phase == PRE
        self._stack = contextlib.AsyncExitStack()
        self._seq = 0

    async def __aenter__(self) -> Sides:
        conn = self.est.rig.azurite.connection_string
        st = self._stack
        self.blobs = await st.enter_async_context(
            AioContainerClient.from_connection_string(conn, self.est.container))
        self.table = await st.enter_async_context(
            AioTableClient.from_connection_string(conn, table_name=self.est.table))
        self.queue = await st.enter_async_context(
            AioQueueClient.from_connection_string(conn, self.est.queue))
        self.s3 = await st.enter_async_context(get_session().create_client(
            "s3", endpoint_url=self.est.rig.moto.endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
            config=BotoConfig(max_pool_connections=64, s3={"addressing_style": "path"})))
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.est.rig.secantus.uri, uuidRepresentation="standard")
        self.coll = self.mongo[self.est.database][self.est.collection]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.mongo.close()
        await self._stack.aclose()

    # -- primary writes ---------------------------------------------------------------
    def _sequencer(self) -> str:
        self._seq += 1
        return f"{self._seq:032x}"

    async def _event(self, op: str, key: str, at: float, etag: str | None = None,
                     size: int | None = None) -> None:
        ev = blob_event(op, self.est.container, key,  # type: ignore[arg-type]
                        event_time=datetime.fromtimestamp(at, UTC),
                        sequencer=self._sequencer(), etag=etag, size=size,
                        event_id=str(uuid.uuid4()))
        await self.queue.send_message(azure_queue_body(ev))

    async def put_object(self, ev: FlightEvent, body: bytes, ct: str, md: dict[str, str],
                         events: bool = True) -> None:
        if self.pre:
            r = await self.blobs.get_blob_client(ev.key).upload_blob(
                body, overwrite=True, metadata=md,
                content_settings=ContentSettings(content_type=ct))
            # eventTime: when the write was done (its response came back)
            at = time.time()
            if events:
                await self._event("upsert", ev.key, at, str(r["etag"]).strip('"'), len(body))
        else:
            await self.s3.put_object(Bucket=self.est.bucket, Key=ev.key, Body=body,
                                     ContentType=ct, Metadata=md)

    async def set_metadata(self, ev: FlightEvent, ct: str, md: dict[str, str]) -> None:
        if self.pre:
            # Set Blob Metadata: a new etag and Last-Modified; Event Grid sends nothing
            await self.blobs.get_blob_client(ev.key).set_blob_metadata(md)
        else:
            await self.s3.copy_object(
                Bucket=self.est.bucket, Key=ev.key, MetadataDirective="REPLACE",
                CopySource={"Bucket": self.est.bucket, "Key": ev.key}, Metadata=md,
                ContentType=ct)

    async def delete_object(self, ev: FlightEvent) -> None:
        if self.pre:
            await self.blobs.delete_blob(ev.key)
            await self._event("delete", ev.key, time.time())
        else:
            await self.s3.delete_object(Bucket=self.est.bucket, Key=ev.key)

    async def put_row(self, ev: FlightEvent, props: Props) -> None:
        if self.pre:
            await self.table.upsert_entity({"PartitionKey": ev.pk, "RowKey": ev.rk,
                                            **to_azure(props)}, mode=UpdateMode.REPLACE)
        else:
            doc = to_mongo(ev, props)
            await self.coll.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def merge_row(self, ev: FlightEvent, change: Props) -> None:
        if self.pre:
            await self.table.update_entity({"PartitionKey": ev.pk, "RowKey": ev.rk,
                                            **to_azure(change)}, mode=UpdateMode.MERGE)
        else:
            await self.coll.update_one({"_id": f"{ev.pk}/{ev.rk}"}, {"$set": {
                k: mongo_value(t, v) for k, (t, v) in change.items()}})

    async def delete_row(self, ev: FlightEvent) -> None:
        if self.pre:
            await self.table.delete_entity(partition_key=ev.pk, row_key=ev.rk)
        else:
            await self.coll.delete_one({"_id": f"{ev.pk}/{ev.rk}"})

    # -- replica probes ----------------------------------------------------------------
    async def replica_rev(self, key: str) -> str | None:
        """The object's ``rev`` metadata on the replica; None when absent."""
        try:
            if self.pre:
                h = await self.s3.head_object(Bucket=self.est.bucket, Key=key)
                return str(h.get("Metadata", {}).get("rev", ""))
            p = await self.blobs.get_blob_client(key).get_blob_properties()
            return str((p.metadata or {}).get("rev", ""))
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            if "404" in str(exc) or "Not Found" in str(exc):
                return None
            raise

    async def replica_status(self, key: str) -> str | None:
        try:
            if self.pre:
                h = await self.s3.head_object(Bucket=self.est.bucket, Key=key)
                return str(h.get("Metadata", {}).get("status", ""))
            p = await self.blobs.get_blob_client(key).get_blob_properties()
            return str((p.metadata or {}).get("status", ""))
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            if "404" in str(exc) or "Not Found" in str(exc):
                return None
            raise

    async def replica_row_version(self, ev: FlightEvent) -> int | None:
        if self.pre:
            doc = await self.coll.find_one({"_id": f"{ev.pk}/{ev.rk}"}, {"Version": 1})
            return None if doc is None else int(doc.get("Version", -1))
        try:
            e = await self.table.get_entity(ev.pk, ev.rk, select=["Version"])
        except ResourceNotFoundError:
            return None
        v = e.get("Version")
        return int(v.value if isinstance(v, EntityProperty) else v)


# -- what the generator believes the primary holds ------------------------------------
@dataclass
class Model:
    objects: dict[str, ObjState] = field(default_factory=dict)
    rows: dict[tuple[str, str], Props] = field(default_factory=dict)
    #: keys whose last write failed on the primary: their true state is unknown
    uncertain: set[str] = field(default_factory=set)
    uncertain_rows: set[tuple[str, str]] = field(default_factory=set)
    #: the kind of the last change of each object key
    last_kind: dict[str, str] = field(default_factory=dict)


@dataclass
class Probes:
    """End-to-end lag seen from outside crosswind: a change is written, then the
    replica is polled until it shows it."""

    lags: dict[str, list[float]] = field(default_factory=dict)
    timeouts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in sorted(self.lags.items()):
            s = sorted(v)
            out[k] = {"count": len(s), "p50": _q(s, 0.5), "p95": _q(s, 0.95),
                      "p99": _q(s, 0.99), "max": round(s[-1], 3) if s else 0.0,
                      "not_seen": self.timeouts.get(k, 0)}
        for k, n in self.timeouts.items():
            out.setdefault(k, {"count": 0, "not_seen": n})
        return out


class LoadGenerator:
    """The bench's writes for ``crosswind.loadtest.pacing.run_schedule``: the schedule
    (``crosswind.loadtest.schedule.plan``) says which change of which key ordinal
    when; this class does it on the primary with the SDKs and keeps the model."""

    def __init__(self, sides: Sides, model: Model, fake: Fake, *,
                 rate: float, duration: float, mix: dict[str, float], probe_every: int,
                 probe_timeout: dict[str, float], seed: int, max_in_flight: int = 128) -> None:
        self.sides = sides
        self.model = model
        self.fake = fake
        self.rate = rate
        self.duration = duration
        self.mix = mix
        self.seed = seed
        self.probe_every = probe_every
        self.probe_timeout = probe_timeout
        self.max_in_flight = max_in_flight
        self.stats = PaceStats(rate, duration)
        #: the live events by key ordinal (0 .. seeded-1: the starting estate)
        self.events: dict[int, FlightEvent] = {}
        #: object and row writes on the primary (one change may be both)
        self.object_changes = 0
        self.row_changes = 0
        self.probes = Probes()
        self._probe_tasks: set[asyncio.Task[None]] = set()
        self._probe_of: dict[str, asyncio.Task[None]] = {}
        self._counts: Counter[str] = Counter()
        #: object changes that make an event (Event Grid: puts and deletes; S3: also the
        #: copy onto itself of a metadata change); the drain waits for as many
        self.events_sent = 0
        #: (completed at, seconds) of the primary's writes, for the write latency over time
        self.recent_latency: list[tuple[float, float]] = []

    # -- the writes ---------------------------------------------------------------------
    async def write_new(self, ev: FlightEvent, events: bool = True) -> float:
        """The object and its row; returns when the object's write was done."""
        body = self.fake.body(ev)
        md = self.fake.metadata(ev)
        ct = content_type_of(ev)
        props = self.fake.row(ev)
        self.model.objects[ev.key] = ObjState(hashlib.md5(body).hexdigest(), len(body), ct,
                                              norm_metadata(md))
        self.model.rows[(ev.pk, ev.rk)] = props
        self.model.last_kind[ev.key] = "new"
        await self.sides.put_object(ev, body, ct, md, events=events)
        done = time.time()
        await self.sides.put_row(ev, props)
        return done

    async def _new(self, ev: FlightEvent) -> tuple[str, FlightEvent, float]:
        t = await self.write_new(ev)
        self.object_changes += 1
        self.row_changes += 1
        return "object", ev, t

    async def _overwrite(self, ev: FlightEvent) -> tuple[str, FlightEvent, float]:
        ev.rev += 1
        ev.row_version += 1
        body = self.fake.body(ev)
        md = self.fake.metadata(ev)
        ct = content_type_of(ev)
        props = self.fake.row(ev)
        self.model.objects[ev.key] = ObjState(hashlib.md5(body).hexdigest(), len(body), ct,
                                              norm_metadata(md))
        self.model.rows[(ev.pk, ev.rk)] = props
        self.model.last_kind[ev.key] = "overwrite"
        await self.sides.put_object(ev, body, ct, md)
        t = time.time()
        await self.sides.put_row(ev, props)
        self.object_changes += 1
        self.row_changes += 1
        return "object", ev, t

    async def _metadata(self, ev: FlightEvent) -> tuple[str, FlightEvent, float]:
        ev.status = f"checked-{self.fake.rng.randrange(10**6)}"
        md = self.fake.metadata(ev)
        ct = content_type_of(ev)
        old = self.model.objects[ev.key]
        self.model.objects[ev.key] = ObjState(old.md5, old.size, ct, norm_metadata(md))
        self.model.last_kind[ev.key] = "metadata"
        await self.sides.set_metadata(ev, ct, md)
        t = time.time()
        self.object_changes += 1
        return "metadata", ev, t

    async def _delete(self, ev: FlightEvent) -> tuple[str, FlightEvent, float]:
        self.model.objects.pop(ev.key, None)
        self.model.rows.pop((ev.pk, ev.rk), None)
        self.model.last_kind.pop(ev.key, None)
        await self.sides.delete_object(ev)
        t = time.time()
        await self.sides.delete_row(ev)
        self.object_changes += 1
        self.row_changes += 1
        return "delete", ev, t

    async def _row(self, ev: FlightEvent) -> tuple[str, FlightEvent, float]:
        ev.row_version += 1
        change = self.fake.row_change(ev)
        self.model.rows[(ev.pk, ev.rk)] = {**self.model.rows[(ev.pk, ev.rk)], **change}
        await self.sides.merge_row(ev, change)
        t = time.time()
        self.row_changes += 1
        return "row", ev, t

    # -- pacing -------------------------------------------------------------------------
    async def run(self, existing: int) -> PaceStats:
        """The schedule for ``existing`` starting events, paced open loop."""
        ops = plan(self.rate, self.duration, self.mix, FLIGHT_EVENT_SIZES, self.seed,
                   existing=existing)
        await run_schedule(ops, self._do, rate=self.rate, duration_s=self.duration,
                           max_in_flight=self.max_in_flight, stats=self.stats)
        return self.stats

    def summary(self) -> dict[str, Any]:
        out = self.stats.summary()
        span = max(1e-9, self.stats.finished_at - self.stats.started_at)
        out.update(planned=self.stats.launched,
                   object_changes_per_s=round(self.object_changes / span, 2),
                   row_changes_per_s=round(self.row_changes / span, 2),
                   object_changes=self.object_changes, row_changes=self.row_changes)
        return out

    async def _do(self, op: Op) -> None:
        """One change of the schedule (the pacer runs one change of a key at a time);
        a key still being probed waits for its probe, which looks for this very
        revision on the replica."""
        if op.kind == "new":
            ev = self.events[op.key] = self.fake.event(op.key)
        else:
            ev = self.events[op.key]
            if op.kind == "delete":
                del self.events[op.key]
        probe = self._probe_of.get(ev.key)
        if probe is not None:
            await asyncio.wait([probe])
        fn = {"new": self._new, "overwrite": self._overwrite, "metadata": self._metadata,
              "delete": self._delete, "row": self._row}[op.kind]
        t = time.monotonic()
        try:
            what, _, at = await fn(ev)
        except Exception:
            # what the primary holds for this key is unknown now: left out of the
            # primary-vs-generator check (the primary-vs-replica one reads both sides)
            self.model.uncertain.add(ev.key)
            self.model.uncertain_rows.add((ev.pk, ev.rk))
            raise  # counted by the pacer
        if what in ("object", "delete") or (what == "metadata" and not self.sides.pre):
            self.events_sent += 1
        self.recent_latency.append((time.time(), time.monotonic() - t))
        self._maybe_probe(what, ev, at)

    # -- probes -------------------------------------------------------------------------
    def _maybe_probe(self, what: str, ev: FlightEvent, at: float) -> None:
        self._counts[what] += 1
        # each change kind sampled on its own: 1 in probe_every (metadata-only before
        # cutover waits for a reconcile: sampled 5x less)
        every = self.probe_every * (5 if what == "metadata" and self.sides.pre else 1)
        if self.probe_every <= 0 or self._counts[what] % every:
            return
        task = asyncio.create_task(self._probe(what, ev, at), name=ev.key)
        self._probe_tasks.add(task)
        self._probe_of[ev.key] = task
        task.add_done_callback(self._probe_done)

    def _probe_done(self, task: asyncio.Task[None]) -> None:
        self._probe_tasks.discard(task)
        if self._probe_of.get(task.get_name()) is task:
            del self._probe_of[task.get_name()]

    async def _probe(self, what: str, ev: FlightEvent, at: float) -> None:
        sides = self.sides
        rev, status, version = str(ev.rev), ev.status, ev.row_version
        timeout = self.probe_timeout.get(what, 300.0)
        name = {"object": "object-upsert", "metadata": "object-metadata",
                "delete": "object-delete", "row": "row-update"}[what]
        async def seen() -> bool:
            if what == "object":
                return await sides.replica_rev(ev.key) == rev
            if what == "metadata":
                return await sides.replica_status(ev.key) == status
            if what == "delete":
                return await sides.replica_rev(ev.key) is None
            return (await sides.replica_row_version(ev) or 0) >= version

        while time.time() - at < timeout:
            try:
                if await seen():
                    self.probes.lags.setdefault(name, []).append(time.time() - at)
                    return
            except Exception as exc:  # a probe never stops the load
                log(f"probe {name} {ev.key}: {type(exc).__name__}: {exc}")
            # polled at about a tenth of the time waited so far (0.1 s to 2 s): a
            # resolution of ~10 % without loading the replica when lag grows
            await asyncio.sleep(min(2.0, max(0.1, 0.1 * (time.time() - at))))
        self.probes.timeouts[name] += 1

    async def finish_probes(self, grace_s: float) -> None:
        if self._probe_tasks:
            await asyncio.wait(list(self._probe_tasks), timeout=grace_s)
            for t in list(self._probe_tasks):
                t.cancel()


async def seed_estate(sides: Sides, gen: LoadGenerator, n: int) -> None:
    """The starting estate on the primary, before the service starts (no events)."""
    sem = asyncio.Semaphore(16)

    async def one(ordinal: int) -> None:
        async with sem:
            ev = gen.events[ordinal] = gen.fake.event(ordinal)
            await gen.write_new(ev, events=False)

    await asyncio.gather(*(one(i) for i in range(n)))


# -- the service ----------------------------------------------------------------------
class Service:
    """``crosswind replicate`` (the real CLI) in a child process."""

    def __init__(self, est: Estate) -> None:
        self.est = est
        self.log_path = est.workdir / f"replicate-{est.phase}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "crosswind"), "replicate", "-c", str(est.config_path)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)
        self.url = f"http://127.0.0.1:{est.http_port}"

    def status(self, timeout: float = 10.0) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/api/status",  # noqa: S310 (loopback)
                                        timeout=timeout) as r:
                return json.load(r)  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def vm_hwm_mb(self) -> float | None:
        """The kernel's high-water mark of the service's RSS (not a sample)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self, timeout: float = 90.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own child, by its pid
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)

    def log_tail(self, n: int = 40) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return []

    def log_counts(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                for level in ("ERROR", "WARNING", "Traceback"):
                    if level in line:
                        c[level] += 1
        return dict(c)


def stream(st: dict[str, Any] | None, name: str) -> dict[str, Any]:
    return next((s for s in (st or {}).get("streams", []) if s["name"] == name), {})


def marks(est: Estate) -> dict[str, Any]:
    """The service's reconcile marks, read from its state store (as `crosswind status`
    reads it; no lock is taken)."""
    state = StateStore(est.state_dir)
    try:
        s = StatusStore(state)
        return {"objects": s.get_mark(f"reconcile:{est.direction}"),
                "rows": s.get_mark(f"row-reconcile:{est.direction}")}
    finally:
        state.close()


def _mark_ts(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp() if value else 0.0


def wait_for(svc: Service, pred: Callable[[dict[str, Any]], bool], timeout: float,
             what: str, poll: float = 1.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if not svc.alive():
            raise RuntimeError(f"replicate exited with {svc.proc.returncode} while waiting for "
                               f"{what}:\n" + "\n".join(svc.log_tail()))
        st = svc.status()
        if st is not None and st["service"]["running"] and pred(st):
            return st
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; last status: "
                       f"{json.dumps(st)[:2000]}\n" + "\n".join(svc.log_tail()))


# -- sampling while it runs -----------------------------------------------------------
def _cpu_s(p: psutil.Process, children: bool = True) -> float:
    """CPU seconds of ``p`` (and its children: the servers' helpers, if any)."""
    try:
        procs = [p, *p.children(recursive=True)] if children else [p]
    except psutil.Error:
        return 0.0
    total = 0.0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            t = q.cpu_times()
            total += t.user + t.system
    return total


def _machine_cpu_s() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0))


def rig_rtt_fns(est: Estate) -> dict[str, Callable[[], object]]:
    """One cheap request per server, timed by the sampler."""
    blob = est.blob_service().get_container_client(est.container)
    s3 = est.s3()
    mongo = est.mongo()
    out: dict[str, Callable[[], object]] = {}
    if est.phase == PRE:
        q = QueueClient.from_connection_string(est.rig.azurite.connection_string, est.queue)
        # Peek Messages: what a receive costs Azurite, without hiding anything
        out["azure_queue_peek"] = lambda: q.peek_messages(max_messages=32)
    return {**out, "azure_blob": blob.get_container_properties,
            "s3": lambda: s3.head_bucket(Bucket=est.bucket),
            "documentdb": lambda: mongo.admin.command("ping")}


def queue_depth_fn(est: Estate) -> Callable[[], int | None]:
    """The event queue's depth, read with the SDK (visible and in-flight messages)."""
    if est.phase == PRE:
        q = QueueClient.from_connection_string(est.rig.azurite.connection_string, est.queue)
        return lambda: q.get_queue_properties().approximate_message_count
    sqs = est.sqs()

    def sqs_depth() -> int:
        a = sqs.get_queue_attributes(QueueUrl=est.sqs_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])[
            "Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(
            a["ApproximateNumberOfMessagesNotVisible"])
    return sqs_depth


class Sampler(threading.Thread):
    """Every ``interval`` s: the service's status, RSS and CPU; the servers' and the
    generator's CPU; the queue depth read independently; the load average."""

    def __init__(self, est: Estate, svc: Service, gen: LoadGenerator, interval: float,
                 t0: float) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.est, self.svc, self.gen, self.interval, self.t0 = est, svc, gen, interval, t0
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()
        rig = est.rig
        self.servers = {n: psutil.Process(p.pid) for n, p in (
            ("azurite", rig.azurite.proc), ("moto", rig.moto.proc),
            ("secantusdb", rig.secantus.proc)) if p is not None}
        self.me = psutil.Process()
        self.depth = queue_depth_fn(est)
        self.rtts = rig_rtt_fns(est)
        self._lat_seen = 0
        self.peak_rss_mb = 0.0
        #: every reconcile seen (its mark in the state store): when, what it found, drift
        self.reconciles: dict[str, list[dict[str, Any]]] = {"objects": [], "rows": []}
        self._ticks = 0

    def _note_reconciles(self) -> None:
        with contextlib.suppress(Exception):
            for what, m in marks(self.est).items():
                seen = self.reconciles[what]
                if m and (not seen or seen[-1].get("at") != m.get("at")
                          or seen[-1].get("finished_at") != m.get("finished_at")):
                    if seen and seen[-1].get("at") == m.get("at"):
                        seen.pop()
                    seen.append({k: m.get(k) for k in ("at", "finished_at", "listed", "found",
                                                       "drift", "rechecked", "error")
                                 if k in m})

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        prev_t = time.monotonic()
        prev = {"service": _cpu_s(self.svc.ps), "generator": _cpu_s(self.me, children=False),
                **{n: _cpu_s(p) for n, p in self.servers.items()}, "machine": _machine_cpu_s()}
        prev_applied: dict[str, int] = {}
        last_print = 0.0
        while not self._halt.wait(self.interval):
            now = time.monotonic()
            dt = max(1e-6, now - prev_t)
            cpu = {"service": _cpu_s(self.svc.ps), "generator": _cpu_s(self.me, children=False),
                   **{n: _cpu_s(p) for n, p in self.servers.items()},
                   "machine": _machine_cpu_s()}
            try:
                rss = self.svc.ps.memory_info().rss / 2**20
            except psutil.Error:
                rss = float("nan")
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            st = self.svc.status(timeout=5)
            pct = {k: round(100 * (cpu[k] - prev[k]) / dt, 1) for k in cpu}
            # what other users of the machine took: all CPU less the rig's, ours and the
            # service's (100 = one core)
            pct["external"] = round(max(0.0, pct["machine"] - sum(
                v for k, v in pct.items() if k != "machine")), 1)
            lat = [x for _, x in self.gen.recent_latency[self._lat_seen:]]
            self._lat_seen += len(lat)
            s: dict[str, Any] = {
                "t": round(now - self.t0, 2), "rss_mb": round(rss, 1), "cpu_pct": pct,
                "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
                "loadavg_1m": round(os.getloadavg()[0], 2),
                "generator": {"completed": self.gen.stats.completed,
                              "launched": self.gen.stats.launched,
                              "in_flight": self.gen.stats.in_flight,
                              "write_ms_p50": _q(sorted(lat), 0.5, 1000),
                              "write_ms_p99": _q(sorted(lat), 0.99, 1000)},
            }
            if self._ticks % 5 == 0:
                # the servers' responsiveness, and the queue's depth as its SDK reads it
                # (every 5th sample: moto's SQS attributes get slower as the queue grows)
                s["rig_rtt_ms"] = {}
                for name, fn in (("queue_depth", self.depth), *self.rtts.items()):
                    t1 = time.perf_counter()
                    try:
                        v = fn()
                    except Exception:
                        v = None
                    s["rig_rtt_ms"][name] = round(1000 * (time.perf_counter() - t1), 1)
                    if name == "queue_depth":
                        s["queue_depth"] = v
            if st is not None:
                s["pending"] = st.get("pending")
                s["streams"] = {x["name"]: {"applied": x["applied"], "backlog": x["backlog"],
                                            "failed": x["failed"], "lag_p99": x["lag_s"]["p99"],
                                            "lag_max": x["lag_s"]["max"],
                                            **({"received": x["messages"]["received"],
                                                "acked": x["messages"]["acked"]}
                                               if "messages" in x else {})}
                                for x in st["streams"]}
                s["lag_p99_s"] = st.get("lag_p99_s")
                s["slo_breached"] = bool((st.get("slo") or {}).get("breached"))
            self.samples.append(s)
            self._ticks += 1
            if self._ticks % 5 == 1:
                self._note_reconciles()
            if now - last_print >= 10:
                last_print = now
                self._print(s, prev_applied, dt)
            if st is not None:
                prev_applied = {k: v["applied"] for k, v in s["streams"].items()}
            prev, prev_t = cpu, now

    def _print(self, s: dict[str, Any], prev_applied: dict[str, int], dt: float) -> None:
        g = self.gen.stats
        elapsed = max(1e-6, time.time() - g.started_at) if g.started_at else 0.0
        rate = g.completed / elapsed if elapsed else 0.0
        parts = [f"t={s['t']:6.0f}s gen {rate:5.1f}/s (late max "
                 f"{max(g.lateness[-500:], default=0):.2f}s, in flight {g.in_flight})"]
        for name in EVENT_STREAMS[self.est.phase]:
            x = s.get("streams", {}).get(name)
            if x:
                parts.append(f"{name} applied {x['applied']} backlog {x['backlog']} "
                             f"p99 {x['lag_p99']:.1f}s max {x['lag_max']:.1f}s")
        pend = (s.get("pending") or {}).get("keys")
        parts.append(f"pending {pend} | service RSS {s['rss_mb']:.0f} MB CPU "
                     f"{s['cpu_pct']['service']:.0f}% | writes p50 "
                     f"{s['generator']['write_ms_p50']:.0f} ms | others' CPU "
                     f"{s['cpu_pct']['external']:.0f}% load {s['loadavg_1m']}")
        log("  " + " | ".join(parts))


# -- the independent comparison -------------------------------------------------------
def read_azure_objects(est: Estate) -> dict[str, ObjState]:
    container = est.blob_service().get_container_client(est.container)
    names = [b.name for b in container.list_blobs()]

    def one(name: str) -> tuple[str, ObjState | None]:
        try:
            d = container.download_blob(name, max_concurrency=1)
            data = d.readall()
        except ResourceNotFoundError:
            return name, None
        p = d.properties
        return name, ObjState(hashlib.md5(data).hexdigest(), len(data),
                              p.content_settings.content_type or "", norm_metadata(p.metadata))

    with ThreadPoolExecutor(16) as pool:
        return {k: v for k, v in pool.map(one, names) if v is not None}


def read_s3_objects(est: Estate) -> dict[str, ObjState]:
    s3 = est.s3()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=est.bucket) for o in page.get("Contents", [])]

    def one(key: str) -> tuple[str, ObjState | None]:
        try:
            r = s3.get_object(Bucket=est.bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            return key, None
        data = r["Body"].read()
        return key, ObjState(hashlib.md5(data).hexdigest(), len(data),
                             r.get("ContentType") or "", norm_metadata(r.get("Metadata")))

    with ThreadPoolExecutor(16) as pool:
        return {k: v for k, v in pool.map(one, keys) if v is not None}


def read_azure_rows(est: Estate) -> dict[tuple[str, str], Props]:
    tc = TableServiceClient.from_connection_string(
        est.rig.azurite.connection_string).get_table_client(est.table)
    return {(e["PartitionKey"], e["RowKey"]): comparable(from_azure(dict(e)))
            for e in tc.list_entities()}


def read_mongo_rows(est: Estate) -> dict[tuple[str, str], Props]:
    coll = est.mongo()[est.database][est.collection]
    return {(d["PartitionKey"], d["RowKey"]): comparable(from_mongo(d)) for d in coll.find()}


def read_side(est: Estate, primary: bool) -> tuple[dict[str, ObjState],
                                                   dict[tuple[str, str], Props]]:
    azure = primary == (est.phase == PRE)
    if azure:
        return read_azure_objects(est), read_azure_rows(est)
    return read_s3_objects(est), read_mongo_rows(est)


def diff(primary: dict[Any, Any], replica: dict[Any, Any], what: Callable[[Any, Any], list[str]],
         examples: int = 10) -> dict[str, Any]:
    missing = [k for k in primary if k not in replica]
    extra = [k for k in replica if k not in primary]
    different: dict[str, list[str]] = {}
    for k, v in primary.items():
        if k in replica:
            for reason in what(v, replica[k]):
                different.setdefault(reason, []).append(str(k))
    n_diff = len({k for ks in different.values() for k in ks})
    return {"primary": len(primary), "replica": len(replica), "missing": len(missing),
            "extra": len(extra), "different": n_diff,
            "different_by": {r: len(ks) for r, ks in different.items()},
            "examples": {"missing": [str(k) for k in missing[:examples]],
                         "extra": [str(k) for k in extra[:examples]],
                         **{f"different {r}": ks[:examples] for r, ks in different.items()}}}


def object_diffs(a: ObjState, b: ObjState) -> list[str]:
    out = []
    if (a.md5, a.size) != (b.md5, b.size):
        out.append("bytes")
    if a.content_type != b.content_type:
        out.append("content-type")
    if a.metadata != b.metadata:
        out.append("metadata")
    return out


def row_diffs(a: Props, b: Props) -> list[str]:
    out = []
    if set(a) != set(b):
        out.append("property names")
    for name in sorted(set(a) & set(b)):
        if a[name][0] != b[name][0]:
            out.append(f"type of {name}")
        elif a[name][1] != b[name][1]:
            out.append(f"value of {name}")
    return out


def model_rows(model: Model) -> dict[tuple[str, str], Props]:
    return {k: comparable(v) for k, v in model.rows.items() if k not in model.uncertain_rows}


def compare(est: Estate, model: Model) -> dict[str, Any]:
    """Both sides read in full and compared: lost changes = missing + extra + different.
    The primary is also compared with what the generator believes it wrote."""
    t0 = time.perf_counter()
    prim_obj, prim_rows = read_side(est, primary=True)
    repl_obj, repl_rows = read_side(est, primary=False)
    objects = diff(prim_obj, repl_obj, object_diffs)
    rows = diff(prim_rows, repl_rows, row_diffs)
    certain = {k: v for k, v in model.objects.items() if k not in model.uncertain}
    vs_model = {
        "objects": {k: v for k, v in diff(certain, {k: v for k, v in prim_obj.items()
                                                    if k not in model.uncertain},
                                          object_diffs).items() if k != "examples"},
        "rows": {k: v for k, v in diff(model_rows(model), {
            k: v for k, v in prim_rows.items() if k not in model.uncertain_rows},
            row_diffs).items() if k != "examples"},
        "uncertain_keys": len(model.uncertain),
    }
    lost = sum(d[k] for d in (objects, rows) for k in ("missing", "extra", "different"))
    return {"objects": objects, "rows": rows, "lost_changes": lost,
            "primary_vs_generator": vs_model, "seconds": round(time.perf_counter() - t0, 1)}


def event_path_check(est: Estate, model: Model) -> dict[str, Any]:
    """Before cutover, right after the drain and before the post-load reconcile: the
    replica against what the generator wrote. Differences the events cannot carry by
    design (a metadata-only change, a row delete) wait for the reconcile; anything
    else is a change the event path missed (the reconcile would then bring it, as
    drift)."""
    t0 = time.perf_counter()
    repl_obj, repl_rows = read_side(est, primary=False)
    # keys whose last write on the primary failed (state unknown) are left out on both sides
    repl_obj = {k: v for k, v in repl_obj.items() if k not in model.uncertain}
    objects = diff({k: v for k, v in model.objects.items() if k not in model.uncertain},
                   repl_obj, object_diffs)
    rows = diff(model_rows(model), {k: v for k, v in repl_rows.items()
                                    if k not in model.uncertain_rows}, row_diffs)
    waiting_md = sum(1 for k, v in model.objects.items() if k in repl_obj
                     and model.last_kind.get(k) == "metadata"
                     and object_diffs(v, repl_obj[k]) and set(object_diffs(v, repl_obj[k]))
                     <= {"metadata"})
    waiting_row_deletes = sum(1 for k in repl_rows if k not in model.rows
                              and k not in model.uncertain_rows)
    missed = (objects["missing"] + objects["extra"] + objects["different"] - waiting_md
              + rows["missing"] + rows["different"] + rows["extra"] - waiting_row_deletes)
    return {"objects": objects, "rows": rows,
            "awaiting_reconcile_by_design": {"metadata_only_changes": waiting_md,
                                             "row_deletes": waiting_row_deletes},
            "missed_by_event_path": missed, "seconds": round(time.perf_counter() - t0, 1)}


# -- one direction --------------------------------------------------------------------
def lag_figures(s: dict[str, Any]) -> dict[str, Any]:
    return {"since_start": s.get("lag_since_start_s"), "window": s.get("lag_s")}


def rss_flatness(samples: list[dict[str, Any]], t_start: float, t_end: float) -> dict[str, Any]:
    load = [s for s in samples if t_start <= s["t"] <= t_end and not math.isnan(s["rss_mb"])]
    if len(load) < 4:
        return {"samples": len(load)}
    span = t_end - t_start
    w = min(60.0, span / 4)
    first = [s["rss_mb"] for s in load if s["t"] <= t_start + w]
    last = [s["rss_mb"] for s in load if s["t"] >= t_end - w]
    f, la = statistics.median(first), statistics.median(last)
    ts = [s["t"] for s in load]
    rs = [s["rss_mb"] for s in load]
    mt, mr = statistics.fmean(ts), statistics.fmean(rs)
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (r - mr) for t, r in zip(ts, rs, strict=True)) / var if var else 0.0
    return {"window_s": round(w, 1), "first_window_median_mb": round(f, 1),
            "last_window_median_mb": round(la, 1), "growth_mb": round(la - f, 1),
            "growth_pct": round(100 * (la - f) / f, 1) if f else None,
            "slope_mb_per_min": round(slope * 60, 2),
            "max_mb": round(max(rs), 1), "min_mb": round(min(rs), 1),
            "flat": la <= f * (1 + RSS_FLAT_TOLERANCE)}


class Drained:
    """A predicate: no key pending, every event received (as many messages received
    as the generator sent events: ``caught_up_at``), and the row stream caught up:
    before cutover two table polls finished since the load stopped (the second
    started after it); in both directions its applied count still for 5 s. Then
    also the queue empty by the service's backlog and by the SDK's own depth
    (moto's approximate count can stay at 1 for minutes after the last message
    was deleted: ``caught_up_at`` is the drain time that says what the service did)."""

    def __init__(self, est: Estate, at_load_end: dict[str, Any], events_sent: int) -> None:
        self.est = est
        self.depth = queue_depth_fn(est)
        self.objects_stream, self.rows_stream = EVENT_STREAMS[est.phase]
        self.polls0 = int(stream(at_load_end, self.rows_stream).get("polls") or 0)
        self.events_sent = events_sent
        self.last: dict[str, float] = {}
        self.caught_up_at: float | None = None

    def __call__(self, s: dict[str, Any]) -> bool:
        rows = stream(s, self.rows_stream)
        applied = float(rows.get("applied") or 0)
        if self.last.get("applied") != applied:
            self.last.update(applied=applied, since=time.monotonic())
        still = time.monotonic() - self.last["since"] >= 5.0
        polled = self.est.phase == POST or int(rows.get("polls") or 0) >= self.polls0 + 2
        ev = stream(s, self.objects_stream)
        got_all = int(ev.get("events") or 0) >= self.events_sent and not ev.get(
            "messages", {}).get("outstanding")
        if self.caught_up_at is None and got_all and still and polled and not s[
                "pending"]["keys"]:
            self.caught_up_at = time.monotonic()
        return (self.caught_up_at is not None and not s["pending"]["keys"]
                and not ev.get("backlog") and not self.depth())


class LoopThread:
    """An asyncio loop running in its own thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-aio",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def reconciled_after(est: Estate, load_end: float) -> Callable[[dict[str, Any]], bool]:
    """A predicate: an objects reconcile and a rows reconcile have both *started* after
    ``load_end`` and finished, and nothing is pending. The objects' mark holds its
    start; the rows' mark its end, so for rows: a table poll finished after the load,
    then a reconcile (the row loop runs one thing at a time)."""
    seen: dict[str, int] = {}

    def pred(s: dict[str, Any]) -> bool:
        m = marks(est)
        rows = stream(s, "table-poll")
        polls, recs = int(rows.get("polls") or 0), int(rows.get("reconciles") or 0)
        if "polls" not in seen:
            seen.update(polls=polls)
        elif polls > seen["polls"] and "after" not in seen:
            seen["after"] = recs
        rows_ok = "after" in seen and recs > seen["after"]
        obj = m["objects"] or {}
        obj_ok = _mark_ts(obj.get("at")) >= load_end + 1 and bool(obj.get("finished_at"))
        return obj_ok and rows_ok and not s["pending"]["keys"]

    return pred


def run_phase(rig: Rig, phase: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    duration = args.duration if phase == PRE else args.post_duration
    log(f"\n== {phase}-cutover ({DIRECTION[phase]}): {args.rate:g} changes/s for "
        f"{duration:g} s ==")
    est = create_estate(rig, phase, workdir, args.reconcile_interval, args.concurrency,
                        args.metadata_concurrency)
    fake = Fake(args.seed + (0 if phase == PRE else 1))
    model = Model()
    out: dict[str, Any] = {"phase": phase, "direction": est.direction,
                           "load": {"rate": args.rate, "duration_s": duration,
                                    "mix": args.mix_dict}}
    # The generator and its probes run on an event loop of their own thread for the
    # whole phase: probes still waiting when the load stops keep polling while this
    # thread waits for the drain and compares (a loop that only ran during the load
    # would freeze them and count the pause as lag).
    aio = LoopThread()
    sides = aio.run(Sides(est).__aenter__())
    svc: Service | None = None
    sampler: Sampler | None = None
    gen: LoadGenerator | None = None
    try:
        gen = LoadGenerator(sides, model, fake, rate=args.rate, duration=duration,
                            mix=args.mix_dict, probe_every=args.probe_every,
                            seed=args.seed + (0 if phase == PRE else 1),
                            probe_timeout={"metadata": (args.reconcile_interval + 300)
                                           if phase == PRE else 300.0})
        t = time.perf_counter()
        aio.run(seed_estate(sides, gen, args.seed_objects))
        log(f"  starting estate: {args.seed_objects} objects and rows on the primary in "
            f"{time.perf_counter() - t:.1f}s")
        if phase == POST:
            enable_s3_notifications(est)
        svc = Service(est)
        t_svc = time.monotonic()
        def first_reconcile(s: dict[str, Any]) -> bool:
            objects = (s["last_reconcile"] is not None and not s["pending"]["keys"]
                       and stream(s, "reconcile").get("applied", 0) >= args.seed_objects)
            # before cutover the row reconcile counts what it wrote; after, the reverse
            # sync's reconcile does not: its mark says it ran
            rows = (stream(s, "row-reconcile").get("applied", 0) >= args.seed_objects
                    if phase == PRE else marks(est)["rows"] is not None)
            return objects and rows

        st = wait_for(svc, first_reconcile, timeout=300, what="the first reconcile")
        out["first_reconcile_s"] = round(time.monotonic() - t_svc, 1)
        log(f"  service pid {svc.proc.pid} up; first reconcile done after "
            f"{out['first_reconcile_s']}s (objects {stream(st, 'reconcile')['applied']}, "
            f"rows {stream(st, 'row-reconcile')['applied']})")
        before = {x["name"]: x["applied"] for x in st["streams"]}
        profiler = start_py_spy(svc, workdir, phase, duration) if args.py_spy else None

        t0 = time.monotonic()
        sampler = Sampler(est, svc, gen, args.sample_s, t0)
        sampler.samples.append({"t": 0.0, "rss_mb": svc.ps.memory_info().rss / 2**20,
                                "cpu_pct": {}, "loadavg_1m": os.getloadavg()[0]})
        cpu0 = _cpu_s(svc.ps)
        load_before = load_now()
        sampler.start()
        aio.run(gen.run(args.seed_objects))
        load_end = time.time()
        t_load_end = time.monotonic() - t0
        cpu_load = _cpu_s(svc.ps) - cpu0
        st_end = svc.status() or {}
        at_end = {x["name"]: x["applied"] for x in st_end.get("streams", [])}
        g = gen.summary()
        log(f"  load done: {g['completed']} changes in {t_load_end:.1f}s, achieved "
            f"{g['achieved_rate_per_s']}/s (target {args.rate:g}); lateness p99 "
            f"{g['lateness_s']['p99']}s max {g['lateness_s']['max']}s; errors {g['errors']}")
        if g["fell_behind"]:
            log("  WARNING: the load generator fell behind its schedule (see lateness)")

        # the drain: events applied, nothing pending, the rows caught up
        t_drain0 = time.monotonic()
        drained = Drained(est, st_end, gen.events_sent)
        wait_for(svc, drained, timeout=600, what="the drain", poll=0.5)
        out["drain_s"] = round((drained.caught_up_at or time.monotonic()) - t_drain0, 1)
        out["queue_empty_s"] = round(time.monotonic() - t_drain0, 1)
        log(f"  caught up {out['drain_s']}s after the load stopped (queue reported empty "
            f"after {out['queue_empty_s']}s)")

        if phase == PRE:
            # metadata-only changes and row deletes have no events: see what the event
            # path alone brought, then wait for the safety net
            log("  event-path check (replica vs the generator, before the post-load "
                "reconcile) ...")
            out["event_path_check"] = event_path_check(est, model)
            # a reconcile that ran since the load stopped has fixed some of what waited
            obj_mark = marks(est)["objects"] or {}
            out["event_path_check"]["reconcile_started_since_load_end"] = (
                _mark_ts(obj_mark.get("at")) >= load_end + 1)
            e = out["event_path_check"]
            log(f"    missed by the event path: {e['missed_by_event_path']}; awaiting the "
                f"reconcile by design: {e['awaiting_reconcile_by_design']}")
            wait_for(svc, reconciled_after(est, load_end),
                     timeout=args.reconcile_interval + 600,
                     what="a reconcile after the load", poll=1.0)
            time.sleep(2)
        # after cutover every change has an event (a metadata change is a copy onto
        # itself: ObjectCreated:Copy; rows follow the change stream, deletes included),
        # so the comparison runs after the drain alone: no reconcile masks a lost event
        final = wait_for(svc, lambda s: not s["pending"]["keys"] and not s.get("reconciling"),
                         timeout=120, what="pending changes applied")
        out["reconciled_s"] = round(time.monotonic() - t_drain0, 1)
        if phase == PRE:
            log(f"  post-load reconcile done {out['reconciled_s']}s after the load stopped")
        sampler.stop()
        sampler._note_reconciles()
        out["reconciles"] = sampler.reconciles
        hwm = svc.vm_hwm_mb()
        if profiler is not None:
            out["py_spy"] = finish_py_spy(profiler)
        out["service_exit_code"] = svc.stop()
        out["service_log"] = {"counts": svc.log_counts(), "tail": svc.log_tail(15)}
        svc = None
        aio.run(gen.finish_probes(30))

        log("  comparing both sides independently ...")
        cmp_ = compare(est, model)
        out["comparison"] = cmp_
        samples = sampler.samples
        in_load = [s for s in samples if 0 < s["t"] <= t_load_end and s.get("cpu_pct")]
        out["generator"] = g
        out["probes"] = gen.probes.summary()
        out["streams"] = {}
        for x in final["streams"]:
            n = x["name"]
            applied_load = at_end.get(n, 0) - before.get(n, 0)
            out["streams"][n] = {
                "kind": x["kind"], "applied_total": x["applied"],
                "applied_during_load": applied_load,
                "applied_per_s_during_load": round(applied_load / t_load_end, 2),
                "applied_after_load": x["applied"] - at_end.get(n, 0),
                "in_step": x.get("in_step"), "failed": x["failed"], "held": x["held"],
                "lag_s": lag_figures(x), "event_driven": n in EVENT_STREAMS[phase],
                **({"messages": x["messages"], "stale_events": x.get("stale_events"),
                    "poison": x.get("poison"), "ignored": x.get("ignored")}
                   if "messages" in x else {}),
                **({"polls": x.get("polls"), "reconciles": x.get("reconciles"),
                    "errors": x.get("errors")} if "polls" in x else {}),
            }
        out["last_reconcile"] = final.get("last_reconcile")
        out["dlq_open"] = final.get("dlq_open")
        out["breakers"] = final.get("breakers")
        out["service_errors"] = final.get("errors")
        svc_cpu = [s["cpu_pct"]["service"] for s in in_load]
        out["service"] = {
            "peak_rss_mb_vmhwm": round(hwm, 1) if hwm else None,
            "peak_rss_mb_sampled": round(sampler.peak_rss_mb, 1),
            "rss": rss_flatness(samples, 0.0, t_load_end),
            "cpu_pct_mean_during_load": round(100 * cpu_load / t_load_end, 1),
            "cpu_pct_peak_sample": max(svc_cpu, default=0.0),
            "cpu_pct_p95_sample": _q(sorted(svc_cpu), 0.95),
            "cpu_s_during_load": round(cpu_load, 1),
        }
        out["others_cpu_pct_mean_during_load"] = {
            k: round(statistics.fmean([s["cpu_pct"][k] for s in in_load]), 1)
            for k in (in_load[0]["cpu_pct"] if in_load else {}) if k != "service"}
        loads = [s["loadavg_1m"] for s in in_load]
        out["loadavg_1m"] = {"before": load_before, "mean": round(statistics.fmean(loads), 2)
                             if loads else None, "max": max(loads, default=None),
                             "after": load_now()}
        obj_stream = EVENT_STREAMS[phase][0]
        series = [(s["t"], s.get("streams", {}).get(obj_stream, {}).get("backlog"),
                   s.get("queue_depth"), (s.get("pending") or {}).get("keys"),
                   s.get("streams", {}).get(obj_stream, {}).get("received"),
                   s.get("streams", {}).get(obj_stream, {}).get("acked"))
                  for s in samples if "streams" in s]
        # a backlog while the service has next to nothing to apply: it waits on the
        # queue (receiving), not on its appliers
        backed = [s for s in in_load if (s.get("streams", {}).get(obj_stream, {}).get(
            "backlog") or 0) >= 100]
        waiting = [s for s in backed if ((s.get("pending") or {}).get("keys") or 0) < 10]
        out["backlog"] = {
            "service_backlog_max": max((b for _, b, *_ in series if b is not None),
                                       default=None),
            "queue_depth_max": max((d for _, _, d, *_ in series if d is not None),
                                   default=None),
            "pending_keys_max": max((p for *_, p, _, _ in series if p is not None),
                                    default=None),
            "samples_with_backlog_ge_100": len(backed),
            "of_those_with_lt_10_keys_pending": len(waiting),
            "service_cpu_pct_median_then": round(statistics.median(
                [s["cpu_pct"]["service"] for s in waiting]), 1) if waiting else None,
            "columns": ["t", "service backlog", "queue depth (SDK)", "pending keys",
                        "received", "acked"],
            "series_every_10s": thin(series, 10.0),
        }
        rtts = [s["rig_rtt_ms"] for s in in_load if "rig_rtt_ms" in s]
        out["rig_rtt_ms"] = {k: {"p50": _q(sorted(r[k] for r in rtts), 0.5),
                                 "max": max(r[k] for r in rtts)}
                             for k in (rtts[0] if rtts else {})}
        lat = [s["generator"]["write_ms_p50"] for s in in_load if s["generator"].get(
            "write_ms_p50")]
        out["generator_write_ms_p50_series_every_10s"] = thin(
            [(s["t"], s["generator"].get("write_ms_p50")) for s in in_load], 10.0)
        out["generator_write_ms_p50_max_sample"] = max(lat, default=None)
        out["rss_series_every_10s"] = thin([(s["t"], s["rss_mb"]) for s in samples], 10.0)
        out["lag_p99_series_every_10s"] = thin(
            [(s["t"], *[s.get("streams", {}).get(n, {}).get("lag_p99")
                        for n in EVENT_STREAMS[phase]]) for s in samples], 10.0)
        # the service's own SLO verdict (lag_p99_s: the worst stream's window p99)
        slo_samples = [s for s in samples if "slo_breached" in s]
        worst: Counter[str] = Counter()
        for s in slo_samples:
            if s["slo_breached"] and s.get("streams"):
                worst[max(s["streams"], key=lambda n: s["streams"][n]["lag_p99"])] += 1
        out["service_slo"] = {
            "target_s": (final.get("slo") or {}).get("target_s"),
            "samples": len(slo_samples),
            "breached_samples": sum(1 for s in slo_samples if s["slo_breached"]),
            "breached_at_end": bool((final.get("slo") or {}).get("breached")),
            "lag_p99_s_max": max((s.get("lag_p99_s") or 0 for s in slo_samples), default=0),
            "worst_stream_while_breached": dict(worst),
        }
        out["samples"] = samples
        out["targets"] = judge(out, phase)
        return out
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        if svc is not None:
            out["service_exit_code"] = svc.stop()
            out.setdefault("service_log", {"tail": svc.log_tail(40)})
        if gen is not None:
            with contextlib.suppress(Exception):
                aio.run(gen.finish_probes(0))
        aio.run(sides.__aexit__(None, None, None))
        aio.close()


def thin(rows: Iterable[tuple[Any, ...]], every: float) -> list[list[Any]]:
    out: list[list[Any]] = []
    nxt = 0.0
    for r in rows:
        if r[0] >= nxt:
            out.append([round(r[0])] + [round(x, 1) if isinstance(x, float) else x
                                        for x in r[1:]])
            nxt = r[0] + every
    return out


def judge(out: dict[str, Any], phase: str) -> dict[str, Any]:
    t: dict[str, Any] = {}
    for n in EVENT_STREAMS[phase]:
        lag = (out["streams"].get(n) or {}).get("lag_s", {}).get("since_start") or {}
        t[f"{n} p99 < {TARGET_P99_S:g}s"] = bool(lag) and lag["p99"] < TARGET_P99_S
        t[f"{n} max < {TARGET_MAX_S:g}s"] = bool(lag) and lag["max"] < TARGET_MAX_S
    t["rss flat"] = bool(out["service"]["rss"].get("flat"))
    t["lost changes = 0"] = out["comparison"]["lost_changes"] == 0
    t["generator kept its schedule"] = not out["generator"]["fell_behind"]
    t["service exit 0"] = out.get("service_exit_code") == 0
    t["all passed"] = all(t.values())
    return t


# -- py-spy ---------------------------------------------------------------------------
def start_py_spy(svc: Service, workdir: Path, phase: str, duration: float
                 ) -> tuple[subprocess.Popen[bytes], Path] | None:
    exe = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(exe).exists():
        log("  --py-spy: py-spy is not installed (pip install py-spy); not profiling")
        return None
    out = (Path(__file__).resolve().parents[1] / ".bench" / f"replicate-{phase}-py-spy.txt")
    out.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(svc.proc.pid), "--duration", str(int(duration)),
         "--rate", "50", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=(workdir / f"py-spy-{phase}.log").open("wb"))
    return proc, out


def finish_py_spy(p: tuple[subprocess.Popen[bytes], Path]) -> dict[str, Any]:
    proc, path = p
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    if not path.exists():
        return {"error": "no profile written"}
    return {"raw": str(path), "top": top_frames(path)}


def top_frames(path: Path, n: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    pct = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    return {"samples": total,
            "self": [[f, pct(c)] for f, c in own.most_common(n)],
            "inclusive": [[f, pct(c)] for f, c in incl.most_common(n)]}


# -- output ---------------------------------------------------------------------------
def print_phase(r: dict[str, Any]) -> None:
    g = r["generator"]
    print(f"\n== replicate {r['phase']}-cutover ({r['direction']}): "
          f"{r['load']['rate']:g} changes/s for {r['load']['duration_s']:g} s ==")
    rows = []
    for n, s in r["streams"].items():
        lag = s["lag_s"]["since_start"] or {}
        rows.append([n + ("" if s["event_driven"] else " (safety net)"), s["applied_total"],
                     s["applied_during_load"], s["applied_per_s_during_load"],
                     lag.get("count", 0), lag.get("p50", 0.0), lag.get("p95", 0.0),
                     lag.get("p99", 0.0), lag.get("max", 0.0), s["failed"]])
    print(table(["stream", "applied", "in load", "applied/s", "lag n", "p50 s", "p95 s",
                 "p99 s", "max s", "failed"], rows))
    if r["probes"]:
        print("independent end-to-end lag (change written -> seen on the replica, polled):")
        print(table(["probe", "n", "p50 s", "p95 s", "p99 s", "max s", "not seen"],
                    [[k, v.get("count", 0), v.get("p50", 0.0), v.get("p95", 0.0),
                      v.get("p99", 0.0), v.get("max", 0.0), v.get("not_seen", 0)]
                     for k, v in r["probes"].items()]))
    sv, rss = r["service"], r["service"]["rss"]
    print(f"load: target {g['target_rate_per_s']:g}/s, achieved {g['achieved_rate_per_s']}/s "
          f"({g['completed']} changes: {g['by_kind']}; {g['object_changes_per_s']} object + "
          f"{g['row_changes_per_s']} row writes/s), lateness p99 {g['lateness_s']['p99']}s "
          f"max {g['lateness_s']['max']}s, errors {sum(g['errors'].values())}"
          f"{'  ** FELL BEHIND **' if g['fell_behind'] else ''}")
    print(f"service: peak RSS {sv['peak_rss_mb_vmhwm']} MB (kernel high-water mark); RSS "
          f"first {rss.get('window_s')}s {rss.get('first_window_median_mb')} MB, last "
          f"{rss.get('window_s')}s {rss.get('last_window_median_mb')} MB "
          f"({rss.get('growth_pct')} %, slope {rss.get('slope_mb_per_min')} MB/min); CPU mean "
          f"{sv['cpu_pct_mean_during_load']} % of a core, peak {sv['cpu_pct_peak_sample']} % "
          f"(2 s samples)")
    o = r["others_cpu_pct_mean_during_load"]
    print("CPU of the rest during the load (mean % of a core): " + ", ".join(
        f"{'bench (generator, probes, sampler)' if k == 'generator' else k} {v}"
        for k, v in o.items() if k != "machine") + f"; whole machine {o.get('machine')} of 200;"
          f" load average 1m mean {r['loadavg_1m']['mean']} max {r['loadavg_1m']['max']}")
    b = r["backlog"]
    print(f"backlog: service-reported max {b['service_backlog_max']}, queue depth (SDK) max "
          f"{b['queue_depth_max']}, pending keys max {b['pending_keys_max']}; samples with a "
          f"backlog >= 100: {b['samples_with_backlog_ge_100']}, of which with < 10 keys "
          f"pending (the service waiting on the queue): {b['of_those_with_lt_10_keys_pending']}"
          f"; drained {r['drain_s']} s after the load"
          + f" (its queue reported empty after {r.get('queue_empty_s')} s)"
          + (f", post-load reconcile done after {r['reconciled_s']} s" if r["phase"] == PRE
             else ""))
    print("servers' round trips (ms, p50/max): " + ", ".join(
        f"{k} {v['p50']:.0f}/{v['max']:.0f}" for k, v in r["rig_rtt_ms"].items())
        + f"; the generator's writes p50 per sample max {r['generator_write_ms_p50_max_sample']}"
          " ms")
    if "event_path_check" in r:
        e = r["event_path_check"]
        print(f"event path alone (after the drain, before the post-load reconcile): missed "
              f"{e['missed_by_event_path']}; waiting for the reconcile by design "
              f"{e['awaiting_reconcile_by_design']}"
              + (" (a reconcile had started since the load stopped)"
                 if e.get("reconcile_started_since_load_end") else ""))
    c = r["comparison"]
    for what in ("objects", "rows"):
        d = c[what]
        print(f"independent comparison, {what}: primary {d['primary']}, replica {d['replica']},"
              f" missing {d['missing']}, extra {d['extra']}, different {d['different']}"
              f" {d['different_by'] or ''}")
    pm = c["primary_vs_generator"]
    print(f"lost changes: {c['lost_changes']}  (primary vs generator's model: objects "
          f"missing/extra/different {pm['objects']['missing']}/{pm['objects']['extra']}/"
          f"{pm['objects']['different']}, rows {pm['rows']['missing']}/{pm['rows']['extra']}/"
          f"{pm['rows']['different']}; {pm['uncertain_keys']} keys uncertain)")
    so = r.get("service_slo") or {}
    print(f"the service's own SLO ({so.get('target_s')} s on lag_p99_s, the worst stream's "
          f"window p99): breached in {so.get('breached_samples')} of {so.get('samples')} "
          f"samples (max lag_p99_s {so.get('lag_p99_s_max')}; worst stream then: "
          f"{so.get('worst_stream_while_breached')}), at the end: {so.get('breached_at_end')}")
    print("targets: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                  for k, v in r["targets"].items()))


def parse_mix(text: str) -> dict[str, float]:
    try:
        return parse_kinds(text, KINDS)
    except ScheduleError as exc:
        raise SystemExit(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=50.0, help="changes per second")
    p.add_argument("--duration", type=float, default=300.0, help="pre-cutover load, seconds")
    p.add_argument("--post-duration", type=float, default=60.0,
                   help="post-cutover load, seconds")
    p.add_argument("--quick", action="store_true",
                   help="30 s before cutover, 20 s after, 200 starting objects, reconcile "
                        "every 20 s")
    p.add_argument("--only", choices=(PRE, POST))
    p.add_argument("--seed-objects", type=int, default=500)
    p.add_argument("--mix", default=DEFAULT_MIX)
    p.add_argument("--reconcile-interval", type=float, default=120.0,
                   help="[replicate] reconcile_interval_s (metadata-only changes before "
                        "cutover wait for it)")
    p.add_argument("--concurrency", type=int, default=32, help="[replicate] concurrency")
    p.add_argument("--metadata-concurrency", type=int, default=None,
                   help="[metadata] concurrency (row batches in flight; default: the "
                        "service's, 4)")
    p.add_argument("--probe-every", type=int, default=25,
                   help="poll the replica for 1 in N changes of each kind (0: none)")
    p.add_argument("--sample-s", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--py-spy", action="store_true",
                   help="profile the service with py-spy during the load")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--out", default="replicate.json", help="file name under .bench/")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 30.0)
        args.post_duration = min(args.post_duration, 20.0)
        args.seed_objects = min(args.seed_objects, 200)
        args.reconcile_interval = min(args.reconcile_interval, 20.0)
    args.mix_dict = parse_mix(args.mix)
    phases = [args.only] if args.only else [PRE, POST]
    result: dict[str, Any] = {
        "benchmark": "replicate", "machine": machine(), "load_start": load_now(),
        "options": {k: v for k, v in vars(args).items() if k != "mix_dict"},
        "targets": {"lag_p99_s": TARGET_P99_S, "lag_max_s": TARGET_MAX_S,
                    "rss_flat_tolerance": RSS_FLAT_TOLERANCE, "lost_changes": 0},
        "runs": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="crosswind-bench-replicate-"))
    log(f"work directory {workdir}")
    ok = True
    try:
        with running_rig(workdir / "rig") as rig:
            for phase in phases:
                try:
                    r = run_phase(rig, phase, args, workdir)
                except Exception as exc:
                    log(f"{phase}: FAILED: {type(exc).__name__}: {exc}")
                    result["runs"][phase] = {"error": f"{type(exc).__name__}: {exc}"}
                    ok = False
                    continue
                result["runs"][phase] = r
                ok = ok and r["targets"]["all passed"]
    finally:
        result["load_end"] = load_now()
        path = write_json(args.out, result)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for phase in phases:
        r = result["runs"].get(phase, {})
        if "error" in r:
            print(f"\n== replicate {phase}-cutover: FAILED: {r['error']}")
        elif r:
            print_phase(r)
    print(f"\nload average at start {result['load_start']}, at end {result['load_end']}; "
          "2 shared cores: figures are noisy.")
    print(f"results: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
