"""One load test against a running ``crosswind replicate``.

The service is measured, not hosted: ``crosswind loadtest`` writes into the
primary while the replication service the engineer runs (``crosswind
replicate`` with the same config, so the same state directory) replicates,
and reads the service's published status from the state store as ``crosswind
status`` does. A service in this process would share its event loop and CPU
with the generator and measure something nobody deploys.

Steps: refuse unless ``[loadtest] allowed = true``; check that ``[keys]``
parses the load's names and that a service runs in ``pre_cutover`` or
``post_cutover`` (the primary is the side the phase says); the size histogram
(a given inventory report, else an inventory of the primary, else the
reference estate's); the schedule, paced open loop while the service is
sampled; then the bounded wait for the replica and the check of every touched
key; the report and its verdict.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crosswind.config import Config
from crosswind.errors import ConfigError, CrosswindError, NameParseError
from crosswind.inventory import take_inventory
from crosswind.keys import KeySpec
from crosswind.live.report import read_status
from crosswind.loadtest import flights
from crosswind.loadtest.load import FlightLoad
from crosswind.loadtest.pacing import PaceStats, run_schedule
from crosswind.loadtest.primary import opened_sides
from crosswind.loadtest.report import judge, stream_lag, utilisation
from crosswind.loadtest.schedule import (
    FLIGHT_EVENT_SIZES,
    ScheduleError,
    SizeHistogram,
    check_load,
    plan,
    planned_count,
)
from crosswind.loadtest.verify import verify_replica
from crosswind.loadtest.watch import Watcher
from crosswind.model import Direction
from crosswind.version import crosswind_version

Say = Callable[[str], None]


class NoService(CrosswindError):
    """No replication service runs for this state directory (or not in a steady phase)."""


@dataclass(frozen=True)
class LoadtestOptions:
    rate: float
    duration_s: float
    mix: Mapping[str, float]
    seed: int = 0
    #: an inventory report (``crosswind inventory --json``) to take sizes from
    histogram: Path | None = None


def require_allowed(cfg: Config, source: str = "the config") -> None:
    if not cfg.loadtest.allowed:
        raise ConfigError(f"{source}: [loadtest] allowed = true is not set; crosswind "
                          "loadtest writes into the primary, so mark only a non-production "
                          "estate")


def key_spec_for_load(cfg: Config) -> KeySpec:
    if cfg.keys is None:
        raise ConfigError("[keys] is required: the load writes each object's row under the "
                          "keys [keys] makes from its name")
    spec = KeySpec.from_config(cfg.keys)
    sample = flights.flight_event("check", 0).key
    try:
        spec.keys(sample)
    except NameParseError as exc:
        raise ConfigError(f"[keys] pattern does not parse the load's flight-event names "
                          f"(e.g. {sample}): {exc}; use pattern = \"{flights.KEY_PATTERN}\""
                          ) from None
    return spec


def settle_timeout(cfg: Config) -> float:
    lt = cfg.loadtest
    # before cutover metadata-row deletes travel only with the row reconcile
    return lt.settle_timeout_s or cfg.replicate.reconcile_interval_s + 120.0


def running_direction(status: dict[str, Any], cfg: Config) -> Direction:
    if not status["service"]["running"]:
        raise NoService(f"no crosswind replicate is running for the state directory "
                        f"{cfg.state_dir} (start it with this config: the load test "
                        "measures the running service)")
    if status["phase"] not in ("pre_cutover", "post_cutover"):
        raise NoService(f"the migration is {status['phase']}: a load test runs only in "
                        "pre_cutover or post_cutover")
    return Direction(status["direction"])


def load_histogram(path: Path) -> SizeHistogram:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--histogram: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--histogram: {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--histogram: {path} is not an inventory report")
    try:
        return SizeHistogram.from_report(doc)
    except ScheduleError as exc:
        raise ConfigError(f"--histogram: {path}: {exc}") from None


async def loadtest(cfg: Config, opts: LoadtestOptions, say: Say = lambda _: None
                   ) -> dict[str, Any]:
    require_allowed(cfg)
    try:
        check_load(opts.rate, opts.duration_s)
    except ScheduleError as exc:
        raise ConfigError(str(exc)) from None
    spec = key_spec_for_load(cfg)
    lt = cfg.loadtest
    given = load_histogram(opts.histogram) if opts.histogram is not None else None
    direction = running_direction(await asyncio.to_thread(read_status, cfg), cfg)
    emulate = cfg.azure.emulator if lt.emulate_events is None else lt.emulate_events
    async with opened_sides(cfg, direction, emulate_events=emulate) as sides:
        primary = sides.primary
        if given is not None:
            sizes, source = given, str(opts.histogram)
        else:
            say(f"sizes: taking an inventory of the primary {primary.objects.name} ...")
            inv = await take_inventory(primary.objects, cfg.sync.prefix)
            if inv.count:
                sizes = SizeHistogram.from_counts([(c, b) for c, b in inv.histogram])
                source = f"inventory of {primary.objects.name} ({inv.count} objects)"
            else:
                sizes, source = FLIGHT_EVENT_SIZES, "the reference flight-event estate " \
                                                    "(the primary has no objects)"
        cap = min(lt.max_object_bytes, primary.objects.capabilities.max_single_put)
        namespace = uuid.uuid4().hex
        load = FlightLoad(primary, spec, namespace)
        watcher = Watcher.of(cfg)
        before = await watcher.sample()
        if before is None or not before["running"]:
            raise NoService("the replication service stopped before the load started")
        stop = asyncio.Event()
        watching = asyncio.create_task(watcher.run(stop))
        stats = PaceStats(opts.rate, opts.duration_s)
        ticker = asyncio.create_task(_tick(stats, watcher, say))
        n = planned_count(opts.rate, opts.duration_s)
        say(f"load: {n} changes at {opts.rate:g}/s for {opts.duration_s:g} s into "
            f"{primary.objects.name} + {primary.rows.name} ({direction.value}), mix "
            + ",".join(f"{k}={v:g}" for k, v in opts.mix.items()))
        try:
            await run_schedule(plan(opts.rate, opts.duration_s, opts.mix, sizes, opts.seed,
                                    max_size=cap), load.do, rate=opts.rate,
                               duration_s=opts.duration_s, max_in_flight=lt.concurrency,
                               stats=stats)
            load_end = watcher.samples[-1] if watcher.samples else before
            t_load = time.monotonic() - watcher.t0
            say(f"load done: {stats.completed} changes, {stats.achieved_rate()}/s, "
                f"{stats.failed} failed; waiting up to {settle_timeout(cfg):g} s for the "
                "replica ...")
            ticker.cancel()
            propagate = direction is Direction.AWS_TO_AZURE or cfg.metadata.propagate_deletes
            v = await verify_replica(sides.replica_objects, sides.replica_rows, load.expected,
                                     timeout_s=settle_timeout(cfg),
                                     propagate_row_deletes=propagate)
        finally:
            ticker.cancel()
            stop.set()
            await watching
        final = await watcher.sample() or watcher.samples[-1]
    run = [s for s in watcher.samples if s["t"] >= before["t"]]
    stayed = all(s["running"] and s["phase"] == before["phase"] for s in run)
    target = before["slo"].get("target_s")
    report: dict[str, Any] = {
        "kind": "loadtest", "crosswind_version": crosswind_version(),
        "run_id": namespace, "phase": before["phase"], "direction": direction.value,
        "primary": {"objects": primary.objects.name, "rows": primary.rows.name,
                    "events_emulated": primary.events is not None},
        "replica": {"objects": sides.replica_objects.name, "rows": sides.replica_rows.name},
        "load": {"rate": opts.rate, "duration_s": opts.duration_s, "mix": dict(opts.mix),
                 "seed": opts.seed, "planned": n,
                 "sizes": {"source": source, "max_object_bytes": cap,
                           "histogram": sizes.as_dict()}},
        "generator": stats.summary(),
        "lag_s": stream_lag(before, run, final),
        "lag_window_s": cfg.replicate.lag_window_s,
        "window_covers_run": final["t"] - before["t"] <= cfg.replicate.lag_window_s,
        "slo": {"target_s": target, "samples": len(run),
                "breached_samples": sum(1 for s in run if (s["slo"] or {}).get("breached")),
                "worst_lag_p99_s": max((s["lag_p99_s"] for s in run), default=0.0)},
        "errors": {"primary_writes": stats.failed, "by": dict(stats.errors),
                   "examples": stats.error_examples[:10],
                   "service_failed": sum(_stream_delta(before, final, "failed")),
                   "service_held": sum(_stream_delta(before, final, "held")),
                   "service_errors_new": max(0, final["errors"] - before["errors"])},
        "dlq": {"before": before["dlq_open"], "after": final["dlq_open"],
                "growth": final["dlq_open"] - before["dlq_open"]},
        "utilisation": utilisation([s for s in run if s["t"] <= t_load]),
        "verification": v.as_dict(),
        # (not running: no fresh heartbeat, e.g. a service too busy to publish its status)
        "service": {"stayed_up": stayed, "samples": len(run),
                    "not_running_samples": sum(1 for s in run if not s["running"]),
                    "other_phase_samples": sum(1 for s in run
                                               if s["phase"] != before["phase"]),
                    "read_errors": watcher.read_errors},
        "timing": {"load_s": round(t_load - before["t"], 1),
                   "settle_s": round(final["t"] - t_load, 1),
                   "pending_at_load_end": load_end["pending"]},
    }
    report["checks"] = judge(report, lt)
    report["passed"] = all(c["ok"] for c in report["checks"].values())
    return report


def _stream_delta(a: dict[str, Any], b: dict[str, Any], field: str) -> list[int]:
    return [int(s.get(field) or 0) - int((a["streams"].get(n) or {}).get(field) or 0)
            for n, s in b["streams"].items()]


async def _tick(stats: PaceStats, watcher: Watcher, say: Say, every_s: float = 10.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        s = watcher.samples[-1] if watcher.samples else None
        lag = "" if s is None else (f"; service lag p99 {s['lag_p99_s']:.1f} s, "
                                    f"{s['pending']} keys pending")
        say(f"  {stats.completed}/{stats.launched} changes done, {stats.failed} failed{lag}")
