"""Capacity planning: what a side holds, from one streaming listing.

Memory is bounded: a fixed histogram and a prefix counter capped at
``MAX_PREFIXES`` distinct prefixes (the report says when the cap was hit).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crosswind.model import ObjectMeta
from crosswind.stores.base import ObjectStore
from crosswind.version import crosswind_version

KiB = 1024
MAX_PREFIXES = 100_000
# Upper bounds (exclusive) of the size classes; the last class is open-ended.
SIZE_BOUNDS = [1, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, KiB**2, 4 * KiB**2,
               16 * KiB**2, 64 * KiB**2, 256 * KiB**2, KiB**3, 4 * KiB**3]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _bucket_label(i: int) -> str:
    if i == 0:
        return "0 B"
    lo = SIZE_BOUNDS[i - 1]
    if i == len(SIZE_BOUNDS):
        return f">= {human_bytes(lo)}"
    return f"{human_bytes(lo)} - {human_bytes(SIZE_BOUNDS[i])}"


@dataclass
class Inventory:
    depth: int = 2
    count: int = 0
    bytes: int = 0
    largest: tuple[int, str] = (0, "")
    oldest: datetime | None = None
    newest: datetime | None = None
    histogram: list[list[int]] = field(
        default_factory=lambda: [[0, 0] for _ in range(len(SIZE_BOUNDS) + 1)]
    )
    prefixes: Counter[str] = field(default_factory=Counter)
    prefix_bytes: Counter[str] = field(default_factory=Counter)
    prefixes_truncated: bool = False

    def add(self, m: ObjectMeta) -> None:
        self.count += 1
        self.bytes += m.size
        if m.size > self.largest[0]:
            self.largest = (m.size, m.key)
        b = bisect.bisect_right(SIZE_BOUNDS, m.size)
        self.histogram[b][0] += 1
        self.histogram[b][1] += m.size
        if m.last_modified is not None:
            if self.oldest is None or m.last_modified < self.oldest:
                self.oldest = m.last_modified
            if self.newest is None or m.last_modified > self.newest:
                self.newest = m.last_modified
        parts = m.key.split("/")
        prefix = "/".join(parts[: self.depth]) + "/" if len(parts) > self.depth else "(top level)"
        if prefix in self.prefixes or len(self.prefixes) < MAX_PREFIXES:
            self.prefixes[prefix] += 1
            self.prefix_bytes[prefix] += m.size
        else:
            self.prefixes_truncated = True

    def estimate_seconds(self, objects_per_s: float, bytes_per_s: float) -> float:
        """Time to copy everything when limited by the slower of the two rates."""
        return max(self.count / max(objects_per_s, 1e-9), self.bytes / max(bytes_per_s, 1e-9))

    def report(self, store: str, rates: tuple[float, float, str], top: int = 20) -> dict[str, Any]:
        ops, bps, basis = rates
        return {
            "kind": "inventory",
            "crosswind_version": crosswind_version(),
            "store": store,
            "objects": self.count,
            "bytes": self.bytes,
            "bytes_human": human_bytes(self.bytes),
            "mean_size": round(self.bytes / self.count, 1) if self.count else 0,
            "largest": {"key": self.largest[1], "size": self.largest[0]},
            "oldest_modified": self.oldest.isoformat() if self.oldest else None,
            "newest_modified": self.newest.isoformat() if self.newest else None,
            "size_histogram": [
                {"range": _bucket_label(i), "objects": c, "bytes": b}
                for i, (c, b) in enumerate(self.histogram) if c
            ],
            "top_prefixes": [
                {"prefix": p, "objects": c, "bytes": self.prefix_bytes[p]}
                for p, c in self.prefixes.most_common(top)
            ],
            "prefix_depth": self.depth,
            "prefixes_truncated": self.prefixes_truncated,
            "estimate": {
                "objects_per_s": round(ops, 1),
                "bytes_per_s": round(bps, 1),
                "basis": basis,
                "duration_s": round(self.estimate_seconds(ops, bps), 1),
            },
        }


async def take_inventory(store: ObjectStore, prefix: str = "", depth: int = 2) -> Inventory:
    inv = Inventory(depth=depth)
    async for m in store.list(prefix):
        inv.add(m)
    return inv
