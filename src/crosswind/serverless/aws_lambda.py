"""The AWS Lambda handler: metadata ingestion from S3 event notifications on SQS.

``handler(event, context)`` takes an SQS batch (event source mapping with
``ReportBatchItemFailures``). Per record, the body is parsed as the replication
service parses its SQS messages (``live.events.parse_s3_message``: direct, in
SNS, or from EventBridge; keys URL-decoded), and the objects it names go
through ``ForwardSync.objects``, the code of ``crosswind sync metadata --mode
objects``: object name → PartitionKey/RowKey (``[keys]``) → the Azure row →
the DocumentDB document, upserted never over a newer version. Powertools'
``BatchProcessor`` turns the records that raised into ``batchItemFailures``.

What happens to a record:

* applied (or already in step, or a newer version was there): acknowledged;
* poison (a body no parser can read), or an item the engine refused for good
  (a name that does not fit ``[keys]``, a row that cannot map: oversize,
  unmappable): sent to ``CROSSWIND_DLQ_URL`` with its reason in message
  attributes (``crosswind-reason``, ``crosswind-kind``, the source message id
  and receive count; the body unchanged, so an SQS redrive can bring it back)
  and acknowledged, as the service acknowledges what it dead-letters: retrying
  cannot help. Without ``CROSSWIND_DLQ_URL`` it stays a batch item failure and
  the queue's redrive policy moves it;
* failed in a way a retry can fix (the object's row is not there yet): a batch
  item failure, until its ``ApproximateReceiveCount`` reaches
  ``CROSSWIND_ATTEMPTS``; then dead-lettered with its reason;
* failed because an endpoint is unreachable, throttling or refusing the
  credentials: a batch item failure, never counted as an attempt by crosswind
  (the queue's ``maxReceiveCount`` is the backstop for invocations that die);
* not started because less than ``CROSSWIND_STOP_MARGIN_S`` of the function's
  time is left: a batch item failure, untouched. A record is only started with
  the margin in hand, and one row is one atomic upsert, so a cut-off never
  leaves anything half-applied; a record that was applied but not
  acknowledged (the function killed anyway) is found in step when it comes
  back.

Duplicates are harmless: each event is a hint to look at the object's row now;
the row in step is not written again (the ledger knows its etag), and a write
never replaces a newer version. So no idempotency store is needed on top
(Powertools' idempotency utility would add a table and a round trip per record
to prevent work that is already a no-op).

What the container keeps between invocations: the config, one event loop, the
open stores (Azure Tables, DocumentDB) and the ledger (``DocumentLedger``).
Logs are Powertools' JSON lines (crosswind's own loggers write through the same
handler), redacted; each invocation ends with one ``crosswind invocation`` line
carrying the CLI's ``sync metadata`` report, and the same counters as
CloudWatch metrics (embedded metric format, in ``[monitoring]
cloudwatch_namespace``, default ``Crosswind``, with its
``cloudwatch_dimensions``), plus the monitoring catalogue's
``crosswind_rows_total{mode=lambda,direction,outcome}``, the series the
service's exporter and the generated alarms use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from crosswind.config import Config
from crosswind.errors import CrosswindError
from crosswind.keys import KeySpec
from crosswind.live.events import PoisonMessage, parse_s3_message, reason_category
from crosswind.metasync.context import MetaOptions, RunContext
from crosswind.metasync.forward import ForwardSync
from crosswind.metasync.runner import key_spec, opened_row_stores
from crosswind.metasync.stats import MetaStats
from crosswind.model import Direction
from crosswind.secrets import REDACTOR, redact
from crosswind.serverless.ledger import DocumentLedger
from crosswind.serverless.runlog import catalogue_samples, counters, invocation_report
from crosswind.serverless.settings import Settings, config_from_env, settings_from_env
from crosswind.state import RunStatus
from crosswind.stores.azure_tables import AzureTableStore
from crosswind.stores.documentdb import DocumentDBStore
from crosswind.stores.sqs import SqsQueue, sqs_errors

T = TypeVar("T")

# Powertools names its logger after the service: this is the "crosswind" logger, so the
# engines' own loggers (crosswind.*) write through its JSON handler too.
logger = Logger(service="crosswind", json_serializer=lambda d: redact(
    json.dumps(d, default=str, ensure_ascii=False)))
#: the namespace is [monitoring] cloudwatch_namespace, set per invocation
metrics = Metrics(namespace="Crosswind", service="crosswind-lambda")

#: item failures a later try can fix; every other kind the engine gives is for good
RETRYABLE_KINDS = frozenset({"missing-row", "store-error", "error"})
#: SQS caps a message attribute value at 256 KiB; a reason needs far less
_REASON_CHARS = 1000


class NotApplied(Exception):
    """A record left for SQS to deliver again (a batch item failure)."""


class LambdaRuntime:
    """What one Lambda container keeps between invocations."""

    def __init__(self, cfg: Config, settings: Settings) -> None:
        self.cfg = cfg
        self.settings = settings
        self.spec: KeySpec = key_spec(cfg)
        self.opts = MetaOptions.from_config(cfg, Direction.AZURE_TO_AWS)
        self.loop = asyncio.new_event_loop()
        self.ledger = DocumentLedger.open(cfg, settings.ledger_collection)
        self._stack = contextlib.AsyncExitStack()
        self._stores: tuple[AzureTableStore, DocumentDBStore] | None = None
        self._dlq: SqsQueue | None = None

    @classmethod
    def from_env(cls) -> LambdaRuntime:
        settings = settings_from_env()
        load_secrets(settings)
        return cls(config_from_env(), settings)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def stores(self) -> tuple[AzureTableStore, DocumentDBStore]:
        if self._stores is None:
            async def open_them() -> tuple[AzureTableStore, DocumentDBStore]:
                table, docs = await self._stack.enter_async_context(
                    opened_row_stores(self.cfg, Direction.AZURE_TO_AWS))
                await docs.ensure_index()
                return table, docs

            self._stores = self.run(open_them())
        return self._stores

    def dlq(self) -> SqsQueue | None:
        if self._dlq is None and self.settings.dlq_url:
            self._dlq = self.run(SqsQueue.open(self.cfg.aws, self.settings.dlq_url))
        return self._dlq

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        inv = Invocation(self, context)
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(event=event, record_handler=inv.record,
                                            processor=processor, context=context)
        inv.finish(response)
        return dict(response)

    def close(self) -> None:
        async def close_them() -> None:
            await self._stack.aclose()
            if self._dlq is not None:
                await self._dlq.close()

        with contextlib.suppress(Exception):
            self.run(close_them())
        self.ledger.close()
        self.loop.close()


def load_secrets(settings: Settings) -> None:
    """``CROSSWIND_SECRETS``: Secrets Manager secrets into environment variables, so
    the config's ``env:NAME`` references resolve (Powertools' parameters utility,
    cached for the container's life)."""
    if not settings.secrets:
        return
    from aws_lambda_powertools.utilities import parameters

    for var, secret_id in settings.secrets:
        try:
            value = parameters.get_secret(secret_id)
        except Exception as exc:  # the utility raises its own GetParameterError
            raise CrosswindError(f"CROSSWIND_SECRETS: {var}: cannot read secret "
                                 f"{secret_id!r}: {redact(str(exc))}") from None
        text = value if isinstance(value, str) else value.decode("utf-8")
        REDACTOR.register(text)
        os.environ[var] = text


class Invocation:
    """One batch: the records, their outcomes, the report."""

    def __init__(self, rt: LambdaRuntime, context: Any) -> None:
        self.rt = rt
        self.context = context
        self.started = datetime.now(UTC)
        self.t0 = time.monotonic()
        rt.ledger.new_invocation()
        self.table, self.docs = rt.stores()
        self.ctx = RunContext(rt.ledger, None, rt.opts, MetaStats(),
                              guard=rt.opts.one_run_guard())
        self.fwd = ForwardSync(self.table, self.docs, self.ctx)
        self.failures: list[dict[str, Any]] = []
        self.outcomes: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.error: str | None = None
        logger.append_keys(request_id=getattr(context, "aws_request_id", None))

    def remaining_s(self) -> float:
        get = getattr(self.context, "get_remaining_time_in_millis", None)
        return get() / 1000.0 if callable(get) else float("inf")

    # -- one record ----------------------------------------------------------------
    def record(self, record: SQSRecord) -> None:
        if self.remaining_s() < self.rt.settings.stop_margin_s:
            self.outcomes["cut_off"] += 1
            raise NotApplied(f"not started: {self.remaining_s():.1f} s left, below the stop "
                             f"margin of {self.rt.settings.stop_margin_s:g} s")
        self.outcomes["records"] += 1
        try:
            parsed = parse_s3_message(record.body, bucket=self.rt.cfg.aws.bucket)
        except PoisonMessage as exc:
            self.outcomes["poison"] += 1
            self._dead_letter(record, "poison", exc.reason)
            return
        for reason in parsed.ignored:
            self.ignored[reason_category(reason)] += 1
        names = [ev.key for ev in parsed.events if ev.op == "upsert"]
        # Deletes leave rows alone, as `sync metadata --mode objects` does: the
        # table is the primary; a reconcile with --delete removes rows.
        if deletes := sum(ev.op == "delete" for ev in parsed.events):
            self.ignored["object-deleted"] += deletes
        if not names:
            self.outcomes["acked"] += 1
            return
        self.ctx.failures.clear()
        try:
            self.rt.run(self.fwd.objects(_names(names), self.rt.spec))
        except CrosswindError as exc:
            # An endpoint down, throttling or refusing us: the record waits for the
            # next delivery, whatever its receive count.
            self.outcomes["failed"] += 1
            self.error = redact(str(exc))[:300]
            logger.warning("record not applied", extra={"message_id": record.message_id,
                                                        "reason": self.error})
            raise NotApplied(self.error) from None
        failed = list(self.ctx.failures)
        if not failed:
            self.outcomes["acked"] += 1
            return
        self.failures.extend(failed)
        kind = failed[0]["kind"]
        reason = "; ".join(f"{f['kind']}: {f['item']}: {f['reason']}" for f in failed)
        receives = int(record.attributes.approximate_receive_count or "1")
        if all(f["kind"] not in RETRYABLE_KINDS for f in failed) or \
                receives >= self.rt.settings.attempts:
            self._dead_letter(record, kind, reason)
            return
        self.outcomes["failed"] += 1
        logger.info("record failed, to be retried", extra={
            "message_id": record.message_id, "receive_count": receives, "reason": reason})
        raise NotApplied(reason)

    def _dead_letter(self, record: SQSRecord, kind: str, reason: str) -> None:
        """``record`` into the DLQ with its reason, then acknowledged; a batch item
        failure instead when there is no DLQ or it cannot be written."""
        reason = redact(reason)[:_REASON_CHARS]
        dlq = self.rt.dlq()
        if dlq is None:
            self.outcomes["failed"] += 1
            logger.warning("record refused; no CROSSWIND_DLQ_URL, left to the queue's "
                           "redrive policy", extra={"message_id": record.message_id,
                                                     "kind": kind, "reason": reason})
            raise NotApplied(reason)
        attrs = {
            "crosswind-kind": kind, "crosswind-reason": reason,
            "crosswind-source-message-id": record.message_id,
            "crosswind-receive-count": record.attributes.approximate_receive_count or "1",
            "crosswind-source-queue": record.event_source_arn or "",
        }

        async def send() -> None:
            with sqs_errors(dlq.name):
                client = await dlq.client()
                await client.send_message(
                    QueueUrl=dlq.queue_url, MessageBody=record.body,
                    MessageAttributes={k: {"DataType": "String", "StringValue": v}
                                       for k, v in attrs.items() if v})

        try:
            self.rt.run(send())
        except CrosswindError as exc:
            self.outcomes["failed"] += 1
            raise NotApplied(f"{reason} (and the DLQ refused it: {redact(str(exc))})") from None
        self.outcomes["dead_lettered"] += 1
        logger.warning("record dead-lettered", extra={"message_id": record.message_id,
                                                      "kind": kind, "reason": reason})

    # -- the end -------------------------------------------------------------------
    def finish(self, response: Any) -> None:
        failed_ids = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
        status: RunStatus = "failed" if failed_ids or self.outcomes["dead_lettered"] \
            else "succeeded"
        invocation = {
            "platform": "aws-lambda",
            "request_id": getattr(self.context, "aws_request_id", None),
            "records": self.outcomes["records"] + self.outcomes["cut_off"],
            "acked": self.outcomes["acked"], "failed": len(failed_ids),
            "dead_lettered": self.outcomes["dead_lettered"], "poison": self.outcomes["poison"],
            "cut_off": self.outcomes["cut_off"], "ignored": dict(self.ignored),
            "remaining_s": round(min(self.remaining_s(), 1e9), 3),
            "duration_s": round(time.monotonic() - self.t0, 3),
        }
        self.ctx.failures[:] = self.failures[:100]
        report = invocation_report(self.ctx, mode="objects", source=self.table.name,
                                   destination=self.docs.name, started=self.started,
                                   status=status, error=self.error, invocation=invocation,
                                   details={"objects_from": "sqs"})
        logger.info("crosswind invocation", extra={"report": report})
        # The namespace and dimensions of [monitoring], as the service's exporter uses.
        mon = self.rt.cfg.monitoring
        extra = dict(mon.cloudwatch_dimensions)
        direction = Direction.AZURE_TO_AWS.value
        metrics.namespace = mon.cloudwatch_namespace
        metrics.add_dimensions(direction=direction, **extra)
        for name, value in counters(report).items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()
        # The catalogue's crosswind_rows_total, one line per outcome (an EMF line has one
        # dimension set): what `crosswind monitoring export`'s dashboards and alarms read.
        for sample in catalogue_samples(report, mode="lambda", direction=direction):
            with single_metric(name=sample["name"], unit=MetricUnit.Count,
                               value=sample["value"], namespace=mon.cloudwatch_namespace,
                               default_dimensions={**sample["labels"], **extra}):
                pass


async def _names(names: list[str]) -> AsyncIterator[str]:
    for n in names:
        yield n


_RUNTIME: LambdaRuntime | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (``crosswind.serverless.aws_lambda.handler``)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = LambdaRuntime.from_env()
    return _RUNTIME.handle(event, context)


def reset() -> None:
    """Drop the container's state (tests: a new configuration, a cold start)."""
    global _RUNTIME
    if _RUNTIME is not None:
        _RUNTIME.close()
    _RUNTIME = None
