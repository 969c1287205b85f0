"""Cutovers and rollbacks inside the replication service (``live.service``'s
``SwitchHooks``): control requests start, resume, stop or rehearse a switch,
which then runs above the service's epochs (the point of no return flips the
direction under it); and after cutover, every status tick feeds the rollback
triggers, which raise alerts and, with ``auto_rollback`` and a pre-approved
rollback, start one.

Requests: ``switch-start`` / ``switch-resume`` ``{plan}``, ``switch-stop`` (stop
before the next step and undo, if before the point of no return),
``switch-abort`` ``{plan}`` (undo a switch a crash left undone), and
``switch-rehearse`` (a cutover then a rollback, without approvals, when
``[cutover] allow_rehearsal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from crosswind.audit import AuditLog
from crosswind.control import ControlQueue, Request
from crosswind.cutover.controls import ServiceControls
from crosswind.cutover.executor import Executor
from crosswind.cutover.planning import prepare_plan
from crosswind.cutover.triggers import (
    NAMES,
    Detector,
    TriggerEvent,
    TriggerSettings,
    sample_from_status,
    step,
)
from crosswind.errors import ConfigError, CrosswindError
from crosswind.live.service import Replicator
from crosswind.migration import Phase
from crosswind.secrets import redact
from crosswind.state import now_iso

log = logging.getLogger("crosswind.cutover")

REQUESTS = ("switch-start", "switch-resume", "switch-abort", "switch-rehearse", "switch-stop")


class SwitchRunner:
    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.executor: Executor | None = None
        self.info: dict[str, Any] | None = None
        self.detector: Detector | None = None
        self.alerts: list[dict[str, Any]] = []
        self.auto: str | None = None
        self.planning: asyncio.Task[None] | None = None

    # -- SwitchHooks -----------------------------------------------------------------
    def handles(self, kind: str) -> bool:
        return kind in REQUESTS

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, service: Replicator, request: Request, queue: ControlQueue) -> None:
        if request.kind == "switch-stop":
            if self.running and self.executor is not None:
                self.executor.abort()
            queue.finish(request.id, "done", {"stop_requested": self.running})
            return
        if self.running:
            raise ConfigError(f"a {self.info and self.info.get('kind')} is already running in "
                              "this service (crosswind cutover status)")
        say = functools.partial(queue.say, request.id)

        async def finish(result: dict[str, Any], code: int) -> None:
            queue.finish(request.id, "done" if code == 0 else "failed",
                         {**result, "exit_code": code,
                          "error": result.get("error") or "the switch did not succeed"})

        self._launch(service, request.kind, request.args, say,
                     principal=request.requested_by or "unknown", done=finish,
                     fail=lambda error, code: queue.finish(
                         request.id, "failed", {"error": error, "exit_code": code}))

    def _launch(self, service: Replicator, kind: str, args: dict[str, Any],
                say: Callable[[str], None], *, principal: str,
                done: Callable[[dict[str, Any], int], Any],
                fail: Callable[[str, int], None]) -> None:
        assert service.state is not None
        executor = Executor(service.cfg, service.state, ServiceControls(service), say=say,
                            principal=principal)
        self.executor = executor
        self.info = {"request": kind, "kind": args.get("kind"), "plan_hash": args.get("plan"),
                     "started_at": now_iso(), "by": principal}

        async def go() -> None:
            try:
                if kind == "switch-rehearse":
                    result = await self._rehearse(service, executor, say)
                    code = int(result["exit_code"])
                elif kind == "switch-abort":
                    report = await executor.undo_interrupted(str(args["plan"]))
                    result, code = report.as_dict(), 0
                else:
                    # (approvals are always checked by the executor: nothing in a
                    # request can vouch for a plan)
                    report = await executor.run(str(args["plan"]),
                                                resume=kind == "switch-resume")
                    result, code = report.as_dict(), report.exit_code
                await done(result, code)
            except asyncio.CancelledError:
                fail("the replication service stopped during the switch; see crosswind "
                     "cutover status, then resume", 7)
                raise
            except CrosswindError as exc:
                fail(redact(str(exc)), exc.exit_code)
            except Exception as exc:
                log.error("the switch failed", exc_info=exc)
                fail(redact(f"internal error {type(exc).__name__}: {exc}"), 70)
            finally:
                self.info = None

        self.task = asyncio.create_task(go())

    async def _rehearse(self, service: Replicator, executor: Executor,
                        say: Callable[[str], None]) -> dict[str, Any]:
        """A cutover then a rollback, end to end, without approvals; both timings."""
        cfg = service.cfg
        if not cfg.cutover.allow_rehearsal:
            raise ConfigError("cutover rehearse needs [cutover] allow_rehearsal = true (only "
                              "for a non-production estate: it switches without approvals)")
        out: dict[str, Any] = {"kind": "rehearsal"}
        for kind in ("cutover", "rollback"):
            plan = await prepare_plan(cfg, kind, by=f"{executor.principal} (rehearsal)")
            if not plan.gates_passed:
                failing = [g["name"] for g in plan.document["gates"] if not g["passed"]]
                raise ConfigError(f"the rehearsal's {kind} plan fails its gates: "
                                  f"{', '.join(failing)} (crosswind {kind} plan shows why)")
            say(f"rehearsal: {kind} plan {plan.hash[:12]}…")
            report = await executor.run(plan.hash, rehearsal=True)
            out[kind] = report.as_dict()
            if report.exit_code:
                out.update(exit_code=report.exit_code,
                           error=f"the rehearsal's {kind} did not succeed: {report.error}")
                return out
        out.update(exit_code=0, cutover_s=out["cutover"]["duration_s"],
                   rto_s=out["rollback"]["rto_s"])
        return out

    def status(self) -> dict[str, Any] | None:
        # triggers: each one's fired state while armed after cutover (the metric
        # crosswind_rollback_trigger_firing); absent before cutover
        fired = set(self.detector.fired()) if self.detector is not None else None
        return {"running": self.running, "current": self.info,
                "alerts": self.alerts[-20:], "auto_rollback": self.auto,
                "triggers": None if fired is None else {n: n in fired for n in NAMES}}

    async def close(self) -> None:
        if self.planning is not None:
            self.planning.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task

    # -- rollback triggers (after cutover) ------------------------------------------
    async def on_status(self, service: Replicator, doc: dict[str, Any]) -> None:
        cfg = service.cfg
        if doc.get("phase") != Phase.POST_CUTOVER.value or self.running \
                or self.planning is not None:
            self.detector = None  # re-armed fresh for the next cutover
            return
        if self.detector is None:
            self.detector = Detector(TriggerSettings.from_config(
                cfg.cutover, cfg.replicate.lag_slo_post_s))
        self.detector, events = step(self.detector, sample_from_status(doc, time.time()))
        for ev in events:
            self._alert(service, ev)
            if ev.kind == "fired" and cfg.cutover.auto_rollback and self.planning is None:
                # Planning probes stores (the preflight): not on the status tick.
                self.planning = asyncio.create_task(self._auto_rollback(service, ev))
                self.planning.add_done_callback(self._planned)

    def _planned(self, task: asyncio.Task[None]) -> None:
        self.planning = None
        if not task.cancelled() and task.exception() is not None:
            self.auto = f"not started: {redact(str(task.exception()))}"

    def _alert(self, service: Replicator, ev: TriggerEvent) -> None:
        entry = {"trigger": ev.trigger, "kind": ev.kind, "at": now_iso(), "reason": ev.reason,
                 "evidence": dict(ev.evidence)}
        self.alerts.append(entry)
        log.warning("rollback trigger %s %s: %s", ev.trigger, ev.kind, ev.reason)
        assert service.state is not None
        AuditLog(service.state).append(
            "trigger", f"{ev.trigger} {ev.kind}: {ev.reason}", principal="crosswind replicate",
            verified_by="the replication service", evidence=entry)

    async def _auto_rollback(self, service: Replicator, ev: TriggerEvent) -> None:
        cfg = service.cfg
        try:
            plan = await prepare_plan(cfg, "rollback", by="crosswind replicate (auto rollback)")
        except CrosswindError as exc:
            self.auto = f"not started: the rollback plan failed: {redact(str(exc))}"
            return
        if not plan.gates_passed:
            failing = [g["name"] for g in plan.document["gates"] if not g["passed"]]
            self.auto = f"not started: the rollback plan fails its gates ({', '.join(failing)})"
            return
        self.auto = f"started by trigger {ev.trigger}: plan {plan.hash[:12]}…"
        log.warning("automatic rollback: %s", self.auto)

        async def done(result: dict[str, Any], code: int) -> None:
            self.auto = (f"trigger {ev.trigger}: rollback {result.get('status')}"
                         + (f" in {result.get('rto_s')}s" if result.get("rto_s") else ""))

        def fail(error: str, code: int) -> None:
            self.auto = f"trigger {ev.trigger}: rollback failed: {error}"

        self._launch(service, "switch-start", {"plan": plan.hash, "kind": "rollback"},
                     lambda line: log.warning("auto rollback: %s", line),
                     principal=f"crosswind replicate (trigger {ev.trigger})", done=done,
                     fail=fail)
