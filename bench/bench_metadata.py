"""Metadata rows, Azure Table → DocumentDB: crosswind's rows/s against the
bulk-upsert ceiling of the same DocumentDB server on the same machine.

Both run against their own Azurite and SecantusDB (started here, loopback):

* ceiling: the very documents crosswind writes (read once from the table and
  mapped), sent with raw pymongo ``bulk_write`` of unordered ``ReplaceOne``
  upserts by ``_id`` — same batch size, same unique index, same number of
  batches in flight (and one in flight; the better of the two counts);
* crosswind: a full table scan by the engine (``sync_metadata``, fresh state):
  listing pages from Azurite, mapping every row, bulk upserts with the
  stale-row guard, recording each synced etag in the state store.

Rounds alternate ceiling and crosswind on fresh collections; the figure is
the median over rounds of crosswind / that round's better ceiling (load from
other work drifts between rounds). Target: ≥ 0.80. Results: .bench/metadata.json.

    python bench/bench_metadata.py [--rows 20000] [--rounds 3] [--batch 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import load_now, machine, median, table, write_json
from pymongo import AsyncMongoClient, ReplaceOne

from crosswind.config import load_config
from crosswind.entities import Entity, entity_to_document
from crosswind.metasync.context import MetaOptions
from crosswind.metasync.plan import by_partition
from crosswind.metasync.runner import sync_metadata
from crosswind.model import Direction
from crosswind.rig.demo_rows import demo_entity
from crosswind.rig.emulators import Azurite, Secantus
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_tables import MAX_TRANSACTION, AzureTableStore
from crosswind.stores.base import RecordWrite

TABLE = "BenchFlightEvents"


def rows(n: int) -> list[Entity]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        carrier = rng.choice(["AA", "UA", "DL", "LH"])
        flight = rng.randint(1, 9999)
        pk = f"{carrier}{flight:04d}_202611{rng.randint(1, 26):02d}"
        out.append(demo_entity(pk, str(uuid.UUID(int=rng.getrandbits(128))),
                               {"carrier": carrier, "flight": flight, "origin": "DFW",
                                "dest": "LAX", "event_type": "departure"}, rng))
        del i
    return out


async def seed(store: AzureTableStore, entities: list[Entity]) -> float:
    t = time.perf_counter()
    await store.create()
    sem = asyncio.Semaphore(8)

    async def one(batch: list[RecordWrite]) -> None:
        async with sem:
            results = await store.write_batch(batch)
            assert all(r.status == "ok" for r in results)

    try:
        await asyncio.gather(*(one(b) for b in by_partition(
            (RecordWrite("upsert", e) for e in entities), MAX_TRANSACTION)))
    finally:
        await store.close()
    return time.perf_counter() - t


async def source_documents(store: AzureTableStore) -> list[dict[str, Any]]:
    try:
        return [entity_to_document(e) async for e in store.list() if isinstance(e, Entity)]
    finally:
        await store.close()


async def ceiling(uri: str, docs: list[dict[str, Any]], db: str, batch: int,
                  concurrency: int) -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, uuidRepresentation="standard", tz_aware=True)
    try:
        coll = client[db]["rows"]
        await coll.create_index([("PartitionKey", 1), ("RowKey", 1)], unique=True)
        batches = [docs[i : i + batch] for i in range(0, len(docs), batch)]
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def worker() -> None:
            while not queue.empty():
                b = queue.get_nowait()
                await coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in b],
                                      ordered=False)

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
        assert await coll.count_documents({}) == len(docs)
        return len(docs) / elapsed
    finally:
        await client.close()


def config(work: Path, azurite: Azurite, uri: str, db: str, batch: int, concurrency: int
           ) -> Path:
    path = work / f"{db}.toml"
    path.write_text(textwrap.dedent(f"""
        [azure]
        connection_string = "{azurite.connection_string}"
        container = "unused"
        table = "{TABLE}"
        emulator = true

        [aws]
        bucket = "unused"
        documentdb_uri = "{uri}"
        database = "{db}"
        collection = "rows"
        emulator = true

        [state]
        dir = "state-{db}"

        [metadata]
        batch_size = {batch}
        concurrency = {concurrency}
        """))
    return path


async def crosswind_run(path: Path) -> tuple[float, dict[str, Any]]:
    cfg = load_config(path)
    opts = MetaOptions.from_config(cfg, Direction.AZURE_TO_AWS, full=True)
    result = await sync_metadata(cfg, opts)
    assert result.ok, result.report
    r = result.report
    return r["written"] / r["duration_s"], r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cw-bench-meta-"))
    load_start = load_now()
    azurite = Azurite(work / "azurite").start()
    secantus = Secantus().start()
    try:
        store = AzureTableStore(resolve_auth(load_config(config(
            work, azurite, secantus.uri, "seed", args.batch, args.concurrency)).azure), TABLE)
        entities = rows(args.rows)
        seed_s = asyncio.run(seed(store, entities))
        print(f"seeded {args.rows:,} rows into Azurite in {seed_s:.1f}s", flush=True)
        docs = asyncio.run(source_documents(AzureTableStore(store.auth, TABLE)))
        assert len(docs) == args.rows
        ceil_par: list[float] = []
        ceil_one: list[float] = []
        ours: list[float] = []
        reports: list[dict[str, Any]] = []
        for i in range(args.rounds):
            ceil_par.append(asyncio.run(ceiling(secantus.uri, docs, f"ceil{i}", args.batch,
                                                args.concurrency)))
            ceil_one.append(asyncio.run(ceiling(secantus.uri, docs, f"ceil1_{i}", args.batch,
                                                1)))
            rate, report = asyncio.run(crosswind_run(config(
                work, azurite, secantus.uri, f"cw{i}", args.batch, args.concurrency)))
            ours.append(rate)
            reports.append(report)
            print(f"round {i + 1}: ceiling {ceil_par[-1]:,.0f} rows/s "
                  f"({ceil_one[-1]:,.0f} with one batch in flight), crosswind {rate:,.0f} rows/s",
                  flush=True)
        best_ceiling = max(median(ceil_par), median(ceil_one))
        # Other work on the machine drifts between rounds: each round's own ratio
        # (against that round's better ceiling) is the robust figure.
        per_round = [o / max(a, b) for o, a, b in zip(ours, ceil_par, ceil_one, strict=True)]
        ratio = median(per_round)
        result = {
            "rows": args.rows, "rounds": args.rounds, "batch_size": args.batch,
            "concurrency": args.concurrency,
            "ceiling_rows_per_s": {"concurrent": ceil_par, "one_in_flight": ceil_one,
                                   "median_best": best_ceiling},
            "crosswind_rows_per_s": ours, "crosswind_median": median(ours),
            "ratio_per_round": [round(r, 3) for r in per_round],
            "ratio": round(ratio, 3), "ratio_of_medians": round(median(ours) / best_ceiling, 3),
            "target": 0.8, "meets_target": ratio >= 0.8,
            "seed_s": seed_s, "load_start": load_start, "load_end": load_now(),
            "machine": machine(), "last_report": reports[-1],
        }
        write_json("metadata.json", result)
        print(table(["", "rows/s (median)"], [
            ["DocumentDB bulk-upsert ceiling (raw pymongo)", f"{best_ceiling:,.0f}"],
            ["crosswind Azure Table → DocumentDB", f"{median(ours):,.0f}"],
            ["ratio, median of rounds (target ≥ 0.80)", f"{ratio:.2f}"],
            ["ratio of the medians", f"{median(ours) / best_ceiling:.2f}"],
        ]))
        print(f"load average at start {load_start}, at end {result['load_end']}")
        return 0 if ratio >= 0.8 else 1
    finally:
        secantus.stop()
        azurite.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
