"""The running service, watched the way ``crosswind status`` watches it: its
status document, read from the state store (the service publishes it every
``[replicate] status_interval_s``; no lock is taken, and the HTTP endpoint
need not be on). Each sample keeps what the report needs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crosswind.config import Config
from crosswind.live.report import read_status

StatusReader = Callable[[], dict[str, Any]]


def brief(doc: dict[str, Any], t: float) -> dict[str, Any]:
    """What one status sample keeps: per stream counts and window lag, pending
    keys, DLQ, SLO verdict, workers and connection pools."""
    eps = ((doc.get("requests") or {}).get("endpoints") or {})
    return {
        "t": round(t, 2),
        "running": bool(doc["service"]["running"]),
        "phase": doc.get("phase"),
        "streams": {s["name"]: {"applied": s.get("applied", 0), "failed": s.get("failed", 0),
                                "held": s.get("held", 0), "backlog": s.get("backlog"),
                                "lag_s": s.get("lag_s") or {}}
                    for s in doc.get("streams", [])},
        "pending": (doc.get("pending") or {}).get("keys", 0),
        "dlq_open": int(doc.get("dlq_open") or 0),
        "lag_p99_s": float(doc.get("lag_p99_s") or 0.0),
        "slo": doc.get("slo") or {},
        "workers": doc.get("workers") or {},
        "pools": {ep: {"in_flight": e.get("in_flight"), "pool_size": e.get("pool_size")}
                  for ep, e in eps.items()},
        "errors": len(doc.get("errors") or []),
    }


@dataclass
class Watcher:
    """Samples the service every ``interval_s`` until stopped."""

    read: StatusReader
    interval_s: float = 1.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    read_errors: int = 0

    @classmethod
    def of(cls, cfg: Config) -> Watcher:
        return cls(lambda: read_status(cfg), max(0.5, cfg.replicate.status_interval_s))

    async def sample(self) -> dict[str, Any] | None:
        try:
            doc = await asyncio.to_thread(self.read)
        except Exception:  # a busy state store: the next sample will do
            self.read_errors += 1
            return None
        s = brief(doc, time.monotonic() - self.t0)
        self.samples.append(s)
        return s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
