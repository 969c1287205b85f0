"""The runbook executor: one loop over the steps ``cutover plan`` printed.

It runs inside the replication service (the one engine writer of the state
directory), above the service's per-direction epochs, because the point of no
return flips the replication direction under it: the service drains its old
direction and starts the new one while the executor waits for it.

For each step: its intent is journaled, it acts (with its timeout), its outcome
is journaled and audited. A step that fails before the point of no return
stops the switch and undoes it (the failed step's undo first, then every
earlier one, latest first), each undo journaled too, under its own timeout even
when the switch was cancelled; the phase is back where it started. A step that
fails after it stops the switch where it is: the way out is forward
(``cutover resume``) or, after a cutover, a rollback. A crash at any moment
leaves an intent without an outcome, which ``resume`` starts from.

What the steps need from the service (draining, validating, a probe, the
direction in force) is the ``Controls`` protocol, so the executor is tested
against any implementation of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from crosswind.audit import AuditLog
from crosswind.config import Config
from crosswind.cutover.approvals import ApprovalBook, ApprovalRefused
from crosswind.cutover.gates import GateInputs, Kind, evaluate_gates
from crosswind.cutover.hooks import HookContext, run_hook
from crosswind.cutover.inputs import gather_inputs
from crosswind.cutover.journal import COMPLETE, PONR, StepJournal
from crosswind.cutover.plan import Plan, PlanError, PlanStore, check_hash, stale_reason
from crosswind.cutover.planning import limits
from crosswind.cutover.runbook import Runbook, Step, runbook_for
from crosswind.cutover.transitions import CutoverState, fire, stage_for
from crosswind.errors import CrosswindError
from crosswind.governance.context import Governance
from crosswind.governance.runs import finish_switch, switch_lineage
from crosswind.governance.stewardship import stewardship_fields
from crosswind.migration import MigrationStore, Phase
from crosswind.model import Direction
from crosswind.secrets import redact
from crosswind.state import StateStore, now_iso
from crosswind.version import crosswind_version

Say = Callable[[str], None]
SwitchStatus = Literal["succeeded", "failed", "undone", "aborted"]
#: exit codes of `cutover start` / `rollback start`
EXIT_UNDONE = 1  # failed before the point of no return, and undone
EXIT_STOPPED = 7  # failed after the point of no return: resume (or roll back)


class StepFailed(CrosswindError):
    """A step did not do what it must; ``evidence`` says what was seen."""

    def __init__(self, message: str, evidence: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.evidence = dict(evidence or {})


class SwitchRefused(CrosswindError):
    """The plan may not run (not approved, stale, failing gates, nothing to resume):
    nothing was done."""

    exit_code = 2


class SwitchAborted(CrosswindError):
    """``cutover abort`` asked to stop before the point of no return."""


class Controls(Protocol):
    """What the runbook's steps ask of the running replication service."""

    async def wait_drained(self, direction: Direction, quiet_s: float, timeout_s: float,
                           say: Say) -> dict[str, Any]:
        """The primary quiet for ``quiet_s``, a final reconcile done, every change
        applied; the evidence. ``StepFailed`` when not within ``timeout_s``."""
        ...

    async def validate(self, direction: Direction, sample: int | None) -> dict[str, Any]:
        """A sampled validation of ``direction``; its JSON report."""
        ...

    async def wait_direction(self, direction: Direction, timeout_s: float) -> None:
        """Until the service replicates ``direction`` (after the point of no return)."""
        ...

    async def probe(self, direction: Direction, plan_hash: str, timeout_s: float, say: Say
                    ) -> dict[str, Any]:
        """One change written on the new primary arrives on the replica; the evidence."""
        ...


@dataclass
class StepRecord:
    name: str
    does: str
    started_at: str
    finished_at: str | None = None
    duration_s: float | None = None
    outcome: str | None = None
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    undo: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "does": self.does, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration_s": self.duration_s,
                "outcome": self.outcome, "reason": self.reason, "evidence": self.evidence,
                "undo": self.undo}


@dataclass
class SwitchReport:
    kind: Kind
    plan_hash: str
    started_at: str
    status: SwitchStatus = "failed"
    finished_at: str | None = None
    duration_s: float | None = None
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None
    phase_before: str = ""
    phase_after: str = ""
    authorization: str = ""
    rehearsal: bool = False
    resumed: bool = False
    #: rollback only: from start until Azure is primary again with every AWS change
    #: applied and the unswitch hook done
    rto_s: float | None = None
    report_files: dict[str, str] = field(default_factory=dict)
    #: [governance] domain, steward, owner, flow_id
    stewardship: dict[str, str | None] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.status == "succeeded":
            return 0
        return EXIT_UNDONE if self.status in ("undone", "aborted") else EXIT_STOPPED

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "crosswind_version": crosswind_version(),
                "plan_hash": self.plan_hash, "status": self.status,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "duration_s": self.duration_s, "rto_s": self.rto_s,
                "phase_before": self.phase_before, "phase_after": self.phase_after,
                "authorization": self.authorization, "rehearsal": self.rehearsal,
                "resumed": self.resumed, "error": self.error,
                "steps": [s.as_dict() for s in self.steps], "exit_code": self.exit_code,
                "report_files": dict(self.report_files),
                "stewardship": dict(self.stewardship)}


GateInputsFn = Callable[[Config, Kind, int], Awaitable[GateInputs]]


async def _gather(cfg: Config, kind: Kind, dlq_acknowledged: int) -> GateInputs:
    return await gather_inputs(cfg, kind, dlq_acknowledged=dlq_acknowledged)


def _direction_of(step: Step, fallback: Direction) -> Direction:
    d = step.params.get("direction")
    return Direction(str(d)) if d else fallback


class Executor:
    def __init__(self, cfg: Config, state: StateStore, controls: Controls, *,
                 say: Say = lambda line: None, principal: str = "crosswind replicate",
                 gate_inputs: GateInputsFn | None = None) -> None:
        self.cfg = cfg
        #: where the gates' inputs come from (the state store, the service's status and a
        #: preflight; tests of the executor on memory stores give their own)
        self.gate_inputs = gate_inputs or _gather
        self.state = state
        self.controls = controls
        self.say = say
        self.principal = principal
        self.migration = MigrationStore(state)
        self.journal = StepJournal(state)
        self.plans = PlanStore(state)
        self.audit = AuditLog(state)
        self._abort = False

    def abort(self) -> None:
        """Stop before the next step (or out of a wait) and undo, if still possible."""
        self._abort = True

    # -- running a plan --------------------------------------------------------------
    async def run(self, plan_hash: str, *, resume: bool = False, rehearsal: bool = False
                  ) -> SwitchReport:
        try:
            plan = self.plans.require(check_hash(plan_hash))
            book = runbook_for(plan.kind, self.cfg.cutover, self.cfg.validation)
            start_at = self._resume_point(plan, book) if resume else 0
            authorization = ("resume of a plan already authorized and started" if resume
                             else self._authorize(plan, rehearsal))
        except (PlanError, ApprovalRefused) as exc:
            raise SwitchRefused(str(exc)) from None
        kind = plan.kind
        before = self.migration.get()
        report = SwitchReport(kind, plan.hash, now_iso(), phase_before=before.phase.value,
                              rehearsal=rehearsal, resumed=resume)
        report.authorization = authorization
        report.stewardship = stewardship_fields(self.cfg)["stewardship"]
        gov = Governance.open(self.cfg, self.state)
        lineage = switch_lineage(gov, self.cfg, kind, plan.hash)
        t0 = time.monotonic()
        if not resume:
            self.plans.mark_executed(plan.hash)
        self._audit("resume" if resume else "start", "started", plan.hash,
                    {"kind": kind, "phase": before.phase.value,
                     "authorization": report.authorization, "rehearsal": rehearsal,
                     "from_step": book.steps[start_at].name})
        self.say(f"{kind} {'resumed' if resume else 'started'}: plan {plan.hash[:12]}… "
                 f"({report.authorization})")
        try:
            for step in book.steps[start_at:]:
                if self._abort and not self._committed():
                    raise SwitchAborted(f"{kind} aborted before step {step.name!r}")
                await self._step(plan, book, step, report)
            report.status = "succeeded"
        except (StepFailed, SwitchAborted, CrosswindError) as exc:
            report.error = redact(str(exc))
            if self._committed():
                report.status = "failed"
                self.say(f"stopped after the point of no return: {report.error}; run "
                         f"`crosswind cutover resume`" + (" or roll back" if kind == "cutover"
                                                          else ""))
            else:
                failed = report.steps[-1].name if report.steps else book.steps[0].name
                await self._undo(plan, book, failed, report)
                report.status = "aborted" if isinstance(exc, SwitchAborted) else "undone"
        except asyncio.CancelledError:
            # The service is stopping: a crash to the switch. Before the point of no
            # return the world is put back (the writers unfrozen); after it, resume.
            report.error = "the replication service stopped during the switch"
            if not self._committed():
                failed = report.steps[-1].name if report.steps else book.steps[0].name
                await asyncio.shield(self._undo(plan, book, failed, report))
                report.status = "aborted"
            raise
        finally:
            report.finished_at = now_iso()
            report.duration_s = round(time.monotonic() - t0, 3)
            report.phase_after = self.migration.get().phase.value
            if kind == "rollback" and report.status == "succeeded":
                report.rto_s = report.duration_s
            self._audit("finish", report.status, plan.hash,
                        {"kind": kind, "duration_s": report.duration_s, "rto_s": report.rto_s,
                         "phase": report.phase_after, "error": report.error})
            self._store(report)
            finish_switch(lineage, report.status, report.error, rto_s=report.rto_s,
                          phase=report.phase_after)
            gov.close()
        return report

    def _authorize(self, plan: Plan, rehearsal: bool) -> str:
        reason = stale_reason(plan, cfg=self.cfg, phase=self.migration.get().phase.value,
                              latest=self.plans.latest(plan.kind))
        if reason:
            raise PlanError(reason)
        if not plan.gates_passed:
            raise PlanError(f"plan {plan.hash[:12]}… was made with failing gates; fix them "
                            "and plan again")
        if rehearsal:
            if not self.cfg.cutover.allow_rehearsal:
                raise PlanError("a rehearsal needs [cutover] allow_rehearsal = true")
            return "rehearsal ([cutover] allow_rehearsal): no approvals asked"
        q = ApprovalBook(self.state, self.cfg).authorization(plan.hash)
        if not q.ok:
            raise ApprovalRefused(f"plan {plan.hash[:12]}… may not run: {q.reason}")
        return q.reason

    def _resume_point(self, plan: Plan, book: Runbook) -> int:
        if plan.executed_at is None:
            raise PlanError(f"plan {plan.hash[:12]}… was never started: start it, not resume")
        progress = self.journal.progress(plan.hash)
        done = {p.step for p in progress if p.outcome in ("ok", "skipped")}
        if done & {u.name for u in book.undo_steps if u.action == "transition"}:
            raise PlanError(f"plan {plan.hash[:12]}… was undone; plan again")
        for n, s in enumerate(book.steps):
            if s.name not in done:
                return n
        raise PlanError(f"plan {plan.hash[:12]}… has nothing left to do: every step is done")

    def _committed(self) -> bool:
        return self.journal.committed_switch()

    async def undo_interrupted(self, plan_hash: str) -> SwitchReport:
        """``cutover abort`` with no executor running: a switch a crash left before
        its point of no return is undone from the last step it started."""
        plan = self.plans.require(check_hash(plan_hash))
        book = runbook_for(plan.kind, self.cfg.cutover, self.cfg.validation)
        if self._committed():
            raise PlanError(f"the {plan.kind} of plan {plan.hash[:12]}… is past its point of "
                            "no return: it can only go forward (cutover resume)")
        progress = self.journal.progress(plan.hash)
        started = [p.step for p in progress if p.started_at
                   and p.step in {s.name for s in book.steps}]
        report = SwitchReport(plan.kind, plan.hash, now_iso(),
                              phase_before=self.migration.get().phase.value,
                              stewardship=stewardship_fields(self.cfg)["stewardship"])
        for p in progress:
            if p.started_at and not p.finished_at:  # cut off by the crash
                self.journal.outcome(plan.hash, plan.kind, p.step, "undone",
                                     {"reason": "interrupted, then aborted"})
        if started:
            await self._undo(plan, book, started[-1], report)
        report.status = "aborted"
        report.finished_at = now_iso()
        report.phase_after = self.migration.get().phase.value
        self._audit("abort", "undone", plan.hash, {"kind": plan.kind,
                                                   "phase": report.phase_after})
        self._store(report)
        return report

    # -- one step --------------------------------------------------------------------
    async def _step(self, plan: Plan, book: Runbook, step: Step, report: SwitchReport,
                    *, undo: bool = False) -> None:
        rec = StepRecord(step.name, step.does, now_iso(), undo=undo)
        report.steps.append(rec)
        t = time.monotonic()
        self.say(f"{'undo ' if undo else ''}{step.name}: {step.does}")
        if step.action != "point_of_no_return":
            self.journal.intent(plan.hash, plan.kind, step.name)
        try:
            evidence = await self._do(plan, step)
        except (StepFailed, CrosswindError, TimeoutError) as exc:
            rec.outcome = "failed"
            rec.reason = redact(str(exc) or f"timed out after {step.timeout_s:g}s")
            rec.evidence = getattr(exc, "evidence", {})
            self.journal.outcome(plan.hash, plan.kind, step.name, "failed",
                                 {"reason": rec.reason})
            self._audit("step", f"{step.name} failed: {rec.reason}", plan.hash,
                        {"step": step.name, "undo": undo, **rec.evidence})
            self.say(f"  ✗ {step.name} failed: {rec.reason}")
            raise StepFailed(f"step {step.name!r} failed: {rec.reason}") from None
        finally:
            rec.finished_at = now_iso()
            rec.duration_s = round(time.monotonic() - t, 3)
        rec.outcome = "skipped" if evidence.get("skipped") else "ok"
        rec.evidence = evidence
        if step.action != "point_of_no_return":
            self.journal.outcome(plan.hash, plan.kind, step.name,
                                 "skipped" if rec.outcome == "skipped" else "ok",
                                 {k: v for k, v in evidence.items() if k != "output"})
        self._audit("step", f"{step.name} {rec.outcome}", plan.hash,
                    {"step": step.name, "undo": undo, "duration_s": rec.duration_s,
                     **{k: v for k, v in evidence.items() if k != "output"}})
        self.say(f"  ✓ {step.name} {rec.outcome} in {rec.duration_s:.1f}s")

    async def _do(self, plan: Plan, step: Step) -> dict[str, Any]:
        timeout = step.timeout_s
        if step.action == "check_gates":
            return await asyncio.wait_for(self._gates(plan), timeout)
        if step.action == "transition":
            return self._transition(step)
        if step.action == "hook":
            return await self._hook(plan, step)
        if step.action == "wait_drained":
            return await self.controls.wait_drained(
                _direction_of(step, self.migration.get().direction),
                float(step.params.get("quiet_period_s", 0.0)), timeout or 300.0,
                self._sub_say)
        if step.action == "validate":
            report = await asyncio.wait_for(self.controls.validate(
                _direction_of(step, self.migration.get().direction),
                int(step.params["sample_size"]) if "sample_size" in step.params else None),
                timeout)
            evidence = {"validation_id": report.get("run_id"), "verdict": report.get("verdict"),
                        "totals": report.get("totals")}
            if report.get("verdict") != "pass":
                missed = [f"{name} (completeness {c.get('completeness_pct')} %, pass rate "
                          f"{c.get('pass_rate_pct')} %)"
                          for name, c in (report.get("checks") or {}).items()
                          if not (c.get("meets_completeness") and c.get("meets_pass_rate"))]
                why = report.get("error") or ", ".join(missed) or "targets missed"
                raise StepFailed(f"validation {report.get('run_id')} says "
                                 f"{report.get('verdict')}: {why}", evidence)
            return evidence
        if step.action == "point_of_no_return":
            return await self._point_of_no_return(plan, step)
        if step.action == "probe":
            direction = _direction_of(step, self.migration.get().direction)
            return await self.controls.probe(direction, plan.hash, timeout or 60.0,
                                             self._sub_say)
        raise StepFailed(f"unknown step action {step.action!r}")

    def _sub_say(self, line: str) -> None:
        self.say(f"    {line}")

    async def _gates(self, plan: Plan) -> dict[str, Any]:
        ack = int(plan.document.get("inputs", {}).get("dlq_acknowledged") or 0)
        inputs = await self.gate_inputs(self.cfg, plan.kind, ack)
        gates = evaluate_gates(inputs, limits(self.cfg))
        evidence = {"gates": {g.name: {"passed": g.passed, "reason": g.reason} for g in gates},
                    "lag_p99_s": inputs.lag_p99_s}
        failing = [g for g in gates if g.blocks]
        if failing:
            raise StepFailed("; ".join(f"{g.name}: {g.reason}" for g in failing), evidence)
        return evidence

    def _transition(self, step: Step) -> dict[str, Any]:
        rec = self.migration.get()
        if step.trigger is None:
            return {"phase": rec.phase.value}
        now = CutoverState(stage_for(rec.phase, committed_switch=self._committed()))
        after = fire(now, step.trigger)
        if after.phase is not rec.phase:
            self.migration.transition(rec.version, after.phase, self.principal)
        if step.name == COMPLETE:
            # The journal's "complete" ends the switch (committed_switch becomes False).
            pass
        return {"phase": after.phase.value, "stage": after.stage.value}

    async def _hook(self, plan: Plan, step: Step) -> dict[str, Any]:
        if step.skipped:
            return {"skipped": True, "hook": step.hook}
        rec = self.migration.get()
        result = await run_hook(str(step.hook), str(step.command),
                                HookContext(rec.phase.value, rec.direction.value, plan.hash,
                                            step.name),
                                timeout_s=step.timeout_s or 120.0)
        evidence = {"hook": step.hook, "exit_code": result.exit_code,
                    "duration_s": result.duration_s, "output": result.output[-2000:]}
        if not result.ok:
            raise StepFailed(result.reason, evidence)
        return evidence

    async def _point_of_no_return(self, plan: Plan, step: Step) -> dict[str, Any]:
        if self._abort:
            raise SwitchAborted(f"{plan.kind} aborted at the point of no return")
        rec = self.migration.get()
        expected = Phase.CUTTING_OVER if plan.kind == "cutover" else Phase.ROLLING_BACK
        if rec.phase is not expected:
            raise StepFailed(f"the phase is {rec.phase.value}, not {expected.value}: someone "
                             "else changed it (run cutover repair)")
        self.journal.intent(plan.hash, plan.kind, PONR)
        after = self.journal.commit_point_of_no_return(plan.hash, plan.kind, self.migration,
                                                       rec.version, self.principal)
        self.say(f"    point of no return passed: {after.direction.value.split('-')[0]} is "
                 f"primary, replication {after.direction.value}")
        direction = _direction_of(step, after.direction)
        await self.controls.wait_direction(direction, max(60.0, self.cfg.replicate
                                                          .shutdown_grace_s * 2 + 30))
        return {"phase": after.phase.value, "direction": direction.value}

    async def _undo(self, plan: Plan, book: Runbook, failed: str, report: SwitchReport
                    ) -> None:
        names = [s.name for s in book.steps]
        if failed in names and names.index(failed) >= book.point_of_no_return \
                and not self._committed():
            # Stopped at (not past) the point of no return, which never happened:
            # undo everything before it.
            failed = names[book.point_of_no_return - 1]
        steps = book.undo_for(failed) if failed in names else []
        if not steps:
            return
        self.say(f"undoing the {plan.kind} (it failed before its point of no return)")
        for u in steps:
            try:
                # Undo steps run to the end whatever happens around them.
                await asyncio.shield(self._step(plan, book, u, report, undo=True))
            except (StepFailed, CrosswindError) as exc:
                self.say(f"  undo step {u.name} failed: {redact(str(exc))}; continuing")

    # -- evidence --------------------------------------------------------------------
    def _audit(self, action: str, outcome: str, plan_hash: str,
               evidence: Mapping[str, Any]) -> None:
        self.audit.append(f"{action}", outcome, principal=self.principal,
                          verified_by="the replication service (state directory lock)",
                          plan_hash=plan_hash, evidence=dict(evidence))

    def _store(self, report: SwitchReport) -> None:
        from crosswind.cutover.timeline import timeline_html

        reports = self.state.directory / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        stem = f"{report.kind}-{report.plan_hash[:12]}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        json_path, html_path = reports / f"{stem}.json", reports / f"{stem}.html"
        report.report_files = {"json": str(json_path), "html": str(html_path)}
        doc = report.as_dict()
        json_path.write_text(redact(json.dumps(doc, indent=2, default=str)) + "\n",
                             encoding="utf-8")
        html_path.write_text(timeline_html(doc), encoding="utf-8")
        self.state.db.execute(
            "INSERT OR REPLACE INTO live_marks(name, value, updated_at) VALUES (?, ?, ?)",
            (f"last_{report.kind}", json.dumps(doc, default=str), now_iso()))


def last_switch(state: StateStore, kind: Kind) -> dict[str, Any] | None:
    row = state.db.execute("SELECT value FROM live_marks WHERE name=?",
                           (f"last_{kind}",)).fetchone()
    return json.loads(row[0]) if row else None


def report_paths(doc: Mapping[str, Any]) -> tuple[Path, Path] | None:
    files = doc.get("report_files") or {}
    if not files:
        return None
    return Path(files["json"]), Path(files["html"])


