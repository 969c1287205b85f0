"""Monitoring of the replication service, and the monitoring document it (and
``crosswind metrics``, ``crosswind dashboard``) reads the metric catalogue from.

``monitoring_document`` gathers, read-only: the status document, the
validation history, the last cutover and rollback reports, the DLQ by kind and
the totals of the one-shot runs. ``read_monitoring`` does it from the state
store alone (the service need not run).

``ServiceMonitor`` lives as long as the service (across epochs): the request
stats the breakers fill, the objects the appliers applied, the alerts it
evaluates every ``[monitoring] interval_s`` (state in the status document,
``alerts``; a webhook for each change), and the CloudWatch and Azure Monitor
exporters. It only reads what the engines count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from crosswind.config import Config, is_loopback
from crosswind.live.status import StatusStore
from crosswind.metasync.context import scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.observability.alerts import AlertEngine, Transition
from crosswind.observability.catalogue import resolved_alerts, samples
from crosswind.observability.prometheus import exposition
from crosswind.observability.requests import RequestStats
from crosswind.observability.stats import OutcomeTally
from crosswind.secrets import redact, resolve
from crosswind.state import StateStore
from crosswind.validate.history import FindingLog
from crosswind.version import crosswind_version

if TYPE_CHECKING:
    from crosswind.observability.azure_monitor import AzureMonitorExporter
    from crosswind.observability.cloudwatch import CloudWatchExporter
    from crosswind.observability.webhook import Webhook

log = logging.getLogger("crosswind.live")

#: the step fields the dashboard's timeline shows
_STEP_FIELDS = ("name", "started_at", "finished_at", "duration_s", "outcome", "undo")
_SWITCH_FIELDS = ("kind", "plan_hash", "status", "started_at", "finished_at", "duration_s",
                  "rto_s", "rehearsal", "error")


def _switch_brief(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not doc:
        return None
    out = {k: doc.get(k) for k in _SWITCH_FIELDS}
    out["steps"] = [{k: s.get(k) for k in _STEP_FIELDS} for s in doc.get("steps") or []]
    return out


class OneShotTotals:
    """Objects and rows of every finished one-shot run (``sync objects``, ``sync
    metadata``), summed from their reports; recomputed only when runs changed."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: dict[str, Any] = {"objects": [], "rows": []}

    def read(self, state: StateStore) -> dict[str, Any]:
        where = "kind IN ('objects', 'metadata') AND dry_run=0 AND report IS NOT NULL"
        key = tuple(state.db.execute(
            f"SELECT count(*), max(id), max(finished_at) FROM runs WHERE {where}").fetchone())
        if key == self._key:
            return self._value
        objects: dict[tuple[str, str], list[int]] = {}
        rows: dict[tuple[str, str], int] = {}
        for kind, direction, report in state.db.execute(
                f"SELECT kind, direction, report FROM runs WHERE {where} ORDER BY id"):
            try:
                rep = json.loads(report)
            except ValueError:
                continue
            if kind == "objects":
                for outcome in ("copied", "skipped", "failed", "deleted"):
                    t = rep.get(outcome) or {}
                    acc = objects.setdefault((direction, outcome), [0, 0])
                    acc[0] += int(t.get("count") or 0)
                    acc[1] += int(t.get("bytes") or 0)
            else:
                for outcome in ("written", "unchanged", "failed", "deleted"):
                    rows[(direction, outcome)] = rows.get((direction, outcome), 0) + int(
                        rep.get(outcome) or 0)
        self._value = {
            "objects": [{"direction": d, "outcome": o, "count": c, "bytes": b}
                        for (d, o), (c, b) in sorted(objects.items())],
            "rows": [{"direction": d, "outcome": o, "count": n}
                     for (d, o), n in sorted(rows.items())]}
        self._key = key
        return self._value


def monitoring_document(cfg: Config, state: StateStore, status: dict[str, Any], *,
                        oneshot: OneShotTotals | None = None,
                        quotas: list[dict[str, Any]] | None = None,
                        history: int = 20) -> dict[str, Any]:
    """Everything the metric catalogue reads (``observability.readers``)."""
    marks = StatusStore(state)
    ledger = Ledger(state, scope_of(cfg))
    return {
        "at": time.time(),
        "version": crosswind_version(),
        "status": status,
        "validation_history": FindingLog(state).history(limit=history),
        # written by the cutover executor (cutover.executor.last_switch reads them too)
        "switches": {k: _switch_brief(marks.get_mark(f"last_{k}"))
                     for k in ("cutover", "rollback")},
        "dlq": {"open": ledger.dlq_open_count(), "by_kind": ledger.dlq_open_by_kind()},
        "oneshot": (oneshot or OneShotTotals()).read(state),
        "quotas": [q for q in quotas or [] if "error" not in q],
    }


def read_monitoring(cfg: Config) -> dict[str, Any]:
    """The monitoring document from the state store alone (no lock taken)."""
    from crosswind.live.report import read_status

    status = read_status(cfg)
    state = StateStore(cfg.state_dir)
    try:
        return monitoring_document(cfg, state, status)
    finally:
        state.close()


class Epoch(Protocol):
    """What the monitor reads of the service's current epoch (``live.service``)."""

    @property
    def state(self) -> StateStore: ...

    def status_document(self, stopped: bool = False) -> dict[str, Any]: ...


class ServiceMonitor:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.mc = cfg.monitoring
        self.requests = RequestStats()
        self.objects = OutcomeTally()
        self.engine = AlertEngine(resolved_alerts(cfg))
        self.oneshot = OneShotTotals()
        self.quotas: list[dict[str, Any]] = []
        self.webhook: Webhook | None = None
        if self.mc.webhook_url:
            from crosswind.observability.webhook import Webhook

            url = resolve(self.mc.webhook_url, where="[monitoring].webhook_url",
                          allow_literal=is_loopback(self.mc.webhook_url)).get_secret_value()
            self.webhook = Webhook(url, attempts=self.mc.webhook_attempts,
                                   timeout_s=self.mc.webhook_timeout_s)
        self.cloudwatch: CloudWatchExporter | None = None
        self.azure: AzureMonitorExporter | None = None
        self._next_cw = 0.0
        self._next_quota = 0.0
        self.errors: dict[str, str] = {}

    # -- what the service shows -------------------------------------------------------
    def document(self, epoch: Epoch) -> dict[str, Any]:
        return monitoring_document(self.cfg, epoch.state, epoch.status_document(),
                                   oneshot=self.oneshot, quotas=self.quotas)

    def metrics_text(self, epoch: Epoch) -> bytes:
        return exposition(lambda: self.document(epoch))

    def status(self) -> dict[str, Any]:
        out = self.engine.status()
        out["webhook"] = None if self.webhook is None else self.webhook.status()
        out["exporters"] = {
            "cloudwatch": None if self.cloudwatch is None else self.cloudwatch.status(),
            "azure_monitor": None if self.azure is None else self.azure.status(),
            "errors": dict(self.errors)}
        return out

    # -- the loop -------------------------------------------------------------------
    async def run(self, epoch: Epoch, stop: asyncio.Event) -> None:
        """Every ``interval_s`` until ``stop``: alerts, then the exporters."""
        sender = None
        if self.webhook is not None:
            sender = asyncio.create_task(self.webhook.run(stop))
        try:
            while not stop.is_set():
                try:
                    await self.tick(epoch)
                    self.errors.pop("tick", None)
                except Exception as exc:
                    # Monitoring must never count as a failed service loop: that would
                    # stop a cutover at its streams gate. Noted here, tried next tick.
                    self.errors["tick"] = redact(f"{type(exc).__name__}: {exc}")[:300]
                    log.warning("monitoring: %s", self.errors["tick"])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.mc.interval_s)
        finally:
            if sender is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(sender, timeout=self.mc.webhook_timeout_s + 5)

    async def tick(self, epoch: Epoch) -> list[Transition]:
        now = time.time()
        if self.mc.quotas and now >= self._next_quota:
            self._next_quota = now + self.mc.quota_interval_s
            await self._check_quotas()
        current = samples(self.document(epoch))
        changed = self.engine.step(current, now)
        for t in changed:
            log.warning("alert %s %s: %s (%s %s %g)", t.alert, t.status, t.summary,
                        dict(t.labels) or "", t.op, t.threshold)
            if self.webhook is not None:
                self.webhook.send({**t.as_dict(), "source": "crosswind replicate",
                                   "estate": {"container": self.cfg.azure.container,
                                              "bucket": self.cfg.aws.bucket}})
        if self.mc.azure_monitor:
            self._azure_update(current)
        if self.mc.cloudwatch and now >= self._next_cw:
            self._next_cw = now + self.mc.cloudwatch_interval_s
            await self._cloudwatch_put(current)
        return changed

    def _azure_update(self, current: list[Any]) -> None:
        try:
            if self.azure is None:
                from crosswind.observability.azure_monitor import AzureMonitorExporter

                assert self.mc.azure_connection_string is not None
                conn = resolve(self.mc.azure_connection_string,
                               where="[monitoring].azure_connection_string",
                               allow_literal=False).get_secret_value()
                self.azure = AzureMonitorExporter(conn, interval_s=self.mc.azure_interval_s)
            self.azure.update(current)
            self.errors.pop("azure_monitor", None)
        except Exception as exc:
            self.errors["azure_monitor"] = redact(f"{type(exc).__name__}: {exc}")[:300]
            log.warning("Azure Monitor exporter: %s", self.errors["azure_monitor"])

    async def _cloudwatch_put(self, current: list[Any]) -> None:
        try:
            if self.cloudwatch is None:
                from crosswind.observability.aws import client
                from crosswind.observability.cloudwatch import CloudWatchExporter

                self.cloudwatch = CloudWatchExporter(
                    client(self.cfg.aws, "cloudwatch"), self.mc.cloudwatch_namespace,
                    dict(self.mc.cloudwatch_dimensions))
            await asyncio.to_thread(self.cloudwatch.put, current)
            self.errors.pop("cloudwatch", None)
        except Exception as exc:  # a CloudWatch outage must not stop replication
            self.errors["cloudwatch"] = redact(f"{type(exc).__name__}: {exc}")[:300]
            if self.cloudwatch is not None:
                self.cloudwatch.last_error = self.errors["cloudwatch"]
            log.warning("CloudWatch exporter: %s", self.errors["cloudwatch"])

    async def _check_quotas(self) -> None:
        from crosswind.observability.aws import client
        from crosswind.observability.quotas import check_quotas

        def check() -> list[dict[str, Any]]:
            return check_quotas(lambda service: client(self.cfg.aws, service),
                                self.mc.lambda_concurrency_quota)

        try:
            self.quotas = await asyncio.to_thread(check)
        except Exception as exc:
            self.errors["quotas"] = redact(f"{type(exc).__name__}: {exc}")[:300]

    async def close(self) -> None:
        if self.azure is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.azure.shutdown)
