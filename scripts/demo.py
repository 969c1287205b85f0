"""`make demo`: the main job end to end on local servers.

Starts Azurite, moto and SecantusDB on free loopback ports, seeds a realistic
flight-event estate into Azurite, then drives the real `crosswind` CLI: an
inventory, a sync with its progress bar and report, the same sync again (which
copies nothing), the metadata rows, a validation; then the live migration
(``demo_live.py``): the replication service with its measured lag, a cutover
approved by two teams, writes on AWS arriving on Azure, a rollback with its
RTO, the audit chain verified. Everything lives under `.demo/`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient

from crosswind.config import load_config
from crosswind.rig.demo_rows import BAD_OBJECT_NAMES, seed_demo_rows
from crosswind.rig.emulators import REPO_ROOT, Rig, running_rig

WORK = REPO_ROOT / ".demo"
CONTAINER = "flight-events"
BUCKET = "nxop-flight-events"
N_OBJECTS = int(os.environ.get("DEMO_OBJECTS", "3000"))
MiB = 1024 * 1024
# Flight numbers are zero-padded to four digits in the names (AA0042), so the
# field is `int:4`; `{event_id:uuid}` keeps event types with '_' unambiguous.
KEY_PATTERN = (
    "events/{date:%Y/%m/%d}/{carrier:[A-Z0-9]{2}}{flight:int:4}/"
    "{origin:[A-Z]{3}}-{dest:[A-Z]{3}}/{event_type}-{event_id:uuid}.json"
)

CARRIERS = ["AA", "UA", "DL", "LH", "BA", "NH", "AF", "QF"]
AIRPORTS = ["DFW", "LAX", "JFK", "ORD", "FRA", "LHR", "HND", "CDG", "SYD", "MIA"]
EVENTS = ["scheduled", "departure", "takeoff", "landing", "arrival", "delay", "gate_change"]


def banner(text: str) -> None:
    print(f"\n\033[1;36m== {text}\033[0m", flush=True)


def flight_event(rng: random.Random, day: datetime) -> tuple[str, bytes, dict[str, str]]:
    carrier = rng.choice(CARRIERS)
    number = rng.randint(1, 9999)
    origin, dest = rng.sample(AIRPORTS, 2)
    event = rng.choice(EVENTS)
    event_id = uuid.UUID(int=rng.getrandbits(128))
    key = (f"events/{day:%Y/%m/%d}/{carrier}{number:04d}/{origin}-{dest}/"
           f"{event}-{event_id}.json")
    doc = {
        "flight": f"{carrier}{number:04d}", "carrier": carrier, "number": number,
        "origin": origin, "destination": dest, "event_type": event,
        "event_id": str(event_id),
        "at": (day + timedelta(minutes=rng.randint(0, 1439))).isoformat(),
        "gate": f"{rng.choice('ABCDE')}{rng.randint(1, 40)}",
        "tail": f"N{rng.randint(100, 999)}{carrier}",
    }
    # Mixed sizes: most events are small; some carry a position track.
    if rng.random() < 0.1:
        doc["track"] = [[rng.uniform(-90, 90), rng.uniform(-180, 180)]
                        for _ in range(rng.randint(500, 20000))]
    body = json.dumps(doc).encode()
    meta = {"EventType": event, "Carrier": carrier, "SourceSystem": "FXIP"}
    return key, body, meta


def estate(n: int) -> list[tuple[str, bytes, dict[str, str]]]:
    rng = random.Random(2026)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    items = [flight_event(rng, start + timedelta(days=rng.randint(0, 25))) for _ in range(n)]
    # A few names outside ASCII, as real estates have.
    items += [
        ("events/2026/11/26/LH0400/FRA-JFK/arrivée-Zürich-Ü.json", b'{"note": "non-ASCII"}',
         {"EventType": "arrival"}),
        ("events/2026/11/26/NH0010/HND-ORD/到着-イベント.json", b'{"note": "Japanese"}',
         {"EventType": "arrival"}),
        ("events/2026/11/26/QF0001/SYD-LHR/landing-✈.json", b'{"note": "symbol"}',
         {"EventType": "landing"}),
    ]
    return items


async def seed(rig: Rig, items: list[tuple[str, bytes, dict[str, str]]]) -> int:
    total = 0
    async with BlobServiceClient.from_connection_string(rig.azurite.connection_string) as svc:
        container = await svc.create_container(CONTAINER)
        sem = asyncio.Semaphore(32)

        async def put(key: str, body: bytes, meta: dict[str, str]) -> None:
            async with sem:
                await container.upload_blob(
                    key, body, metadata=meta, overwrite=True,
                    content_settings=ContentSettings(content_type="application/json",
                                                     cache_control="max-age=300"))

        await asyncio.gather(*(put(k, b, m) for k, b, m in items))
        # A few objects whose names do not follow the key pattern.
        await asyncio.gather(*(put(k, b'{"bad": "name"}', {}) for k in BAD_OBJECT_NAMES))
        total = sum(len(b) for _, b, _ in items)
        # One archive above 64 MiB: it goes in parallel parts.
        big = os.urandom(70 * MiB)
        await container.upload_blob("archives/2026/11/fxip-events-2026-11.tar", big,
                                    metadata={"Kind": "monthly-archive"}, max_concurrency=4,
                                    content_settings=ContentSettings(
                                        content_type="application/x-tar"))
        total += len(big)
    return total


def write_config(rig: Rig) -> Path:
    cfg = WORK / "crosswind.toml"
    cfg.write_text(textwrap.dedent(f"""\
        # Written by scripts/demo.py for the local emulators.
        [azure]
        connection_string = "env:AZURE_STORAGE_CONNECTION_STRING"
        container = "{CONTAINER}"
        table = "FlightEventMetadata"
        emulator = true          # loopback http and the public Azurite key are allowed

        [aws]
        bucket = "{BUCKET}"
        region = "us-east-1"
        endpoint_url = "{rig.moto.endpoint}"
        access_key_id = "env:AWS_ACCESS_KEY_ID"
        secret_access_key = "env:AWS_SECRET_ACCESS_KEY"
        documentdb_uri = "env:DOCDB_URI"
        database = "nxop"
        collection = "flight_event_metadata"
        emulator = true

        [state]
        dir = "state"

        [sync]
        concurrency = 32

        [keys]
        pattern = "{KEY_PATTERN}"
        partition_key = "{{carrier}}{{flight}}_{{date:%Y%m%d}}"
        row_key = "{{event_id}}"

        [governance]             # stewardship on every report; schemas checked before write
        domain = "ADL"
        steward = "data.steward@example.com"
        owner = "flight-operations"
        flow_id = 26
        enforce = "warn"         # the live story's rows lack fields the schema requires
        """))
    return cfg


def crosswind(*args: str, env: dict[str, str]) -> int:
    print(f"\033[2m$ crosswind {' '.join(args)}\033[0m", flush=True)
    return subprocess.call([sys.executable, "-m", "crosswind", *args], env=env)


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    banner("starting Azurite, moto server and SecantusDB on free loopback ports")
    with running_rig(WORK / "rig") as rig:
        import boto3

        boto3.client("s3", endpoint_url=rig.moto.endpoint, aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1",
                     ).create_bucket(Bucket=BUCKET)
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": rig.azurite.connection_string,
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "DOCDB_URI": rig.secantus.uri}
        items = estate(N_OBJECTS)
        banner(f"seeding {len(items) + 1:,} flight-event objects into Azurite")
        t = time.monotonic()
        total = asyncio.run(seed(rig, items))
        print(f"seeded {total / MiB:.1f} MiB in {time.monotonic() - t:.1f}s")
        cfg = str(write_config(rig))

        banner("seeding the metadata rows into Azure Table Storage")
        os.environ.update({k: env[k] for k in ("AZURE_STORAGE_CONNECTION_STRING",
                                               "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                               "DOCDB_URI")})
        rows = asyncio.run(seed_demo_rows(load_config(cfg), [k for k, _, _ in items]))
        print(f"{rows.rows:,} rows, {len(rows.orphan_rows)} of them without an object; "
              f"{len(BAD_OBJECT_NAMES)} objects named against the key pattern")

        checks: list[tuple[str, int, frozenset[int]]] = []
        may_report = frozenset({0, 1})  # exit 1: the run found (expected) problems

        def step(title: str, *args: str, ok: frozenset[int] = frozenset({0})) -> None:
            banner(title)
            checks.append((title, crosswind(*args, "--config", cfg, env=env), ok))

        step("the schema registry: the three subjects' built-in schemas as version 1",
             "schema", "init")
        step("capacity report of the Azure side", "inventory", "--side", "azure")
        step("parse a sample of real names with the key pattern", "keys", "check",
             "--side", "azure", "--limit", "500", ok=may_report)
        step("sync objects Azure -> AWS (verified copies)",
             "sync", "objects", "--direction", "azure-to-aws")
        step("the same sync again: nothing has changed, nothing is copied",
             "sync", "objects", "--direction", "azure-to-aws")
        # The badly named objects have no row: they land in the DLQ (exit 1).
        step("metadata rows for the synced objects: Azure Table -> DocumentDB",
             "sync", "metadata", "--direction", "azure-to-aws", "--mode", "objects",
             ok=may_report)
        step("table scan: rows without objects too", "sync", "metadata",
             "--direction", "azure-to-aws")
        step("what failed, and why", "dlq", "list")
        step("validate both sides: objects, rows and the join", "validate",
             "--direction", "azure-to-aws", "--full",
             "--html", str(WORK / "validation.html"), ok=may_report)
        step("recent runs", "runs")
        step("the flow for the data catalog: datasets, schemas, lineage, quality",
             "catalog", "export", "--out", str(WORK / "catalog"))
        from demo_live import live_story

        live_story(rig, WORK, Path(cfg), env, CONTAINER, BUCKET, crosswind, checks)
        banner("stopping the servers")
    failed = [(t, rc) for t, rc, allowed in checks if rc not in allowed]
    ok = not failed
    for title, rc in failed:
        print(f"step failed (exit {rc}): {title}")
    print(f"\nreports: {WORK / 'state' / 'reports'}, HTML validation report: "
          f"{WORK / 'validation.html'}")
    print("demo finished" + ("" if ok else " WITH ERRORS"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
