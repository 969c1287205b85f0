"""One ``crosswind validate``: open the stores, run the selected checks, keep
the run and its findings in the state store, build the report; with
``repair``, re-copy what was found and validate again.

Validation only reads the two sides, so it runs beside a sync without taking
the state lock; ``repair`` writes, and each engine it runs takes the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crosswind.config import Config
from crosswind.errors import ConfigError, CrosswindError
from crosswind.governance.context import Governance
from crosswind.governance.runs import finish_validation, validation_lineage
from crosswind.keys import KeySpec
from crosswind.model import Direction
from crosswind.secrets import redact
from crosswind.state import StateStore
from crosswind.stores.base import ObjectStore, RecordStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.objects import governed, opened_stores, options_from_config
from crosswind.sync.report import sync_report
from crosswind.validate.findings import JOINS, REPAIRABLE, Check, Finding, Kind
from crosswind.validate.history import RUN_KIND, FindingLog
from crosswind.validate.join import check_join
from crosswind.validate.objects import ObjectCheckOptions, Sink, check_objects
from crosswind.validate.repair import repair_objects
from crosswind.validate.report import RunFacts, build_report
from crosswind.validate.rows import check_rows
from crosswind.validate.tally import CheckTally, Targets

ALL_CHECKS = frozenset(Check)


#: ``check_objects`` or another way to run the same check
ObjectsChecker = Callable[[ObjectStore, ObjectStore, ObjectCheckOptions, Sink, CheckTally],
                          Awaitable[CheckTally]]


def available_checks(cfg: Config) -> frozenset[Check]:
    """The checks this config has what they need for."""
    out = {Check.OBJECTS}
    if cfg.azure.table and cfg.aws.documentdb_uri:
        out.add(Check.METADATA)
        if cfg.keys is not None:
            out.update(JOINS)
    return frozenset(out)


def replication_checks(cfg: Config) -> frozenset[Check]:
    """What a cutover, a rollback and the service's scheduled validation check:
    that the replica holds what the primary holds — objects, and rows when
    configured. Not the join: an object without its row on the primary is the
    primary's own (a data-quality finding) that no replication can fix."""
    return frozenset(c for c in available_checks(cfg) if c in (Check.OBJECTS, Check.METADATA))


def require_checks(cfg: Config, checks: frozenset[Check]) -> None:
    missing = checks - available_checks(cfg)
    if missing:
        names = ", ".join(sorted(c.value for c in missing))
        raise ConfigError(
            f"cannot validate {names} with this config: metadata rows need [azure].table and "
            "[aws].documentdb_uri, the join also needs [keys]")


@dataclass(frozen=True)
class ValidateOptions:
    direction: Direction = Direction.AZURE_TO_AWS
    checks: frozenset[Check] = frozenset({Check.OBJECTS})
    #: objects looked at closely; None: the config's sample size
    sample: int | None = None
    #: every object looked at closely
    full: bool = False
    deep: bool = False
    seed: int | None = None
    repair: bool = False
    #: None: the config's targets
    targets: Targets | None = None
    #: what runs the object check (``check_objects``'s signature); the scale-out
    #: coordinator's for ``--workers``
    objects_checker: ObjectsChecker | None = None


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


@dataclass
class _Stores:
    objects: dict[str, ObjectStore] = field(default_factory=dict)  # by side
    rows: dict[str, RecordStore] = field(default_factory=dict)  # by side


class Validation:
    def __init__(self, cfg: Config, opts: ValidateOptions, live: Live | None = None) -> None:
        require_checks(cfg, opts.checks)
        self.cfg = cfg
        self.opts = opts
        self.live = live or Live()
        self.targets = targets_of(cfg, opts)
        self.seed = opts.seed if opts.seed is not None else secrets.randbits(32)
        self.gov = Governance.off()

    def _mode(self) -> dict[str, Any]:
        o = object_options(self.cfg, self.opts, self.seed)
        return {
            "checks": [c.value for c in Check if c in self.opts.checks],
            "sample": "full" if o.sample is None else o.sample,
            "deep": o.deep,
            "seed": self.seed,
            "filter": {"prefix": o.filter.prefix, "include": list(o.filter.include),
                       "exclude": list(o.filter.exclude)},
            "metadata_key_policy": o.policy,
        }

    async def _open(self, stack: contextlib.AsyncExitStack) -> _Stores:
        checks = self.opts.checks
        st = _Stores()
        need_objects = {"azure", "aws"} if Check.OBJECTS in checks else set()
        need_rows = {"azure", "aws"} if Check.METADATA in checks else set()
        if Check.JOIN_AZURE in checks:
            need_objects.add("azure")
            need_rows.add("azure")
        if Check.JOIN_AWS in checks:
            need_objects.add("aws")
            need_rows.add("aws")
        if need_objects:
            azure, aws = await stack.enter_async_context(
                opened_stores(self.cfg, Direction.AZURE_TO_AWS))
            st.objects = {k: v for k, v in (("azure", azure), ("aws", aws)) if k in need_objects}
        if need_rows:
            from crosswind.metasync.runner import opened_row_stores

            # Read only: opened as for a sync into AWS (no write access to the table asked).
            table, docs = await stack.enter_async_context(
                opened_row_stores(self.cfg, Direction.AZURE_TO_AWS))
            st.rows = {k: v for k, v in (("azure", table), ("aws", docs)) if k in need_rows}
        # Every side reachable and the credentials accepted before any work.
        probes: list[ObjectStore | RecordStore] = [*st.objects.values(), *st.rows.values()]
        for store in probes:
            await store.check()
        return st

    async def one_pass(self, state: StateStore, log: FindingLog,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
        direction = self.opts.direction
        src_side, dst_side = direction.source_side, direction.destination_side
        run_id = state.start_run(RUN_KIND, direction.value, False)
        lineage = validation_lineage(self.gov, self.cfg, direction, self.opts.checks)
        started = datetime.now(UTC)
        tallies: dict[Check, CheckTally] = {}
        self.live.tallies = tallies
        source: dict[str, str] = {}
        destination: dict[str, str] = {}
        writer = log.writer(run_id)
        sink: Callable[[Sequence[Finding]], None] = writer.add
        examples = self.cfg.validation.examples
        error: str | None = None
        status = "interrupted"

        def tally(check: Check) -> CheckTally:
            tallies[check] = CheckTally(check, max_examples=examples)
            self.live.phase = check.value
            return tallies[check]

        try:
            async with contextlib.AsyncExitStack() as stack:
                self.live.phase = "connecting"
                st = await self._open(stack)
                if Check.OBJECTS in self.opts.checks:
                    src, dst = st.objects[src_side], st.objects[dst_side]
                    source["objects"], destination["objects"] = src.name, dst.name
                    checker = self.opts.objects_checker or check_objects
                    await checker(src, dst, object_options(self.cfg, self.opts, self.seed),
                                  sink, tally(Check.OBJECTS))
                if Check.METADATA in self.opts.checks:
                    rsrc, rdst = st.rows[src_side], st.rows[dst_side]
                    source["rows"], destination["rows"] = rsrc.name, rdst.name
                    await check_rows(rsrc, rdst, sink, tally(Check.METADATA))
                for check, side in ((Check.JOIN_AZURE, "azure"), (Check.JOIN_AWS, "aws")):
                    if check not in self.opts.checks:
                        continue
                    assert self.cfg.keys is not None
                    s = self.cfg.sync
                    await check_join(check, st.objects[side], st.rows[side],
                                     KeySpec.from_config(self.cfg.keys),
                                     KeyFilter(s.include, s.exclude, s.prefix), sink,
                                     tally(check), state.directory)
            status = "done"
        except CrosswindError as exc:
            error, status = redact(str(exc)), "failed"
            raise
        finally:
            writer.flush()
            facts = RunFacts(run_id, direction.value, started, datetime.now(UTC), source,
                             destination, self._mode(), self.targets,
                             error if status != "interrupted" else "interrupted", extra or {},
                             self.gov.stewardship)
            report = build_report(facts, tallies)
            finish_validation(lineage, self.cfg, direction, report)
            run_status = "succeeded" if report["verdict"] == "pass" else (
                "interrupted" if status == "interrupted" else "failed")
            state.finish_run(run_id, run_status, report)  # type: ignore[arg-type]
            self.live.phase = "done"
        return report

    async def run(self) -> dict[str, Any]:
        state = StateStore(self.cfg.state_dir)
        self.gov = Governance.open(self.cfg, state)
        try:
            if self.opts.repair:
                _probe_lock(self.cfg)  # fail before validating, not after
            log = FindingLog(state)
            report = await self.one_pass(state, log)
            if self.opts.repair and report["verdict"] != "error":
                report = await self._repair_and_recheck(state, log, report)
            log.prune(self.cfg.validation.history_keep)
            return report
        finally:
            self.gov.close()
            state.close()

    # -- repair ------------------------------------------------------------------------
    async def _repair_and_recheck(self, state: StateStore, log: FindingLog,
                                  before: dict[str, Any]) -> dict[str, Any]:
        self.live.phase = "repair"
        run_id = before["run_id"]
        checks = before["checks"]

        def count(check: Check, kinds: frozenset[Kind]) -> int:
            d = checks.get(check.value, {}).get("discrepancies", {})
            return sum(v["count"] for k, v in d.items() if Kind(k) in kinds)

        summary: dict[str, Any] = {"validation_run_id": run_id}
        covered: set[tuple[str, str]] = set()
        if count(Check.OBJECTS, REPAIRABLE):
            summary["objects"] = await self._repair_objects(log, run_id)
            covered.update((Check.OBJECTS.value, k.value) for k in REPAIRABLE)
        rows_kinds = frozenset({Kind.MISSING, Kind.METADATA})
        if count(Check.METADATA, rows_kinds) or count(Check.JOIN_AWS, frozenset(
                {Kind.ORPHAN_OBJECT})):
            summary["metadata"] = await self._repair_rows(log, run_id)
            if "skipped" not in summary["metadata"]:
                covered.update((Check.METADATA.value, k.value) for k in rows_kinds)
                covered.add((Check.JOIN_AWS.value, Kind.ORPHAN_OBJECT.value))
        summary["not_repairable"] = {
            f"{c}/{k}": v["count"] for c, d in checks.items()
            for k, v in d["discrepancies"].items() if (c, k) not in covered}
        summary["copied"] = (summary.get("objects", {}).get("copied", 0)
                             + summary.get("metadata", {}).get("written", 0))
        summary["failed"] = (summary.get("objects", {}).get("failed", 0)
                             + summary.get("metadata", {}).get("failed", 0))
        if "objects" not in summary and "metadata" not in summary:
            before["repair"] = summary  # nothing to repair: this run stands
            state.finish_run(run_id, "succeeded" if before["verdict"] == "pass" else "failed",
                             before)
            return before
        brief = {k: before[k] for k in ("run_id", "verdict", "totals", "discrepancy_counts")}
        return await self.one_pass(state, log, {"repair": summary, "before_repair": brief})

    async def _repair_objects(self, log: FindingLog, run_id: int) -> dict[str, Any]:
        direction = self.opts.direction
        lock = StateStore(self.cfg.state_dir)
        try:
            lock.lock()
            keys = log.keys(run_id, Check.OBJECTS, REPAIRABLE)
            # Re-copies are writes: the same validation before write as a sync.
            options, gov = governed(self.cfg, lock, direction,
                                    options_from_config(self.cfg, direction), lineage=False)
            try:
                async with opened_stores(self.cfg, direction) as (src, dst):
                    result = await repair_objects(src, dst, lock, keys, options)
            finally:
                gov.close()
        finally:
            lock.close()
        rep = sync_report(result)
        return {"sync_run_id": result.run_id, "status": result.status,
                "copied": rep["copied"]["count"], "copied_bytes": rep["copied"]["bytes"],
                "failed": rep["failed"]["count"], "failures": rep["failures"][:20],
                "vanished_at_source": rep["vanished_at_source"]["count"]}

    async def _repair_rows(self, log: FindingLog, run_id: int) -> dict[str, Any]:
        """Rows: exactly the keys this validation found missing or different at
        the destination, and those of objects without their row there, each
        read fresh from the source and written by the metadata engine (its
        per-key repair: no reconcile of the whole table, nothing deleted)."""
        if self.opts.direction is Direction.AWS_TO_AZURE:
            return {"skipped": "after cutover a row that differs on the Azure replica is a "
                               "conflict (CW-4), resolved by policy, not overwritten here"}
        from crosswind.errors import NameParseError
        from crosswind.metasync.context import MetaOptions
        from crosswind.metasync.runner import key_spec, sync_metadata

        def keys() -> Iterator[tuple[str, str]]:
            for label in log.keys(run_id, Check.METADATA, (Kind.MISSING, Kind.METADATA)):
                pk, sep, rk = label.partition("/")  # doc_id: Azure keys hold no "/"
                if sep:
                    yield pk, rk
            spec = None
            for name in log.keys(run_id, Check.JOIN_AWS, (Kind.ORPHAN_OBJECT,)):
                spec = spec or key_spec(self.cfg)
                try:
                    k = spec.keys(name)
                except NameParseError:
                    continue
                yield k.partition_key, k.row_key

        opts = MetaOptions.from_config(self.cfg, Direction.AZURE_TO_AWS, propagate_deletes=False,
                                       max_delete_count=0, max_delete_percent=0.0, full=True)
        result = await sync_metadata(self.cfg, opts, mode="keys", keys=keys())
        r = result.report
        return {"sync_run_id": r["run_id"], "status": r["status"], "written": r["written"],
                "failed": r["failed"], "failures": r["failures"][:20],
                "gone_at_source": result.ctx.stats.missing_rows}


def _probe_lock(cfg: Config) -> None:
    probe = StateStore(cfg.state_dir)
    try:
        probe.lock()
    finally:
        probe.close()


async def validate(cfg: Config, opts: ValidateOptions, live: Live | None = None) -> dict[str, Any]:
    """Run one validation (and repair, if asked) and return its JSON report."""
    return await Validation(cfg, opts, live).run()


def run_sync(cfg: Config, opts: ValidateOptions) -> dict[str, Any]:
    """For scripts and benchmarks: ``validate`` with its own event loop."""
    return asyncio.run(validate(cfg, opts))
