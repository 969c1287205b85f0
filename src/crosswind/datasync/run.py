"""One ``sync objects`` with DataSync as the mover, end to end.

1. the plan (pure): our options as DataSync requests; a filter DataSync cannot
   say exactly stops the run here, before any call;
2. the SAS reference is resolved, the locations and the task are found by tag
   and updated (or created);
3. an execution is started (or the one already running is followed) and
   followed to its end, with progress and crosswind's max-delete guard on
   DataSync's own estimate of deletes;
4. the task report is read from S3; every object DataSync verified is
   checked by crosswind too (HEAD both sides: same size, same content MD5) and
   only then recorded as a verified copy, as the crosswind engine records its own;
5. with the state lock released: the metadata ingestion (object names → rows)
   of the recorded copies, then crosswind's validation of the direction.

The run and its report are in the state store like any ``sync objects`` run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

from crosswind.config import Config
from crosswind.datasync.client import calling, opened_clients
from crosswind.datasync.execution import Progress, follow, start
from crosswind.datasync.plan import TaskPlan, bucket_arn_of, default_name, map_filter, task_options
from crosswind.datasync.resources import ensure
from crosswind.datasync.taskreport import ReportTally
from crosswind.deleteguard import DeleteGuard
from crosswind.errors import (
    RUN_STOPPED_EXIT,
    ConfigError,
    CrosswindError,
    DeleteLimitExceeded,
)
from crosswind.governance.context import Governance
from crosswind.governance.runs import objects_lineage
from crosswind.model import Direction, ObjectMeta
from crosswind.observability.stats import SyncStats
from crosswind.secrets import redact, resolve
from crosswind.state import RunStatus, StateStore, VerifiedCopy
from crosswind.stores.base import ObjectStore
from crosswind.sync.plan import mtime_of
from crosswind.sync.report import sync_report
from crosswind.sync.result import SyncOptions, SyncResult

log = logging.getLogger("crosswind.datasync")

ProgressFn = Callable[[Progress], None]


def container_url_of(cfg: Config) -> str:
    assert cfg.datasync is not None
    if cfg.datasync.container_url:
        return cfg.datasync.container_url.rstrip("/")
    if cfg.azure.account_url:
        return f"{cfg.azure.account_url.rstrip('/')}/{cfg.azure.container}"
    from crosswind.stores.azure_common import resolve_auth

    # The connection string is a secret; only its endpoint leaves here.
    return f"{resolve_auth(cfg.azure).blob_url}/{cfg.azure.container}"


def plan_of(cfg: Config, opts: SyncOptions, container_url: str) -> TaskPlan:
    """The DataSync requests for ``cfg`` and this run's options (pure)."""
    ds = cfg.datasync
    if ds is None:
        raise ConfigError('[sync] engine = "datasync" needs a [datasync] section')
    return TaskPlan(
        name=ds.name or default_name(cfg.azure.container, cfg.aws.bucket),
        container_url=container_url,
        agent_arns=ds.agent_arns,
        bucket_arn=ds.bucket_arn or bucket_arn_of(cfg.aws.bucket),
        bucket_access_role_arn=ds.bucket_access_role_arn,
        s3_storage_class=ds.s3_storage_class,
        options=task_options(delete=opts.delete, bytes_per_second=ds.bytes_per_second,
                             logs=ds.cloudwatch_log_group_arn is not None),
        filters=map_filter(opts.filter),
        report_bucket_arn=ds.report_bucket_arn,
        report_prefix=ds.report_prefix,
        report_role_arn=ds.report_role_arn or ds.bucket_access_role_arn,
        cloudwatch_log_group_arn=ds.cloudwatch_log_group_arn,
    )


class KeySpool:
    """Keys (with sizes) on disk, not in memory: a task report can list millions."""

    def __init__(self) -> None:
        # Closed by close(): the spool outlives the function that fills it.
        self._f: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, key: str, size: int) -> None:
        self._f.write(json.dumps([key, size]) + "\n")
        self.count += 1

    def __iter__(self) -> Iterator[tuple[str, int]]:
        self._f.flush()
        self._f.seek(0)
        for line in self._f:
            key, size = json.loads(line)
            yield str(key), int(size)
        self._f.seek(0, 2)

    def close(self) -> None:
        self._f.close()


@dataclass
class DataSyncOutcome:
    """The run's ``SyncResult`` (the report every sync has) and what only a
    DataSync run has (``details``: resources, execution, task report, checks)."""

    result: SyncResult
    details: dict[str, Any] = field(default_factory=dict)
    confirmed: KeySpool | None = None

    def report(self) -> dict[str, Any]:
        return {**sync_report(self.result), **self.details}


async def _report_documents(s3: Any, bucket: str, prefix: str, execution_id: str
                            ) -> AsyncIterator[dict[str, Any]]:
    """The task report's JSON documents of this execution under ``prefix``
    (DataSync names its report objects after the task and execution ids)."""
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if execution_id not in key or not key.endswith(".json"):
                continue
            r = await s3.get_object(Bucket=bucket, Key=key)
            async with r["Body"] as body:
                raw = await body.read()
            try:
                doc = json.loads(raw)
            except ValueError:
                log.warning("task report object %s is not JSON; skipped", key)
                continue
            if isinstance(doc, dict):
                yield doc


async def read_task_report(ds: Any, s3: Any, plan: TaskPlan, execution_arn: str,
                           final: dict[str, Any], wait_s: float, poll_s: float,
                           on_verified: Callable[[str, int], None]) -> ReportTally:
    """Wait for DataSync to say the report is written (``ReportResult``), then
    fold its documents in."""
    execution_id = execution_arn.rsplit("/", 1)[-1]
    deadline = time.monotonic() + wait_s
    d = final
    while (d.get("ReportResult") or {}).get("Status") == "PENDING" \
            and time.monotonic() < deadline:
        await asyncio.sleep(min(poll_s, 5.0))
        with calling(f"DataSync DescribeTaskExecution {execution_arn}"):
            d = await ds.describe_task_execution(TaskExecutionArn=execution_arn)
    rr = d.get("ReportResult") or {}
    if rr.get("Status") == "ERROR":
        raise CrosswindError(redact(f"DataSync could not write the task report: "
                                    f"{rr.get('ErrorCode', '')} {rr.get('ErrorDetail', '')}"))
    bucket = plan.report_bucket_arn.rsplit(":", 1)[-1]
    while True:
        tally = ReportTally()
        with calling(f"S3 task report s3://{bucket}/{plan.report_prefix}"):
            async for doc in _report_documents(s3, bucket, plan.report_prefix, execution_id):
                tally.add(doc, on_verified, execution_id)
        if tally.documents or time.monotonic() >= deadline:
            return tally
        await asyncio.sleep(min(poll_s, 5.0))


async def confirm_copies(src: ObjectStore, dst: ObjectStore, state: StateStore,
                         direction: str, run_id: int, verified: KeySpool,
                         concurrency: int) -> tuple[KeySpool, list[dict[str, str]]]:
    """Objects DataSync verified that crosswind's own HEADs confirm (same size,
    same content MD5 on both sides), recorded as verified copies; and those it
    could not confirm (no MD5 on a side, or a difference), with the reason."""
    confirmed = KeySpool()
    unconfirmed: list[dict[str, str]] = []
    sem = asyncio.Semaphore(concurrency)
    batch: list[VerifiedCopy] = []

    async def one(key: str, size: int) -> None:
        async with sem:
            read_at = time.time()
            try:
                s, d = await asyncio.gather(src.head(key), dst.head(key))
            except CrosswindError as exc:
                unconfirmed.append({"key": key, "reason": redact(str(exc))[:300]})
                return
        why = _differs(s, d)
        if why:
            unconfirmed.append({"key": key, "reason": why})
            return
        assert s.content_md5 is not None
        batch.append(VerifiedCopy(key, s.etag, s.size, s.content_md5, d.etag, mtime_of(s),
                                  read_at))
        confirmed.add(key, size)

    pending: list[asyncio.Task[None]] = []
    for key, size in verified:
        pending.append(asyncio.create_task(one(key, size)))
        if len(pending) >= concurrency * 4:
            await asyncio.gather(*pending)
            pending = []
            state.record_verified_many(direction, batch, run_id)
            batch = []
    await asyncio.gather(*pending)
    state.record_verified_many(direction, batch, run_id)
    return confirmed, unconfirmed


def _differs(s: ObjectMeta, d: ObjectMeta) -> str | None:
    if s.size != d.size:
        return f"size {s.size} at the source, {d.size} at the destination"
    if s.content_md5 is None or d.content_md5 is None:
        side = "source" if s.content_md5 is None else "destination"
        return f"no content MD5 at the {side} to compare (validation --deep reads the bytes)"
    if s.content_md5 != d.content_md5:
        return "content MD5 differs"
    return None


def _guard(opts: SyncOptions) -> Callable[[Progress], None] | None:
    if not opts.delete:
        return None
    guard = DeleteGuard(opts.max_delete_count, opts.max_delete_percent)

    def check(p: Progress) -> None:
        if p.estimated_deletes:
            guard.require(p.estimated_deletes, p.files_at_destination,
                          f"DataSync estimates {p.estimated_deletes} deletes of the "
                          f"{p.files_at_destination} objects it listed at the destination")
    return check


async def run_datasync(cfg: Config, direction: Direction, opts: SyncOptions,
                       stats: SyncStats | None = None, on_progress: ProgressFn | None = None
                       ) -> DataSyncOutcome:
    """Steps 1-4 under the state lock (see the module docstring)."""
    if direction is not Direction.AZURE_TO_AWS:
        raise ConfigError('[sync] engine = "datasync" moves objects azure-to-aws only; '
                          f"{direction.value} runs with engine = \"crosswind\"")
    assert cfg.datasync is not None
    stats = stats or SyncStats()
    plan = plan_of(cfg, opts, container_url_of(cfg))
    details: dict[str, Any] = {"engine": "datasync", "datasync": {
        "task_name": plan.name, "options": plan.options,
        "includes": list(plan.filters.includes), "excludes": list(plan.filters.excludes),
        "report_to": f"{plan.report_bucket_arn}/{plan.report_prefix}"}}
    dsd = details["datasync"]
    state = StateStore(cfg.state_dir)
    started = datetime.now(UTC)
    status: RunStatus = "succeeded"
    error: str | None = None
    exit_code = 0
    failures: list[dict[str, str]] = []
    confirmed: KeySpool | None = None
    run_id = 0
    gov: Governance | None = None
    try:
        state.lock()
        # Stewardship on the report and a lineage run, as for the crosswind engine.
        # No schema gate: DataSync writes the objects; the validation after checks.
        gov = Governance.open(cfg, state)
        opts = replace(opts, governance=gov)
        lineage = objects_lineage(gov, cfg, direction, dry_run=opts.dry_run)
        run_id = state.start_run("objects", direction.value, opts.dry_run)
        try:
            if opts.dry_run:
                # DataSync has no dry run: show what would be asked, change nothing.
                dsd["would_request"] = {"CreateLocationAzureBlob": plan.azure_location(),
                                        "CreateLocationS3": plan.s3_location(),
                                        "CreateTask": plan.create_task("<source>",
                                                                       "<destination>")}
            else:
                confirmed, failures = await _move(cfg, direction, opts, plan, state, run_id,
                                                  stats, dsd, on_progress)
                if stats.failed.count:
                    status, exit_code = "failed", 1
        except DeleteLimitExceeded as exc:
            status, error, exit_code = "aborted", str(exc), exc.exit_code
        except CrosswindError as exc:
            status, error = "failed", redact(str(exc))
            exit_code = exc.exit_code if exc.exit_code != 1 else RUN_STOPPED_EXIT
        except asyncio.CancelledError:
            status, error, exit_code = "interrupted", "interrupted (the DataSync execution "\
                "goes on; the next run follows it)", 130
            raise
        finally:
            result = SyncResult(run_id, status, stats, f"datasync:{plan.container_url}",
                                f"datasync:{plan.bucket_arn}", opts, started, datetime.now(UTC),
                                failures, error, exit_code=exit_code)
            outcome = DataSyncOutcome(result, details, confirmed)
            state.finish_run(run_id, status, outcome.report())
            lineage.finish_sync(status, error, run_id, rows=stats.copied.count,
                                bytes=stats.copied.bytes)
    finally:
        if gov is not None:
            gov.close()
        state.close()
    return outcome


async def _move(cfg: Config, direction: Direction, opts: SyncOptions, plan: TaskPlan,
                state: StateStore, run_id: int, stats: SyncStats, dsd: dict[str, Any],
                on_progress: ProgressFn | None) -> tuple[KeySpool, list[dict[str, str]]]:
    assert cfg.datasync is not None
    ds_cfg = cfg.datasync
    failures: list[dict[str, str]] = []

    def progress(p: Progress) -> None:
        stats.planned.count, stats.planned.bytes = p.estimated_files, p.estimated_bytes
        stats.bytes_moved = p.bytes_transferred
        stats.copied.count, stats.copied.bytes = p.files_transferred, p.bytes_transferred
        stats.listing_done = p.status not in ("QUEUED", "LAUNCHING", "PREPARING")
        dsd["progress"] = p.__dict__
        if on_progress is not None:
            on_progress(p)

    async with opened_clients(cfg) as (ds, s3):
        token = resolve(ds_cfg.sas_token, where="[datasync].sas_token",
                        allow_literal=cfg.azure.emulator).get_secret_value()
        res = await ensure(ds, plan, token)
        del token
        dsd.update({"source_location": res.source_arn,
                    "destination_location": res.destination_arn, "task": res.task_arn,
                    "actions": res.actions})
        execution = await start(ds, res.task_arn)
        dsd["execution"] = execution
        final = await follow(ds, execution, poll_s=ds_cfg.poll_interval_s,
                             timeout_s=ds_cfg.timeout_s, on_progress=progress,
                             delete_guard=_guard(opts))
        verified = KeySpool()
        try:
            tally = await read_task_report(ds, s3, plan, execution, final,
                                           ds_cfg.report_wait_s, ds_cfg.poll_interval_s,
                                           verified.add)
            dsd["task_report"] = tally.as_dict()
            if not tally.documents:
                raise CrosswindError(
                    f"no task report of {execution} under {plan.report_bucket_arn}/"
                    f"{plan.report_prefix} after {ds_cfg.report_wait_s:.0f} s "
                    "([datasync] report_wait_s): what was copied is unknown")
            stats.copied.count = tally.ok["Transferred"].count
            stats.copied.bytes = tally.ok["Transferred"].bytes
            stats.deleted.count = tally.ok["Deleted"].count
            stats.skipped.count = tally.ok["Skipped"].count
            stats.skipped.bytes = tally.ok["Skipped"].bytes
            stats.failed.count = tally.failed_count
            stats.failed.bytes = sum(t.bytes for t in tally.failed.values())
            listed = final.get("FilesListed") or {}
            stats.listed_source = int(listed.get("AtSource") or 0)
            stats.listed_destination = int(listed.get("AtDestinationForDelete") or 0)
            failures.extend(tally.failures)
            for f in tally.failures:
                state.record_failure(run_id, f["key"], f["kind"], f["reason"])
            from crosswind.sync.objects import opened_stores

            async with opened_stores(cfg, direction) as (src, dst):
                confirmed, unconfirmed = await confirm_copies(
                    src, dst, state, direction.value, run_id, verified, opts.concurrency)
        finally:
            verified.close()
        dsd["crosswind_check"] = {"confirmed": confirmed.count,
                                  "unconfirmed": len(unconfirmed),
                                  "unconfirmed_examples": unconfirmed[:20]}
    return confirmed, failures


async def sync_with_datasync(cfg: Config, direction: Direction, opts: SyncOptions,
                             stats: SyncStats | None = None,
                             on_progress: ProgressFn | None = None) -> DataSyncOutcome:
    """The whole run: DataSync's part, then (without the state lock) crosswind's
    validation and the metadata ingestion of what was confirmed."""
    outcome = await run_datasync(cfg, direction, opts, stats, on_progress)
    try:
        # Only after an execution that ran to its report (some objects may have
        # failed in it: the confirmed ones still get their rows, and are validated).
        if outcome.confirmed is None or opts.dry_run:
            return outcome
        # Rows first: the validation checks them too when rows are configured.
        if outcome.confirmed is not None:
            outcome.details["metadata_ingestion"] = await _ingest(cfg, outcome.confirmed)
        outcome.details["validation"] = await _validate(cfg, direction, opts)
        v = outcome.details["validation"]
        if v.get("verdict") != "pass":
            outcome.result.status, outcome.result.exit_code = "failed", 1
            outcome.result.error = outcome.result.error or (
                f"crosswind's validation after DataSync: {v.get('verdict')} "
                f"(validation run {v.get('run_id')})")
        m = outcome.details.get("metadata_ingestion") or {}
        if m.get("status") not in (None, "skipped", "succeeded"):
            outcome.result.status, outcome.result.exit_code = "failed", 1
            outcome.result.error = outcome.result.error or (
                f"metadata ingestion after DataSync: {m.get('status')} (run {m.get('run_id')})")
        state = StateStore(cfg.state_dir)
        try:
            state.finish_run(outcome.result.run_id, outcome.result.status,  # type: ignore[arg-type]
                             outcome.report())
        finally:
            state.close()
    finally:
        if outcome.confirmed is not None:
            outcome.confirmed.close()
    return outcome


async def _validate(cfg: Config, direction: Direction, opts: SyncOptions) -> dict[str, Any]:
    from crosswind.validate.run import ValidateOptions, replication_checks, validate

    # The keys this run was asked to sync (--prefix/--include/--exclude), not the
    # config's defaults: a narrower run must not fail on keys it left alone.
    f = opts.filter
    cfg = cfg.model_copy(update={"sync": cfg.sync.model_copy(update={
        "prefix": f.prefix, "include": f.include, "exclude": f.exclude})})
    try:
        r = await validate(cfg, ValidateOptions(direction=direction,
                                                checks=replication_checks(cfg)))
    except CrosswindError as exc:
        return {"run_id": None, "verdict": "error", "error": redact(str(exc))}
    return {"run_id": r.get("run_id"), "verdict": r.get("verdict"), "error": r.get("error"),
            "totals": r.get("totals"), "discrepancy_counts": r.get("discrepancy_counts")}


async def _ingest(cfg: Config, confirmed: KeySpool) -> dict[str, Any]:
    if cfg.keys is None or not cfg.azure.table or not cfg.aws.documentdb_uri:
        return {"status": "skipped",
                "reason": "needs [keys], [azure].table and [aws].documentdb_uri"}
    from crosswind.metasync.context import MetaOptions
    from crosswind.metasync.runner import sync_metadata

    r = await sync_metadata(cfg, MetaOptions.from_config(cfg, Direction.AZURE_TO_AWS),
                            mode="objects", names=(k for k, _ in confirmed))
    rep = r.report or {}
    return {"run_id": r.run_id, "status": r.status, "error": r.error,
            "written": rep.get("written"), "failed": rep.get("failed")}
