"""Validation benchmark.

1. A 1,000,000-key synthetic listing pair through the real object validator
   (``march`` → ``compare_pair`` → tallies → findings into a real state
   database), no servers. Both listings carry hashes *and* props (the
   heaviest case: every one of the million pairs gets its size, MD5, five
   headers and its user metadata — mapped Azure → S3, keymap included —
   compared). 0.1 % of the keys each are missing, extra, resized, corrupted
   and re-tagged; the counts must come out exact. Reported: wall time, keys/s,
   the time the generators alone take, and the peak RSS of this process
   during the run (VmHWM, reset just before).

2. On the rig (Azurite + moto): ``--objects`` objects copied Azure → S3 by
   crosswind, then ``crosswind validate`` as an operator runs it (its own
   process: wall time and peak RSS from ``/usr/bin/time``) with the default
   sample, with ``--full`` (one HEAD per S3 object) and ``--full --deep``
   (both sides' bytes read). Objects validated per second from the report.

    python bench/bench_validate.py [--keys 1000000] [--objects 2000] [--skip-rig]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    load_now,
    machine,
    reset_self_peak_rss,
    run_measured,
    self_peak_rss_mb,
    write_json,
)

from crosswind.model import ObjectMeta, ObjectProps
from crosswind.state import StateStore
from crosswind.stores.base import Capabilities
from crosswind.validate.findings import Check
from crosswind.validate.history import FindingLog
from crosswind.validate.objects import ObjectCheckOptions, check_objects
from crosswind.validate.tally import CheckTally, Targets

WHEN = datetime(2026, 2, 1, tzinfo=UTC)
KEYMAP = json.dumps({"flightid": "FlightId", "origin": "Origin"}, sort_keys=True)
FAULTS = {1: "missing_on_destination", 2: "extra_on_destination", 3: "size_mismatch",
          4: "hash_mismatch", 5: "metadata_mismatch"}


def key(i: int) -> str:
    return f"events/2026/{i // 10000:03d}/{i:07d}-LH{i % 97:04d}.json"


def md5(i: int) -> str:
    return f"{i:032x}"


class SyntheticSide:
    """A store whose listing is generated in key order (Azure-like at the
    source, S3-flavoured at the destination), both with props."""

    def __init__(self, n: int, source: bool) -> None:
        self.n = n
        self.source = source
        self.name = "synthetic://" + ("azure" if source else "s3")
        self.capabilities = Capabilities(listing_has_props=True, late_metadata=False,
                                         metadata_flavor="azure" if source else "s3")

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        src = self.source
        # Props are built per flight once (as few distinct values as a real
        # schema has); per object only what is per object: key, size, hash.
        # The content MD5 is in the entry itself (as Content-MD5 or an MD5
        # ETag), so the destination's props carry no per-object md5 entry.
        headers = {"content_type": "application/json", "cache_control": "max-age=60"}
        flights = [f"LH{f:04d}" for f in range(97)]
        src_props = [ObjectProps(**headers, metadata={"FlightId": f, "Origin": "FRA"})
                     for f in flights]
        dst_md = [{"flightid": f, "origin": "FRA",
                   "crosswind-mtime": "2026-02-01T00:00:00+00:00", "crosswind-keymap": KEYMAP}
                  for f in flights]
        dst_props = [ObjectProps(**headers, metadata=md) for md in dst_md]
        for i in range(self.n):
            fault = FAULTS.get(i % 1000)
            if (fault == "missing_on_destination" and not src) or (
                    fault == "extra_on_destination" and src):
                continue
            size, digest = 4096, md5(i)
            if src:
                props = src_props[i % 97]
            else:
                props = dst_props[i % 97]
                if fault == "size_mismatch":
                    size = 4097
                elif fault == "hash_mismatch":
                    digest = md5(i + 1)
                elif fault == "metadata_mismatch":
                    props = ObjectProps(**headers, metadata={**dst_md[i % 97], "origin": "JFK"})
            yield ObjectMeta(key(i), size, f"e{i}", WHEN, digest, props)
            if i % 1000 == 0:
                await asyncio.sleep(0)  # a real listing yields to the loop between pages


async def generators_only(n: int) -> float:
    t0 = time.perf_counter()
    for source in (True, False):
        async for _ in SyntheticSide(n, source).list():
            pass
    return time.perf_counter() - t0


def synthetic(n: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="crosswind-bench-validate-"))
    try:
        gen_s = asyncio.run(generators_only(n))
        state = StateStore(tmp / "state")
        log = FindingLog(state)
        run_id = state.start_run("validate", "azure-to-aws", False)
        writer = log.writer(run_id)
        hwm_reset = reset_self_peak_rss()
        rss_before = self_peak_rss_mb()
        tally = CheckTally(Check.OBJECTS)
        load = load_now()
        t0, cpu0 = time.perf_counter(), time.process_time()
        asyncio.run(check_objects(SyntheticSide(n, True), SyntheticSide(n, False),  # type: ignore[arg-type]
                                  ObjectCheckOptions(sample=1000, seed=1), writer.add, tally))
        writer.flush()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        peak = self_peak_rss_mb()
        stored = writer.written
        state.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    want = {name: sum(1 for i in range(n) if i % 1000 == r) for r, name in FAULTS.items()}
    got = {k.value: v for k, v in tally.kinds.items()}
    if got != want or stored != sum(want.values()):
        raise SystemExit(f"validation is wrong: {got} != {want} (stored {stored})")
    d = tally.as_dict(Targets())
    out = {
        "keys": n, "wall_s": round(wall, 3), "keys_per_s": round(n / wall),
        # CPU seconds of this process: what the run costs, less sensitive to a busy machine
        "cpu_s": round(cpu, 3),
        "generators_only_s": round(gen_s, 3), "peak_rss_mb": round(peak, 1),
        "rss_before_mb": round(rss_before, 1), "peak_rss_is_run_only": hwm_reset,
        "items": d["items"], "completeness_pct": d["completeness_pct"],
        "pass_rate_pct": d["pass_rate_pct"], "discrepancies": got, "findings_stored": stored,
        "coverage": d["coverage"], "load": load,
        "targets": {"wall_s": 15, "peak_rss_mb": 250},
    }
    print(f"validate over {n:,} synthetic key pairs (every pair: size, MD5, headers, "
          f"metadata after mapping): {wall:.2f} s, {cpu:.2f} CPU s ({n / wall:,.0f} keys/s; "
          f"the generators "
          f"alone take {gen_s:.2f} s), peak RSS {peak:.0f} MB (before: {rss_before:.0f} MB); "
          f"{stored:,} findings stored; load {load['loadavg_1m']}")
    print(f"targets: < 15 s and < 250 MB -> "
          f"{'met' if wall < 15 and peak < 250 else 'NOT met'}")
    return out


def rig(n: int) -> dict[str, Any]:
    import boto3
    from azure.storage.blob import BlobServiceClient, ContentSettings

    from crosswind.rig.emulators import running_rig

    work = Path(tempfile.mkdtemp(prefix="crosswind-bench-vrig-"))
    results: dict[str, Any] = {"objects": n}
    try:
        with running_rig(work / "rig", mongo=False) as r:
            blob = BlobServiceClient.from_connection_string(r.azurite.connection_string)
            container = blob.create_container("bench")
            s3 = boto3.client("s3", endpoint_url=r.moto.endpoint, aws_access_key_id="test",
                              aws_secret_access_key="test", region_name="us-east-1")
            s3.create_bucket(Bucket="bench")
            cfg = work / "cw.toml"
            cfg.write_text(textwrap.dedent(f"""
                [azure]
                connection_string = "{r.azurite.connection_string}"
                container = "bench"
                emulator = true
                [aws]
                bucket = "bench"
                endpoint_url = "{r.moto.endpoint}"
                access_key_id = "test"
                secret_access_key = "test"
                emulator = true
                [state]
                dir = "{work / 'state'}"
                """))
            t0 = time.perf_counter()
            body = os.urandom(4096)
            for i in range(n):
                container.upload_blob(f"events/{i:06d}.json", body[: 1024 + i % 3000],
                                      metadata={"FlightId": f"LH{i % 97}", "Origin": "FRA"},
                                      content_settings=ContentSettings("application/json"))
            results["seed_s"] = round(time.perf_counter() - t0, 1)
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            base = [sys.executable, "-m", "crosswind"]
            cp = run_measured([*base, "sync", "objects", "--config", str(cfg), "--direction",
                               "azure-to-aws", "--json"], env=env)
            if cp.returncode != 0:
                raise SystemExit(f"sync failed: {cp.stderr[-2000:]}")
            results["sync_objects_per_s"] = json.loads(cp.stdout)["throughput"]["objects_per_s"]
            for label, extra in (("default sample (1000)", []), ("--full", ["--full"]),
                                 ("--full --deep", ["--full", "--deep"])):
                m = run_measured([*base, "validate", "--config", str(cfg), "--json", *extra],
                                 env=env)
                if m.returncode != 0:
                    raise SystemExit(f"validate {label} failed ({m.returncode}): "
                                     f"{m.stdout[-1000:]} {m.stderr[-2000:]}")
                rep = json.loads(m.stdout)
                o = rep["checks"]["objects"]
                results[label] = {
                    "process_wall_s": round(m.wall_s, 2), "peak_rss_mb": round(m.peak_rss_mb, 1),
                    "validate_s": rep["duration_s"], "objects_per_s": o["items_per_s"],
                    "closer_look": o["coverage"].get("closer_look", 0),
                    "deep_read": o["coverage"].get("deep_read", 0), "verdict": rep["verdict"],
                }
                print(f"rig, {n:,} objects, {label}: {o['items_per_s']:,} objects/s "
                      f"({rep['duration_s']:.2f} s in validate; process {m.wall_s:.2f} s, "
                      f"peak RSS {m.peak_rss_mb:.0f} MB), verdict {rep['verdict']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--objects", type=int, default=2000)
    p.add_argument("--skip-rig", action="store_true")
    args = p.parse_args(argv)
    out: dict[str, Any] = {"benchmark": "validate", "machine": machine(),
                           "synthetic": synthetic(args.keys)}
    if not args.skip_rig:
        out["rig"] = rig(args.objects)
    out["load_end"] = load_now()
    path = write_json("validate.json", out)
    print(f"results: {path}")
    s = out["synthetic"]
    return 0 if s["wall_s"] < 15 and s["peak_rss_mb"] < 250 else 1


if __name__ == "__main__":
    sys.exit(main())
