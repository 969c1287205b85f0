"""Object sync benchmark: crosswind vs rclone on the same estate, side by side.

One rig (Azurite + moto, started once) and one seeded source container per
case. Each tool copies the container into a fresh, empty bucket (moto is reset
before every tool's run, so both face the same empty server), then runs again
with nothing changed (incremental). The order of the tools alternates from
round to round. crosswind runs through its real entry point, the CLI, in a
child process; rclone runs ``copy --transfers 32 --checkers 32``. Wall time
covers the whole process (start-up included) and peak RSS is the kernel's
high-water mark of that process (GNU time). CPU seconds of the tool and of
both servers during its run are recorded too: the work a tool causes is less
sensitive to the machine's load than its wall time.

The servers' own ceilings are measured on their own: a raw concurrent PUT
loop into moto (upload only) and a raw concurrent GET loop out of Azurite.
Every figure is the median of the rounds; the machine has 2 cores shared with
both servers (and possibly other users), so the figures are noisy.

    python bench/objects.py [--rounds 3] [--small-count 2000] [--large-count 5] ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import obstore
import psutil
from aiobotocore.session import get_session
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient
from benchlib import (
    Measured,
    MiB,
    load_now,
    machine,
    median,
    run_measured,
    table,
    write_json,
)
from botocore.config import Config as BotoConfig
from obstore.store import AzureStore, S3Store

from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Rig, running_rig
from crosswind.rig.proxy import LatencyProxy
from crosswind.rig.rclone import AzureSasRemote, Rclone, S3Remote, container_sas_url
from crosswind.stores.s3_http import S3Http

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Case:
    name: str
    count: int
    size: int

    @property
    def container(self) -> str:
        return f"bench-{self.name}"

    @property
    def total_bytes(self) -> int:
        return self.count * self.size


def _key(case: Case, i: int) -> str:
    # Flight-event shaped names, spread over days and flights.
    day, flight = i % 28 + 1, i % 97
    return f"events/2026/02/{day:02d}/LH{flight:04d}/{case.name}-{i:07d}.json"


# -- seeding -----------------------------------------------------------------------
async def _bounded(n: int, concurrency: int, fn: Callable[[int], Awaitable[None]]) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))


async def seed(rig: Rig, case: Case) -> None:
    """The source estate: ``count`` blobs of ``size`` random bytes, with
    content type and user metadata, uploaded single-shot (Azure stores their
    Content-MD5)."""
    async with BlobServiceClient.from_connection_string(rig.azurite.connection_string) as svc:
        container = svc.get_container_client(case.container)
        await container.create_container()
        settings = ContentSettings(content_type="application/json")

        async def put(i: int) -> None:
            await container.upload_blob(
                _key(case, i), os.urandom(case.size), overwrite=True,
                metadata={"flightid": f"LH{i % 97:04d}", "seq": str(i)},
                content_settings=settings, max_concurrency=1,
            )

        await _bounded(case.count, 16 if case.size < MiB else 2, put)


# -- the servers' ceilings -----------------------------------------------------------
def _s3_fast(rig: Rig, bucket: str) -> S3Store:
    return S3Store(bucket, endpoint=rig.moto.endpoint, access_key_id="test",
                   secret_access_key="test", region="us-east-1",
                   virtual_hosted_style_request=False, client_options={"allow_http": True})


def _azure_fast(rig: Rig, container: str) -> AzureStore:
    return AzureStore(container_name=container, account_name=AZURITE_ACCOUNT,
                      account_key=AZURITE_KEY, endpoint=rig.azurite.blob_url,
                      client_options={"allow_http": True})


async def moto_put_ceiling(rig: Rig, case: Case, concurrency: int) -> dict[str, Any]:
    """Upload only: raw concurrent PUTs into moto, with two clients (obstore,
    aiobotocore); the better one is the ceiling."""
    bodies = [os.urandom(case.size) for _ in range(min(case.count, 8))]
    out: dict[str, Any] = {}

    rig.moto.reset()
    boto3_client(rig).create_bucket(Bucket="ceiling-obstore")
    store = _s3_fast(rig, "ceiling-obstore")

    async def ob_put(i: int) -> None:
        await obstore.put_async(store, _key(case, i), bodies[i % len(bodies)],
                                use_multipart=False)

    t0 = time.perf_counter()
    await _bounded(case.count, concurrency, ob_put)
    out["obstore"] = _rate(case, time.perf_counter() - t0)

    rig.moto.reset()
    boto3_client(rig).create_bucket(Bucket="ceiling-boto")
    cfg = BotoConfig(max_pool_connections=concurrency, s3={"addressing_style": "path"})
    async with get_session().create_client(
        "s3", endpoint_url=rig.moto.endpoint, region_name="us-east-1", config=cfg,
        aws_access_key_id="test", aws_secret_access_key="test",
    ) as client:
        async def boto_put(i: int) -> None:
            await client.put_object(Bucket="ceiling-boto", Key=_key(case, i),
                                    Body=bodies[i % len(bodies)])

        t0 = time.perf_counter()
        await _bounded(case.count, concurrency, boto_put)
        out["aiobotocore"] = _rate(case, time.perf_counter() - t0)
    rig.moto.reset()
    out["best"] = max((out["obstore"], out["aiobotocore"]), key=lambda r: r["objects_per_s"])
    return out


async def azurite_get_ceiling(rig: Rig, case: Case, concurrency: int) -> dict[str, Any]:
    """Download only: raw concurrent GETs of the seeded blobs out of Azurite."""
    store = _azure_fast(rig, case.container)

    async def get(i: int) -> None:
        r = await obstore.get_async(store, _key(case, i))
        got = 0
        async for chunk in r.stream(min_chunk_size=8 * MiB):
            got += len(chunk)
        assert got == case.size

    t0 = time.perf_counter()
    await _bounded(case.count, concurrency, get)
    return _rate(case, time.perf_counter() - t0)


async def copy_ceiling(rig: Rig, case: Case, concurrency: int) -> dict[str, Any]:
    """The fastest whole copy we could write against these two servers: obstore
    GET out of Azurite straight into a PUT to moto (small objects: obstore's;
    large ones: one streamed PUT over aiohttp, the fastest of the clients
    tried), one request each, in process: no start-up, no listing, no state,
    no verification. What no tool can beat on this rig, whatever its design."""
    rig.moto.reset()
    boto3_client(rig).create_bucket(Bucket="ceiling-copy")
    az = _azure_fast(rig, case.container)
    s3 = _s3_fast(rig, "ceiling-copy")

    http = S3Http(bucket="ceiling-copy", region="us-east-1", endpoint_url=rig.moto.endpoint,
                  credentials=("test", "test", None), pool=concurrency)

    async def copy(i: int) -> None:
        r = await obstore.get_async(az, _key(case, i))
        if case.size < MiB:
            await obstore.put_async(s3, _key(case, i), await r.bytes_async(),
                                    use_multipart=False)
        else:
            # One streamed PUT, not hashed (obstore would buffer a put's payload).
            async def body() -> Any:
                async for chunk in r.stream(min_chunk_size=MiB):
                    yield bytes(chunk)

            await http.put_object(_key(case, i), body(), case.size, {}, "ceiling")

    t0 = time.perf_counter()
    try:
        await _bounded(case.count, concurrency, copy)
    finally:
        await http.close()
    out = _rate(case, time.perf_counter() - t0)
    rig.moto.reset()
    return out


def _rate(case: Case, seconds: float) -> dict[str, Any]:
    return {"seconds": round(seconds, 3), "objects_per_s": round(case.count / seconds, 1),
            "mb_per_s": round(case.total_bytes / MiB / seconds, 2)}


def boto3_client(rig: Rig) -> Any:
    return boto3.client("s3", endpoint_url=rig.moto.endpoint, aws_access_key_id="test",
                        aws_secret_access_key="test", region_name="us-east-1")


# -- the two tools -----------------------------------------------------------------
def bucket_contents(rig: Rig, bucket: str) -> tuple[int, int]:
    n = size = 0
    for page in boto3_client(rig).get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            n += 1
            size += o["Size"]
    return n, size


#: extra [sync] settings for crosswind's config (``--sync KEY=VALUE``), to compare designs
SYNC_EXTRA: dict[str, str] = {}


def crosswind_config(rig: Rig, case: Case, bucket: str, workdir: Path, concurrency: int,
                     via: Endpoints | None = None) -> Path:
    path = workdir / f"{bucket}.toml"
    conn = rig.azurite.connection_string
    s3_endpoint = rig.moto.endpoint
    if via is not None:
        conn = conn.replace(rig.azurite.blob_url, via.blob_url)
        s3_endpoint = via.s3_endpoint
    path.write_text(textwrap.dedent(f"""
        [azure]
        connection_string = "{conn}"
        container = "{case.container}"
        emulator = true

        [aws]
        bucket = "{bucket}"
        endpoint_url = "{s3_endpoint}"
        access_key_id = "test"
        secret_access_key = "test"
        emulator = true

        [state]
        dir = "state-{bucket}"

        [sync]
        concurrency = {concurrency}
        """) + "".join(f"{k} = {v}\n" for k, v in SYNC_EXTRA.items()))
    return path


def run_crosswind(config: Path, concurrency: int) -> tuple[Measured, dict[str, Any]]:
    argv = [str(VENV_BIN / "crosswind"), "sync", "objects", "--config", str(config),
            "--direction", "azure-to-aws", "--json", "--concurrency", str(concurrency)]
    m = run_measured(argv)
    if m.returncode != 0:
        raise RuntimeError(f"crosswind exited with {m.returncode}: {m.stderr[-2000:]}")
    return m, json.loads(m.stdout)


def run_rclone(rc: Rclone, case: Case, bucket: str, concurrency: int) -> Measured:
    argv = rc.command("copy", f"az:{case.container}", f"s3:{bucket}",
                      "--transfers", str(concurrency), "--checkers", str(concurrency))
    m = run_measured(argv, env=rc.env())
    if m.returncode != 0:
        raise RuntimeError(f"rclone exited with {m.returncode}: {m.stderr[-2000:]}")
    return m


def _figures(case: Case, m: Measured, copied: int, servers_cpu_s: float) -> dict[str, Any]:
    return {"wall_s": round(m.wall_s, 3), "peak_rss_mb": round(m.peak_rss_mb, 1),
            "objects_per_s": round(copied / m.wall_s, 1),
            "mb_per_s": round(copied * case.size / MiB / m.wall_s, 2),
            "cpu_s": round(m.cpu_s, 2), "servers_cpu_s": round(servers_cpu_s, 2)}


def servers_cpu(rig: Rig) -> float:
    """CPU seconds used so far by Azurite and moto (how much work a run gave them)."""
    total = 0.0
    for proc in (rig.azurite.proc, rig.moto.proc):
        if proc is not None:
            t = psutil.Process(proc.pid).cpu_times()
            total += t.user + t.system
    return total


def one_tool(rig: Rig, case: Case, tool: str, rnd: int, workdir: Path,
             concurrency: int) -> dict[str, Any]:
    """A full copy into an empty bucket, then an incremental run (nothing changed)."""
    rig.moto.reset()
    bucket = f"{tool}-{case.name}-r{rnd}"
    boto3_client(rig).create_bucket(Bucket=bucket)
    load_before = load_now()
    out: dict[str, Any] = {"tool": tool, "round": rnd, "load_before": load_before}
    cpu0 = servers_cpu(rig)
    if tool == "crosswind":
        cfg = crosswind_config(rig, case, bucket, workdir, concurrency)
        full, report = run_crosswind(cfg, concurrency)
        cpu1 = servers_cpu(rig)
        if report["copied"]["count"] != case.count:
            raise RuntimeError(f"crosswind copied {report['copied']} of {case.count}")
        out["engine_duration_s"] = report["duration_s"]
        incr, report2 = run_crosswind(cfg, concurrency)
        if report2["copied"]["count"] != 0 or report2["skipped"]["count"] != case.count:
            raise RuntimeError(f"crosswind incremental run was not a no-op: {report2}")
    else:
        rc = rclone_for(rig, case)
        full = run_rclone(rc, case, bucket, concurrency)
        cpu1 = servers_cpu(rig)
        incr = run_rclone(rc, case, bucket, concurrency)
    # Whatever a tool says, the bucket must hold the whole estate.
    n, size = bucket_contents(rig, bucket)
    if (n, size) != (case.count, case.total_bytes):
        raise RuntimeError(f"{tool}: bucket holds {n} objects / {size} bytes, expected "
                           f"{case.count} / {case.total_bytes}")
    out["full"] = _figures(case, full, case.count, cpu1 - cpu0)
    out["incremental"] = {"wall_s": round(incr.wall_s, 3),
                          "peak_rss_mb": round(incr.peak_rss_mb, 1),
                          "cpu_s": round(incr.cpu_s, 2),
                          "objects_checked_per_s": round(case.count / incr.wall_s, 1)}
    out["load_after"] = load_now()
    return out


def rclone_for(rig: Rig, case: Case) -> Rclone:
    sas = container_sas_url(rig.azurite.blob_url, AZURITE_ACCOUNT, AZURITE_KEY, case.container)
    return Rclone(AzureSasRemote(sas), S3Remote("test", "test", rig.moto.endpoint))


def startup_cost() -> dict[str, float]:
    """What a process costs before it does any work: `crosswind --help`."""
    walls = [run_measured([str(VENV_BIN / "crosswind"), "--help"]).wall_s for _ in range(3)]
    return {"crosswind_help_wall_s": round(median(walls), 3)}


# -- summary -------------------------------------------------------------------------
def summarize(case: Case, runs: list[dict[str, Any]], ceilings: dict[str, Any]) -> dict[str, Any]:
    def med(tool: str, phase: str, field: str) -> float:
        return median([r[phase][field] for r in runs if r["tool"] == tool])

    s: dict[str, Any] = {}
    for tool in ("crosswind", "rclone"):
        s[tool] = {
            "objects_per_s": med(tool, "full", "objects_per_s"),
            "mb_per_s": med(tool, "full", "mb_per_s"),
            "wall_s": med(tool, "full", "wall_s"),
            "peak_rss_mb": med(tool, "full", "peak_rss_mb"),
            "cpu_s": med(tool, "full", "cpu_s"),
            "servers_cpu_s": med(tool, "full", "servers_cpu_s"),
            "incremental_wall_s": med(tool, "incremental", "wall_s"),
            "incremental_peak_rss_mb": med(tool, "incremental", "peak_rss_mb"),
        }
    for tool in ("crosswind", "rclone"):
        t = s[tool]
        # Work per object for the whole machine (tool + both servers): the
        # figure least sensitive to what else runs on the shared cores.
        t["objects_per_cpu_s"] = round(case.count / (t["cpu_s"] + t["servers_cpu_s"]), 1)
    cw, rc = s["crosswind"], s["rclone"]
    s["ratio"] = {
        "objects_per_cpu_s": round(cw["objects_per_cpu_s"] / rc["objects_per_cpu_s"], 2),
        "objects_per_s": round(cw["objects_per_s"] / rc["objects_per_s"], 2),
        "mb_per_s": round(cw["mb_per_s"] / rc["mb_per_s"], 2),
        "incremental_speedup": round(rc["incremental_wall_s"] / cw["incremental_wall_s"], 2),
    }
    cw_engine = median([r["engine_duration_s"] for r in runs if r["tool"] == "crosswind"])
    s["crosswind"]["engine_only_objects_per_s"] = round(case.count / cw_engine, 1)
    s["ceilings"] = ceilings
    s["rounds"] = len(runs) // 2
    return s


def print_case(case: Case, s: dict[str, Any]) -> None:
    print(f"\n== {case.count} x {case.size // 1024 if case.size < MiB else case.size // MiB}"
          f" {'KiB' if case.size < MiB else 'MiB'} objects, Azurite -> moto, "
          f"median of {s['rounds']} rounds ==")
    rows = []
    for tool in ("crosswind", "rclone"):
        t = s[tool]
        rows.append([tool, t["objects_per_s"], t["mb_per_s"], t["wall_s"], t["peak_rss_mb"],
                     t["cpu_s"], t["servers_cpu_s"], t["incremental_wall_s"],
                     t["incremental_peak_rss_mb"]])
    r = s["ratio"]
    rows.append(["ratio crosswind/rclone", r["objects_per_s"], r["mb_per_s"], "", "", "", "",
                 f"{r['incremental_speedup']}x faster", ""])
    c = s["ceilings"]
    rows.append(["ceiling: moto PUT only", c["moto_put"]["best"]["objects_per_s"],
                 c["moto_put"]["best"]["mb_per_s"], "", "", "", "", "", ""])
    rows.append(["ceiling: Azurite GET only", c["azurite_get"]["objects_per_s"],
                 c["azurite_get"]["mb_per_s"], "", "", "", "", "", ""])
    if "copy" in c:
        rows.append(["ceiling: GET+PUT, fastest client", c["copy"]["objects_per_s"],
                     c["copy"]["mb_per_s"], "", "", "", "", "", ""])
    print(table(["", "objects/s", "MB/s", "wall s", "peak RSS MB", "CPU s", "servers CPU s",
                 "incr. wall s", "incr. RSS MB"], rows))
    print(f"(crosswind engine time only, without process start-up: "
          f"{s['crosswind']['engine_only_objects_per_s']} objects/s; objects per CPU-second of "
          f"tool + servers: crosswind {s['crosswind']['objects_per_cpu_s']}, rclone "
          f"{s['rclone']['objects_per_cpu_s']}, ratio {r['objects_per_cpu_s']})")


@dataclass(frozen=True)
class Endpoints:
    """Where the tools reach the servers: through the latency proxies."""

    blob_url: str
    s3_endpoint: str


def run_latency(rig: Rig, case: Case, rtt_ms: float, concurrencies: Sequence[int],
                rounds: int, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Both tools through TCP relays that delay every byte by half of ``rtt_ms``
    each way (a WAN between the clouds: a request and its answer cost one round
    trip, a new connection one more), at each concurrency, alternating, medians
    of rounds: how throughput scales with concurrency when round trips, not
    CPU, bound it."""
    log(f"latency mode: {case.count} x {case.size} B, {rtt_ms} ms round trip")
    asyncio.run(seed(rig, case))
    blob_proxy = LatencyProxy("127.0.0.1", rig.azurite.blob_port, rtt_ms / 1000).start()
    s3_proxy = LatencyProxy("127.0.0.1", rig.moto.port, rtt_ms / 1000).start()
    via = Endpoints(f"{blob_proxy.url}/{AZURITE_ACCOUNT}", s3_proxy.url)
    rows: list[dict[str, Any]] = []
    try:
        for conc in concurrencies:
            per_tool: dict[str, list[float]] = {"crosswind": [], "rclone": []}
            for rnd in range(rounds):
                order = ("crosswind", "rclone") if rnd % 2 == 0 else ("rclone", "crosswind")
                for tool in order:
                    rig.moto.reset()
                    bucket = f"lat-{tool}-c{conc}-r{rnd}"
                    boto3_client(rig).create_bucket(Bucket=bucket)
                    if tool == "crosswind":
                        cfg = crosswind_config(rig, case, bucket, workdir, conc, via)
                        m, _ = run_crosswind(cfg, conc)
                    else:
                        sas = container_sas_url(via.blob_url, AZURITE_ACCOUNT, AZURITE_KEY,
                                                case.container)
                        rc = Rclone(AzureSasRemote(sas), S3Remote("test", "test", via.s3_endpoint))
                        m = run_rclone(rc, case, bucket, conc)
                    n, _ = bucket_contents(rig, bucket)
                    if n != case.count:
                        raise RuntimeError(f"{tool} copied {n} of {case.count} through the proxy")
                    per_tool[tool].append(case.count / m.wall_s)
            row = {"concurrency": conc,
                   "crosswind_objects_per_s": round(median(per_tool["crosswind"]), 1),
                   "rclone_objects_per_s": round(median(per_tool["rclone"]), 1)}
            row["ratio"] = round(row["crosswind_objects_per_s"] / row["rclone_objects_per_s"], 2)
            log(f"  concurrency {conc}: {row}")
            rows.append(row)
    finally:
        blob_proxy.stop()
        s3_proxy.stop()
    return {"rtt_ms": rtt_ms, "case": {"count": case.count, "size": case.size},
            "rounds": rounds, "rows": rows}


def print_latency(lat: dict[str, Any]) -> None:
    print(f"\n== latency-bound: {lat['case']['count']} x {lat['case']['size'] // 1024} KiB, "
          f"{lat['rtt_ms']:g} ms round trip to both servers, median of {lat['rounds']} ==")
    print(table(["concurrency", "crosswind objects/s", "rclone objects/s", "ratio"],
                [[r["concurrency"], r["crosswind_objects_per_s"], r["rclone_objects_per_s"],
                  r["ratio"]] for r in lat["rows"]]))


def run_case(rig: Rig, case: Case, rounds: int, concurrency: int, workdir: Path,
             log: Callable[[str], None]) -> dict[str, Any]:
    log(f"seeding {case.count} x {case.size} B into Azurite")
    t0 = time.perf_counter()
    asyncio.run(seed(rig, case))
    log(f"  seeded in {time.perf_counter() - t0:.1f}s")
    ceilings = {
        "moto_put": asyncio.run(moto_put_ceiling(rig, case, concurrency)),
        "azurite_get": asyncio.run(azurite_get_ceiling(rig, case, concurrency)),
    }
    ceilings["copy"] = asyncio.run(copy_ceiling(rig, case, concurrency))
    log(f"  ceilings: moto PUT {ceilings['moto_put']['best']}, "
        f"Azurite GET {ceilings['azurite_get']}")
    runs = []
    for rnd in range(rounds):
        order = ("crosswind", "rclone") if rnd % 2 == 0 else ("rclone", "crosswind")
        for tool in order:
            r = one_tool(rig, case, tool, rnd, workdir, concurrency)
            log(f"  round {rnd} {tool}: full {r['full']}, incremental {r['incremental']}")
            runs.append(r)
    summary = summarize(case, runs, ceilings)
    return {"case": {"name": case.name, "count": case.count, "size": case.size},
            "summary": summary, "runs": runs}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--small-count", type=int, default=2000)
    p.add_argument("--small-size", type=int, default=4096)
    p.add_argument("--large-count", type=int, default=5)
    p.add_argument("--large-size-mib", type=int, default=50)
    p.add_argument("--huge-count", type=int, default=2)
    p.add_argument("--huge-size-mib", type=int, default=300)
    p.add_argument("--only", choices=("small", "large", "huge", "latency"), action="append",
                   default=None)
    p.add_argument("--out", default="objects.json", help="file name under .bench/")
    p.add_argument("--latency-ms", type=float, default=40.0,
                   help="round trip added to both servers in the latency mode (0: skip it)")
    p.add_argument("--latency-count", type=int, default=400)
    p.add_argument("--latency-concurrency", default="4,16,64")
    p.add_argument("--sync", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra [sync] setting for crosswind (to compare designs)")
    args = p.parse_args(argv)
    SYNC_EXTRA.update(kv.split("=", 1) for kv in args.sync)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    cases = [Case("small", args.small_count, args.small_size),
             Case("large", args.large_count, args.large_size_mib * MiB),
             Case("huge", args.huge_count, args.huge_size_mib * MiB)]
    if args.only:
        cases = [c for c in cases if c.name in args.only]
    result: dict[str, Any] = {"benchmark": "objects", "machine": machine(),
                              "load_start": load_now(), "concurrency": args.concurrency,
                              "startup": startup_cost(), "cases": []}
    with tempfile.TemporaryDirectory(prefix="crosswind-bench-") as tmp, \
            running_rig(Path(tmp) / "rig", mongo=False) as rig:
        for case in cases:
            result["cases"].append(run_case(rig, case, args.rounds, args.concurrency,
                                            Path(tmp), log))
        if args.latency_ms > 0 and (not args.only or "latency" in args.only):
            result["latency"] = run_latency(
                rig, Case("latency", args.latency_count, args.small_size), args.latency_ms,
                [int(c) for c in args.latency_concurrency.split(",")], args.rounds,
                Path(tmp), log)
    result["load_end"] = load_now()
    path = write_json(args.out, result)
    for c in result["cases"]:
        case = Case(c["case"]["name"], c["case"]["count"], c["case"]["size"])
        print_case(case, c["summary"])
    if "latency" in result:
        print_latency(result["latency"])
    print(f"\nload average at start {result['load_start']}, at end {result['load_end']}; "
          "2 shared cores: figures are noisy.")
    print(f"crosswind process start-up (`crosswind --help`): "
          f"{result['startup']['crosswind_help_wall_s']} s, included in its wall times")
    print(f"results: {path}")
    return result


if __name__ == "__main__":
    main()
