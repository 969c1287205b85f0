"""The Azure Function: reverse sync of metadata rows (DocumentDB → Azure Tables)
on a timer, Python v2 programming model.

``app`` is the ``FunctionApp`` (the package's ``function_app.py`` imports it).
Its one function, ``crosswind_reverse_sync``, runs on the CRON schedule in the
app setting ``CROSSWIND_SCHEDULE`` (e.g. ``0 */1 * * * *``, every minute) and
does what ``crosswind sync metadata -d aws-to-azure`` does, through the same
engine (``ReverseSync``):

* continue the change stream from the checkpoint (the resume token in the
  durable ``DocumentLedger``, never local disk), or, without one or when the
  server no longer has the history behind it, open a stream from now and
  reconcile both sides first;
* apply changes in transactions of at most 100 rows of one partition, each
  write conditional on the etag crosswind last wrote (a row changed on Azure is
  a conflict, recorded with both versions, resolved by ``conflict_policy``);
  deletes under the max-delete guard;
* save the checkpoint after each applied batch, so an invocation that dies
  repeats at most its last batch (idempotent) and the next one continues.

An invocation stops when the stream has been quiet for ``[metadata]
idle_timeout_s`` or its time budget is spent (``CROSSWIND_TIME_BUDGET_S`` less
``CROSSWIND_STOP_MARGIN_S``; keep the budget below the host's
``functionTimeout``): it stops between batches, so a batch it started is
applied and checkpointed. The timer trigger runs one invocation at a time
across all instances (its schedule is held with a blob lease), so one writer
follows the stream. A reconcile must fit in one invocation (see the README's
limits). Each invocation logs one JSON line with the CLI's report and the
monitoring catalogue's ``crosswind_rows_total{mode=function,direction,outcome}``
samples (``metrics``; the report's counters as the line's custom dimensions),
and sends those samples to Application Insights' ``customMetrics`` with the
service's Azure Monitor exporter when ``APPLICATIONINSIGHTS_CONNECTION_STRING``
is set, so the generated Azure alert rules and workbook count them too.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from crosswind.config import Config
from crosswind.errors import CrosswindError
from crosswind.metasync.context import MetaOptions, RunContext
from crosswind.metasync.reverse import ReverseSync
from crosswind.metasync.runner import opened_row_stores
from crosswind.metasync.stats import MetaStats
from crosswind.model import Direction
from crosswind.secrets import redact
from crosswind.serverless.ledger import DocumentLedger
from crosswind.serverless.runlog import (
    ROWS_METRIC,
    catalogue_samples,
    counters,
    invocation_report,
)
from crosswind.serverless.settings import Settings, config_from_env, settings_from_env
from crosswind.state import RunStatus
from crosswind.stores.documentdb import RecordChange

log = logging.getLogger("crosswind.serverless")

app = func.FunctionApp()


class _BatchedReverseSync(ReverseSync):
    """``ReverseSync`` whose ledger reads for a batch of changes are two queries
    (``DocumentLedger.prefetch``) instead of two per change: across clouds each
    query is a round trip."""

    async def apply(self, changes: list[RecordChange]) -> None:
        if isinstance(self.ledger, DocumentLedger):
            self.ledger.prefetch((c.doc_id for c in changes),
                                 (c.key for c in changes if c.key is not None))
        await super().apply(changes)


class RowsToAzureMonitor:
    """This worker's ``crosswind_rows_total`` to Application Insights'
    ``customMetrics``, through the service's exporter (``AzureMonitorExporter``):
    the totals of every invocation the worker process ran, observed as a
    cumulative counter and sent as deltas, so each flush sends what the last
    invocation added, and a new worker starts from zero without counting twice."""

    def __init__(self, connection_string: str) -> None:
        from crosswind.observability.azure_monitor import AzureMonitorExporter

        # flushed by each invocation; the period only matters if one never comes
        self.exporter = AzureMonitorExporter(connection_string, interval_s=3600)
        self.totals: dict[tuple[tuple[str, str], ...], float] = {}

    def publish(self, samples: list[dict[str, Any]], timeout_s: float = 10.0) -> bool:
        from crosswind.observability.readers import Sample

        for s in samples:
            key = tuple(s["labels"].items())
            self.totals[key] = self.totals.get(key, 0.0) + float(s["value"])
        self.exporter.update(Sample(ROWS_METRIC, k, v) for k, v in self.totals.items())
        return self.exporter.flush(timeout_s)

    def close(self) -> None:
        self.exporter.shutdown()


_MONITOR: RowsToAzureMonitor | None = None


def publish_rows(samples: list[dict[str, Any]]) -> None:
    """Send the invocation's rows when the app has Application Insights
    (``APPLICATIONINSIGHTS_CONNECTION_STRING``, which the template sets); a failed
    send is logged, never a failed invocation (the log line still has them)."""
    global _MONITOR
    conn = os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "")
    if not conn:
        return
    try:
        if _MONITOR is None:
            _MONITOR = RowsToAzureMonitor(conn)
        sent = _MONITOR.publish(samples)
    except Exception as exc:  # the exporter's own errors, whatever they are
        log.warning("crosswind metrics to Application Insights failed: %s", redact(str(exc)))
        return
    if not sent:
        log.warning("crosswind metrics to Application Insights: not sent within 10 s")


def reset_monitor() -> None:
    """Drop the worker's exporter (tests: another connection string)."""
    global _MONITOR
    if _MONITOR is not None:
        _MONITOR.close()
    _MONITOR = None


async def reverse_sync_once(cfg: Config, settings: Settings, *, ledger: DocumentLedger | None
                            = None, invocation: Mapping[str, Any] | None = None
                            ) -> dict[str, Any]:
    """One timer invocation; returns its report (also logged)."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    deadline = t0 + max(1.0, settings.time_budget_s - settings.stop_margin_s)
    own = ledger is None
    ledger = ledger or DocumentLedger.open(cfg, settings.ledger_collection)
    ledger.new_invocation()
    opts = MetaOptions.from_config(cfg, Direction.AWS_TO_AZURE)
    ctx = RunContext(ledger, None, opts, MetaStats(), guard=opts.one_run_guard())
    status: RunStatus = "succeeded"
    error: str | None = None
    cut = False
    source = destination = ""
    details: dict[str, Any] = {}
    try:
        async with opened_row_stores(cfg, Direction.AWS_TO_AZURE) as (table, docs):
            source, destination = docs.name, table.name
            rev = _BatchedReverseSync(docs, table, ctx)

            def out_of_time() -> bool:
                nonlocal cut
                cut = cut or time.monotonic() >= deadline
                return cut

            try:
                await rev.run(until=out_of_time)
            finally:
                details["change_stream"] = {"resumed_from_token": rev.started_from_token,
                                            "reconciles": rev.reconcile_reasons}
            if ctx.stats.failed:
                status = "failed"
            if rev.delete_blocked:
                status, error = "aborted", rev.delete_blocked
    except CrosswindError as exc:
        status, error = "failed", redact(str(exc))
    inv = {"platform": "azure-functions", **(invocation or {}), "stopped_by_budget": cut,
           "duration_s": round(time.monotonic() - t0, 3)}
    report = invocation_report(ctx, mode="changes", source=source, destination=destination,
                               started=started, status=status, error=error, invocation=inv,
                               details=details)
    if own:
        ledger.close()
    samples = catalogue_samples(report, mode="function", direction=Direction.AWS_TO_AZURE.value)
    publish_rows(samples)
    log.log(logging.WARNING if status != "succeeded" else logging.INFO, "%s",
            redact(json.dumps({"message": "crosswind invocation", "report": report,
                               "metrics": samples}, default=str)),
            extra={"custom_dimensions": counters(report)})
    if status == "failed" and error is not None:
        # The host records the invocation as failed (and retries on the next tick).
        raise CrosswindError(error)
    return report


@app.timer_trigger(schedule="%CROSSWIND_SCHEDULE%", arg_name="timer", run_on_startup=False,
                   use_monitor=True)
async def crosswind_reverse_sync(timer: func.TimerRequest) -> None:
    cfg = config_from_env()
    await reverse_sync_once(cfg, settings_from_env(), invocation={
        "past_due": timer.past_due,
        "schedule_last": (getattr(timer, "schedule_status", None) or {}).get("Last")})
