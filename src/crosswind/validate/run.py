"""One ``crosswind validate``: open the stores, run the selected checks, keep
the run and its findings in the state store, render the report; with
``repair``, re-copy what was found and validate again.

Validation only reads the two sides, so it runs beside a sync without taking
the state lock; ``repair`` writes and takes it.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crosswind.config import Config
from crosswind.errors import CrosswindError
from crosswind.model import Direction
from crosswind.secrets import redact
from crosswind.state import StateStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.objects import opened_stores, options_from_config, preflight
from crosswind.sync.report import sync_report
from crosswind.validate.findings import REPAIRABLE, Check, Kind
from crosswind.validate.history import RUN_KIND, FindingLog
from crosswind.validate.objects import ObjectCheckOptions, check_objects
from crosswind.validate.repair import repair_objects
from crosswind.validate.report import RunFacts, build_report
from crosswind.validate.tally import CheckTally, Targets


@dataclass(frozen=True)
class ValidateOptions:
    direction: Direction = Direction.AZURE_TO_AWS
    checks: frozenset[Check] = frozenset({Check.OBJECTS})
    #: objects looked at closely; None for all (``--full``); default from config
    sample: int | None = None
    full: bool = False
    deep: bool = False
    seed: int | None = None
    repair: bool = False
    #: None: the config's targets
    targets: Targets | None = None


@dataclass
class Live:
    """What a progress display reads while a run goes on."""

    phase: str = "starting"
    tallies: dict[Check, CheckTally] = field(default_factory=dict)


def targets_of(cfg: Config, opts: ValidateOptions) -> Targets:
    v = cfg.validation
    return opts.targets or Targets(v.completeness_target, v.pass_rate_target)


def object_options(cfg: Config, opts: ValidateOptions, seed: int) -> ObjectCheckOptions:
    s, v = cfg.sync, cfg.validation
    return ObjectCheckOptions(
        filter=KeyFilter(s.include, s.exclude, s.prefix),
        sample=None if opts.full else (v.sample_size if opts.sample is None else opts.sample),
        deep=opts.deep, policy=s.metadata_key_policy, concurrency=v.concurrency, seed=seed,
        max_examples=v.examples, memory_budget=s.memory_budget,
    )


class Validation:
    def __init__(self, cfg: Config, opts: ValidateOptions, live: Live | None = None) -> None:
        self.cfg = cfg
        self.opts = opts
        self.live = live or Live()
        self.targets = targets_of(cfg, opts)
        self.seed = opts.seed if opts.seed is not None else secrets.randbits(32)

    def _mode(self) -> dict[str, Any]:
        o = object_options(self.cfg, self.opts, self.seed)
        return {
            "checks": sorted(c.value for c in self.opts.checks),
            "sample": "full" if o.sample is None else o.sample,
            "deep": o.deep,
            "seed": self.seed,
            "filter": {"prefix": o.filter.prefix, "include": list(o.filter.include),
                       "exclude": list(o.filter.exclude)},
            "metadata_key_policy": o.policy,
        }

    async def one_pass(self, state: StateStore, log: FindingLog,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
        direction = self.opts.direction
        run_id = state.start_run(RUN_KIND, direction.value, False)
        started = datetime.now(UTC)
        tallies: dict[Check, CheckTally] = {}
        self.live.tallies = tallies
        source: dict[str, str] = {}
        destination: dict[str, str] = {}
        writer = log.writer(run_id)
        error: str | None = None
        status = "interrupted"
        try:
            if Check.OBJECTS in self.opts.checks:
                self.live.phase = "objects"
                async with opened_stores(self.cfg, direction) as (src, dst):
                    source["objects"], destination["objects"] = src.name, dst.name
                    await preflight(src, dst)
                    t = CheckTally(Check.OBJECTS, max_examples=self.cfg.validation.examples)
                    tallies[Check.OBJECTS] = t
                    await check_objects(src, dst, object_options(self.cfg, self.opts, self.seed),
                                        writer.add, t)
            status = "done"
        except CrosswindError as exc:
            error, status = redact(str(exc)), "failed"
            raise
        finally:
            writer.flush()
            facts = RunFacts(run_id, direction.value, started, datetime.now(UTC), source,
                             destination, self._mode(), self.targets,
                             error if status != "interrupted" else "interrupted", extra or {})
            report = build_report(facts, tallies)
            run_status = "succeeded" if report["verdict"] == "pass" else (
                "interrupted" if status == "interrupted" else "failed")
            state.finish_run(run_id, run_status, report)  # type: ignore[arg-type]
            self.live.phase = "done"
        return report

    async def run(self) -> dict[str, Any]:
        state = StateStore(self.cfg.state_dir)
        try:
            if self.opts.repair:
                state.lock()  # repair writes: one writer at a time, checked up front
            log = FindingLog(state)
            report = await self.one_pass(state, log)
            if self.opts.repair:
                report = await self._repair_and_recheck(state, log, report)
            log.prune(self.cfg.validation.history_keep)
            return report
        finally:
            state.close()

    async def _repair_and_recheck(self, state: StateStore, log: FindingLog,
                                  before: dict[str, Any]) -> dict[str, Any]:
        counts = before["discrepancy_counts"]
        to_fix = sum(counts.get(k.value, 0) for k in REPAIRABLE)
        not_repaired = {k: n for k, n in counts.items() if Kind(k) not in REPAIRABLE}
        summary: dict[str, Any] = {"validation_run_id": before["run_id"], "planned": to_fix,
                                   "not_repairable": not_repaired}
        if Check.OBJECTS not in self.opts.checks or to_fix == 0:
            summary.update(copied=0, failed=0, sync_run_id=None)
            before["repair"] = summary
            state.finish_run(before["run_id"], "succeeded" if before["verdict"] == "pass"
                             else "failed", before)
            return before
        self.live.phase = "repair"
        direction = self.opts.direction
        keys = log.keys(before["run_id"], Check.OBJECTS, REPAIRABLE)
        async with opened_stores(self.cfg, direction) as (src, dst):
            result = await repair_objects(src, dst, state, keys,
                                          options_from_config(self.cfg, direction))
        rep = sync_report(result)
        summary.update(sync_run_id=result.run_id, status=result.status,
                       copied=rep["copied"]["count"], copied_bytes=rep["copied"]["bytes"],
                       failed=rep["failed"]["count"], failures=rep["failures"][:20],
                       vanished_at_source=rep["vanished_at_source"]["count"])
        brief = {k: before[k] for k in ("run_id", "verdict", "totals", "discrepancy_counts")}
        return await self.one_pass(state, log, {"repair": summary, "before_repair": brief})


async def validate(cfg: Config, opts: ValidateOptions, live: Live | None = None) -> dict[str, Any]:
    """Run one validation (and repair, if asked) and return its JSON report."""
    return await Validation(cfg, opts, live).run()


def run_sync(cfg: Config, opts: ValidateOptions) -> dict[str, Any]:
    """For scripts and benchmarks: ``validate`` with its own event loop."""
    return asyncio.run(validate(cfg, opts))
