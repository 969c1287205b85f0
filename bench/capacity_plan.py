"""Capacity-plan benchmark: `inventory --plan`'s planner over 10,000,000 synthetic keys.

The planner (``capacity.planner.plan_capacity``: the inventory's streaming
listing, the probe of both endpoints, the model) runs on two synthetic
stores: a source whose listing is generated in key order (flight-event names
over 10,000 prefixes, a spread of sizes from 0 B to 700 MiB, as a real
listing yields them, page by page) and a destination that answers every
request after a fixed delay (asyncio.sleep), so the probe measures a known
latency. Reported: the plan's wall time, the part the synthetic generator
alone takes (what a real listing would spend in the network and parser
instead), the peak RSS of this process during the plan (VmHWM, reset before
it), and what the probe measured against the delay it was given.

    python bench/capacity_plan.py [--keys 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from benchlib import load_now, machine, reset_self_peak_rss, self_peak_rss_mb, write_json

from crosswind.capacity.model import Settings
from crosswind.capacity.planner import PlanRequest, plan_capacity
from crosswind.capacity.probe import ProbeOptions
from crosswind.errors import NotFound
from crosswind.model import ObjectMeta, ObjectProps, WriteReceipt
from crosswind.stores.base import Capabilities

WHEN = datetime(2026, 2, 1, tzinfo=UTC)
#: sizes by key number: mostly small flight events, a few large ones
SIZES = (0, 700, 2_048, 4_096, 4_096, 9_000, 40_000, 300_000, 3_000_000, 700 * 1024 * 1024)


def key(i: int) -> str:
    return f"events/{i // 1000:05d}/{i:08d}-LH{i % 97:04d}.json"


def size(i: int) -> int:
    s = SIZES[i % len(SIZES)]
    # the 700 MiB class one key in 10,000, not one in 10
    return 1_024 if s > 100_000_000 and i % 10_000 else s


class _Reader:
    def __init__(self, meta: ObjectMeta, data: bytes) -> None:
        self.meta = meta
        self._data = data

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._data

    async def read_all(self) -> bytes:
        return self._data


class SyntheticStore:
    """Listing generated; every other request answered after ``delay_s``."""

    def __init__(self, name: str, n: int, delay_s: float) -> None:
        self.name = name
        self.n = n
        self.delay_s = delay_s
        self.capabilities = Capabilities(listing_has_props=True, late_metadata=False,
                                         metadata_flavor="free")
        self.held: dict[str, bytes] = {}

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        if prefix:  # the probe's own prefixes: empty, one page
            await asyncio.sleep(self.delay_s)
            return
        for i in range(self.n):
            yield ObjectMeta(key(i), size(i), "0x8D", WHEN)
            if i % 5000 == 0:
                await asyncio.sleep(0)  # a page

    async def head(self, k: str) -> ObjectMeta:
        await asyncio.sleep(self.delay_s)
        if k.startswith(".crosswind-probe/") and k not in self.held:
            raise NotFound(k)
        return ObjectMeta(k, len(self.held.get(k, b"")), "e", WHEN)

    async def get(self, k: str, *, if_match: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> _Reader:
        await asyncio.sleep(self.delay_s)
        data = self.held.get(k)
        if data is None:
            n = byte_range[1] - byte_range[0] if byte_range else 4096
            data = bytes(n)
        return _Reader(ObjectMeta(k, len(data)), data)

    async def put(self, k: str, data: bytes, props: ObjectProps, *, md5: str,
                  **_: Any) -> WriteReceipt:
        await asyncio.sleep(self.delay_s)
        self.held[k] = data
        return WriteReceipt(k, len(data), "e", md5)

    async def delete(self, k: str, *, if_match: str | None = None) -> None:
        self.held.pop(k, None)


def generator_only(n: int) -> tuple[float, float]:
    async def go() -> None:
        async for _ in SyntheticStore("g", n, 0).list():
            pass

    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(go())
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=10_000_000)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--probe-seconds", type=float, default=6.0)
    p.add_argument("--out", default="capacity_plan.json")
    args = p.parse_args(argv)
    n, delay = args.keys, args.delay_ms / 1000
    gen_s, gen_cpu = generator_only(min(n, 1_000_000))
    gen_scale = n / min(n, 1_000_000)

    rss_before = self_peak_rss_mb()
    hwm_reset = reset_self_peak_rss()
    src = SyntheticStore("synthetic-azure", n, delay)
    dst = SyntheticStore("synthetic-s3", 0, delay)
    req = PlanRequest(Settings(workers=4, concurrency=32),
                      ProbeOptions(seconds=args.probe_seconds))
    load = load_now()
    t0, c0 = time.perf_counter(), time.process_time()
    plan = asyncio.run(plan_capacity(src, "azure", dst, "aws", req))  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    body = plan.to_json()
    peak = self_peak_rss_mb()
    if plan.inventory.count != n:
        raise SystemExit(f"the plan counted {plan.inventory.count} keys, not {n}")
    reqs = body["measured"]["requests"]
    put_ms = next(v["latency_alone_ms"] for k, v in reqs.items() if "PUT (small)" in k)
    out = {
        "benchmark": "capacity_plan", "keys": n, "machine": machine(), "load": load,
        "plan_wall_s": round(wall, 2), "plan_cpu_s": round(cpu, 2),
        "listing_s": body["measured"]["listing_s"],
        "probe_s": round(wall - body["measured"]["listing_s"], 2),
        "generator_only_s_est": round(gen_s * gen_scale, 2),
        "generator_only_cpu_s_est": round(gen_cpu * gen_scale, 2),
        "peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss_before, 1),
        "peak_rss_is_run_only": hwm_reset,
        "probe_delay_ms": args.delay_ms, "probe_put_alone_ms": put_ms,
        "plan": body, "targets": {"plan_wall_s": 100, "peak_rss_mb": 300},
    }
    path = write_json(args.out, out)
    c = body["copy"]
    print(f"plan over {n:,} synthetic keys: {wall:.1f} s wall ({cpu:.1f} CPU-s; listing "
          f"{out['listing_s']:.1f} s of which the synthetic generator alone ~"
          f"{out['generator_only_s_est']:.1f} s; probe {out['probe_s']:.1f} s), peak RSS "
          f"{peak:.0f} MB (before {rss_before:.0f} MB); load {load['loadavg_1m']}")
    print(f"probe: {args.delay_ms:g} ms given, PUT alone measured {put_ms} ms; plan for 4 x 32: "
          f"copy {c['duration_s'] / 3600:.2f} h bound by {c['bottleneck']}")
    ok = wall < 100 and peak < 300
    print(f"targets: < 100 s and < 300 MB -> {'met' if ok else 'NOT met'}; results: {path}")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
