"""Planning benchmark: 1,000,000 synthetic keys through the real sync engine, no servers.

A synthetic source listing and destination listing (async generators in key
order, as the stores yield them) and a state database holding the verified
copies of earlier runs go through ``SyncRun`` in dry-run mode: the same
``_filtered`` → ``march`` (with the verified-records stream from SQLite) →
``decide`` loop and counters as a real run, with nothing copied. The estate:

    90 %  unchanged since a verified copy         → skip (record)
     5 %  new at the source                       → copy
     3 %  changed at the source since its copy    → copy
     1 %  on both sides, no record, same MD5      → skip (hash)
     1 %  only at the destination                 → extra

Reported: wall time of the run, the time the generators alone take (the part
a real listing would spend in the network and parser instead), and the peak
RSS of this process during the run (VmHWM, reset after the state database was
filled), next to the RSS before it.

    python bench/plan.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import load_now, machine, reset_self_peak_rss, self_peak_rss_mb, write_json

from crosswind.model import ObjectMeta, ObjectProps
from crosswind.state import StateStore, now_iso
from crosswind.stores.base import Capabilities
from crosswind.sync.engine import SyncRun
from crosswind.sync.result import SyncOptions

WHEN = datetime(2026, 2, 1, tzinfo=UTC)
DIRECTION = "azure-to-aws"


def kind(i: int) -> str:
    r = i % 100
    if r < 90:
        return "unchanged"
    if r < 95:
        return "new"
    if r < 98:
        return "changed"
    if r < 99:
        return "same-hash"
    return "extra"


def key(i: int) -> str:
    return f"events/{i // 1000:04d}/{i:07d}-LH{i % 97:04d}.json"


def md5(i: int) -> str:
    return f"{i:032x}"


def _props(i: int) -> ObjectProps:
    return ObjectProps(content_type="application/json", metadata={"flightid": f"LH{i % 97:04d}"})


class SyntheticListing:
    """A store whose listing is generated; the engine's dry run only lists."""

    def __init__(self, name: str, n: int, side: str) -> None:
        self.name = name
        self.n = n
        self.side = side
        self.capabilities = Capabilities(listing_has_props=side == "source",
                                         late_metadata=False, metadata_flavor="free")

    async def head(self, k: str) -> ObjectMeta:
        """Only the destination is asked: for equal-hash pairs without a record
        the engine compares metadata (the same here)."""
        i = int(k.rsplit("/", 1)[1].split("-", 1)[0])
        return ObjectMeta(k, 4096, md5(i), WHEN, md5(i), _props(i))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        src = self.side == "source"
        for i in range(self.n):
            k = kind(i)
            if (k == "extra" and src) or (k == "new" and not src):
                continue
            etag = f"0x8D{i:012X}" if src else f"{md5(i)}"
            if src and k == "changed":
                etag += "-v2"
            yield ObjectMeta(key(i), 4096, etag, WHEN, md5(i), _props(i) if src else None)
            if i % 1000 == 0:
                # A real listing yields to the loop between pages.
                await asyncio.sleep(0)


def verified_rows(n: int) -> Iterator[tuple[Any, ...]]:
    at = now_iso()
    for i in range(n):
        if kind(i) in ("unchanged", "changed"):
            yield (DIRECTION, key(i), f"0x8D{i:012X}", 4096, md5(i), md5(i), 1, at)


def fill_state(state: StateStore, n: int) -> None:
    with state.tx() as db:
        db.executemany(
            "INSERT INTO verified(direction, key, src_etag, src_size, md5, dst_etag, run_id,"
            " verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            verified_rows(n),
        )


async def generators_only(n: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for side in ("source", "destination"):
        async for _ in SyntheticListing(side, n, side).list():
            pass
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--out", default="plan.json")
    args = p.parse_args(argv)
    n = args.keys
    tmp = Path(tempfile.mkdtemp(prefix="crosswind-bench-plan-"))
    try:
        state = StateStore(tmp / "state")
        t0 = time.perf_counter()
        fill_state(state, n)
        fill_s = time.perf_counter() - t0
        gen_s, gen_cpu = asyncio.run(generators_only(n))

        rss_before = self_peak_rss_mb()
        hwm_reset = reset_self_peak_rss()
        rss_before = self_peak_rss_mb() if hwm_reset else rss_before
        opts = SyncOptions(direction=DIRECTION, dry_run=True)
        run = SyncRun(SyntheticListing("source", n, "source"),  # type: ignore[arg-type]
                      SyntheticListing("destination", n, "destination"),  # type: ignore[arg-type]
                      state, opts)
        load = load_now()
        t0, c0 = time.perf_counter(), time.process_time()
        result = asyncio.run(run.run())
        plan_s, plan_cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = self_peak_rss_mb()
        state.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    s = result.stats
    expected = {k: sum(1 for i in range(n) if kind(i) == k)
                for k in ("unchanged", "new", "changed", "same-hash", "extra")}
    got = {"copy": s.planned.count, "skip": s.skipped.count, "extra": s.extra.count}
    want = {"copy": expected["new"] + expected["changed"],
            "skip": expected["unchanged"] + expected["same-hash"], "extra": expected["extra"]}
    if got != want or result.status != "succeeded":
        raise SystemExit(f"plan is wrong: {result.status} {got} != {want}")
    out = {
        "benchmark": "plan", "keys": n, "machine": machine(), "load": load,
        "plan_wall_s": round(plan_s, 3),
        "keys_per_s": round(n / plan_s),
        "plan_cpu_s": round(plan_cpu, 3),
        "generators_only_s": round(gen_s, 3),
        "generators_only_cpu_s": round(gen_cpu, 3),
        "engine_cpu_s": round(plan_cpu - gen_cpu, 3),
        "peak_rss_mb": round(peak, 1),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_is_run_only": hwm_reset,
        "state_fill_s": round(fill_s, 2),
        "decisions": got, "copy_reasons": dict(s.copy_reasons),
        "targets": {"plan_wall_s": 10, "peak_rss_mb": 200},
    }
    path = write_json(args.out, out)
    print(f"plan over {n:,} synthetic keys (dry-run of the real engine, records from SQLite): "
          f"{plan_s:.2f} s ({n / plan_s:,.0f} keys/s), {plan_cpu:.2f} CPU-s of which the synthetic "
          f"generators alone take {gen_cpu:.2f} CPU-s, "
          f"peak RSS {peak:.0f} MB (RSS before the run {rss_before:.0f} MB); "
          f"decisions {got}; load {load['loadavg_1m']}")
    print(f"targets: < 10 s and < 200 MB -> "
          f"{'met' if plan_s < 10 and peak < 200 else 'NOT met'}; results: {path}")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
