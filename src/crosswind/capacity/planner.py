"""``crosswind inventory --plan``: the inventory's streaming listing (timed:
it is the source listing's measured cost per name), the probe of both
endpoints, and the model's estimates for a full copy of the inventoried
side to the other side and for its validation.

Memory stays bounded whatever the estate: the listing goes through the
inventory's fixed counters and only the first ``SAMPLE_KEYS`` small keys
are kept (the source objects the probe reads).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crosswind.capacity.model import (
    Endpoint,
    Estimate,
    MiB,
    RequestClass,
    Settings,
    Workload,
    copy_estimate,
    resources,
    validation_estimate,
    workload_from_histogram,
)
from crosswind.capacity.probe import (
    Evidence,
    Kind,
    ProbeOptions,
    probe_copy,
    probe_destination,
    probe_source,
)
from crosswind.inventory import Inventory
from crosswind.stores.base import ObjectStore

SAMPLE_KEYS = 64


def rss_mb() -> float:
    """This process's resident set now (VmRSS), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dask_worker_overhead_mb() -> float:
    """What importing Dask distributed adds to a process (a worker of
    ``--workers`` runs the engine inside one), measured here; 0 when it was
    already imported or is not installed."""
    import sys

    if "distributed" in sys.modules:
        return 0.0
    before = rss_mb()
    try:
        import distributed  # noqa: F401
    except ImportError:
        return 0.0
    return max(0.0, rss_mb() - before)


@dataclass(frozen=True)
class PlanRequest:
    settings: Settings
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    prefix: str = ""
    depth: int = 2


@dataclass
class CapacityPlan:
    inventory: Inventory
    listing_s: float
    source: Endpoint
    destination: Endpoint
    settings: Settings
    evidence: Evidence
    base_rss_mb: float
    dask_overhead_mb: float
    record_s: float | None
    #: the end-to-end copy burst (GET → PUT), None without small source objects
    pair: RequestClass | None = None
    plan_wall_s: float = 0.0

    def copy(self, settings: Settings | None = None) -> Estimate:
        return copy_estimate(self.source, self.destination, self.workload(),
                             settings or self.settings, self.pair)

    def workload(self) -> Workload:
        return workload_from_histogram([(c, b) for c, b in self.inventory.histogram])

    def to_json(self) -> dict[str, Any]:
        work, s = self.workload(), self.settings
        copy = self.copy()
        vals = {m: validation_estimate(self.source, self.destination, work, s, m)
                for m in ("sampled", "full", "deep")}
        res = resources(work, s, base_rss_mb=self.base_rss_mb + self.dask_overhead_mb,
                        copy_objects_per_s=copy.objects_per_s if self.record_s else None,
                        record_seconds=self.record_s)
        return {
            "workers": s.workers, "concurrency": s.concurrency,
            "in_flight": s.in_flight,
            "source": self.source.name, "destination": self.destination.name,
            "copy": _est(copy),
            "validation": {m: _est(v) for m, v in vals.items()},
            "resources": {
                "connections_per_endpoint": res.connections_per_endpoint,
                "connections_per_worker": res.connections_per_worker,
                "memory_per_worker_mb": res.rss_per_worker_mb,
                "memory_total_mb": res.rss_total_mb,
                "memory_basis": (
                    f"{self.base_rss_mb:.0f} MB measured (this process with both stores open"
                    + (f", + {self.dask_overhead_mb:.0f} MB measured for Dask distributed"
                       if self.dask_overhead_mb else "")
                    + f") + {res.held_bytes_per_worker / MiB:.1f} MiB of objects held "
                    f"({s.concurrency} copies of the largest class, capped by "
                    f"memory_budget)"),
                "lambda_concurrency": res.lambda_concurrency,
                "lambda_record_s": round(self.record_s, 4) if self.record_s else None,
            },
            "measured": {
                "listing_s": round(self.listing_s, 3),
                "listing_names_per_s": round(self.inventory.count / self.listing_s, 1)
                if self.listing_s > 0 else None,
                "list_per_name_us": round(self.source.list_per_key_s * 1e6, 3),
                "requests": self.evidence.figures,
                "probe_objects_written": self.evidence.probe_objects_written,
                "probe_objects_removed": self.evidence.probe_objects_removed,
            },
            "plan_wall_s": round(self.plan_wall_s, 3),
        }


def _est(e: Estimate) -> dict[str, Any]:
    return {"duration_s": round(e.seconds, 3), "objects_per_s": round(e.objects_per_s, 1),
            "bytes_per_s": round(e.bytes_per_s, 1), "bottleneck": e.bottleneck,
            "by_resource_s": {k: round(v, 3) for k, v in e.terms.items()}}


async def plan_capacity(source: ObjectStore, source_kind: Kind, destination: ObjectStore,
                        destination_kind: Kind, req: PlanRequest,
                        record_probe: Callable[[Evidence], Awaitable[float]] | None = None,
                        ) -> CapacityPlan:
    """Inventory ``source`` (streaming), probe both stores, and plan."""
    t_start = time.perf_counter()
    base = rss_mb()
    dask_mb = dask_worker_overhead_mb() if req.settings.workers > 1 else 0.0
    inv = Inventory(depth=req.depth)
    small: list[str] = []
    t0 = time.perf_counter()
    async for m in source.list(req.prefix):
        inv.add(m)
        if len(small) < SAMPLE_KEYS and 0 < m.size <= MiB:
            small.append(m.key)
    listing_s = time.perf_counter() - t0
    opts = req.probe
    # three bursts at the source (two without a large object), four at the
    # destination, one of whole copies
    share = opts.seconds / 8
    ev = Evidence()
    largest = (inv.largest[1], inv.largest[0]) if inv.largest[0] else None
    src = await probe_source(source, source_kind, small, largest, 0.0, opts, ev, share)
    dst = await probe_destination(destination, destination_kind, 0.0, opts, ev, share)
    pair = await probe_copy(source, destination, small, opts, ev, share)
    # the listing's cost per name beyond its pages' round trips (the other side's
    # listing is taken to cost the same per name)
    pages = max(1, math.ceil(inv.count / src.page_size))
    per_key = max(0.0, listing_s - pages * src.list_page.latency_s) / max(inv.count, 1)
    src = dataclasses.replace(src, list_per_key_s=per_key)
    dst = dataclasses.replace(dst, list_per_key_s=per_key)
    record_s = await record_probe(ev) if record_probe is not None else None
    plan = CapacityPlan(inv, listing_s, src, dst, req.settings, ev, base, dask_mb, record_s,
                        pair)
    plan.plan_wall_s = time.perf_counter() - t_start
    return plan
