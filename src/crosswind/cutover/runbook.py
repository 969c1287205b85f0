"""The cutover and rollback runbooks as data: step descriptors generated from
the config.

This list is what ``cutover plan`` prints, what the plan hash covers and what
the executor runs, so the printout and the real run cannot differ (the Vitess
habit: the dry run drives the same sequence). A step says what it does in one
line, which action the executor takes, which hook if any, its timeout, the
transition it fires when it succeeds, and the name of the undo step that
reverses it. Steps before the point of no return that change the world all
have an undo; after it there is no undo, only resume (or, after a cutover, a
rollback).

A hook step whose command is not configured stays in the list, marked
skipped, so the printout shows that nothing will stop the writers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from crosswind.config import CutoverConfig, ValidationConfig
from crosswind.cutover.gates import Kind
from crosswind.cutover.transitions import Trigger
from crosswind.errors import CrosswindError
from crosswind.model import Direction

StepAction = Literal["check_gates", "transition", "hook", "wait_drained", "validate",
                     "point_of_no_return", "probe"]
#: config keys of the hooks
HookName = Literal["freeze_command", "unfreeze_command", "switch_command",
                   "unswitch_command", "aws_freeze_command", "aws_unfreeze_command"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    #: one line: what the step does
    does: str
    action: StepAction
    #: the hook's config key and its command ("" = not configured: skipped)
    hook: HookName | None = None
    command: str | None = None
    #: the name of the undo step that reverses this one (None: nothing to undo)
    undo: str | None = None
    point_of_no_return: bool = False
    #: the step is abandoned (and fails) after this long
    timeout_s: float | None = None
    #: the step changes something outside crosswind's own bookkeeping, or the phase
    changes_world: bool = False
    #: the transition fired when the step succeeds
    trigger: Trigger | None = None
    #: what the action needs: direction, quiet period, validation targets, ...
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def skipped(self) -> bool:
        return self.action == "hook" and not (self.command or "").strip()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "does": self.does, "action": self.action,
                "hook": self.hook, "command": self.command, "skipped": self.skipped,
                "undo": self.undo, "point_of_no_return": self.point_of_no_return,
                "timeout_s": self.timeout_s, "changes_world": self.changes_world,
                "trigger": None if self.trigger is None else self.trigger.value,
                "params": dict(self.params)}


class UnknownStep(CrosswindError):
    pass


@dataclass(frozen=True, slots=True)
class Runbook:
    kind: Kind
    steps: tuple[Step, ...]
    #: the steps that undo others, run only when a switch fails before its point of
    #: no return
    undo_steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        for s in (*self.steps, *self.undo_steps):
            if s.name == name:
                return s
        raise UnknownStep(f"the {self.kind} runbook has no step {name!r}")

    def index(self, name: str) -> int:
        for n, s in enumerate(self.steps):
            if s.name == name:
                return n
        raise UnknownStep(f"the {self.kind} runbook has no step {name!r}")

    @property
    def point_of_no_return(self) -> int:
        return next(n for n, s in enumerate(self.steps) if s.point_of_no_return)

    def undo_for(self, failed: str) -> list[Step]:
        """The undo steps after ``failed`` failed, in the order to run them: the
        failed step's own undo first (a hook that timed out may have half acted;
        undo hooks must be safe to run on a world they did not change), then the
        undo of every earlier step, latest first. Empty past the point of no
        return: there the way out is forward."""
        at = self.index(failed)
        if at >= self.point_of_no_return:
            return []
        return [self.step(s.undo) for s in reversed(self.steps[: at + 1]) if s.undo]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "steps": [s.as_dict() for s in self.steps],
                "undo_steps": [s.as_dict() for s in self.undo_steps]}


def _hook(name: str, hook: HookName, cfg: CutoverConfig, does: str, *,
          undo: str | None = None) -> Step:
    command = str(getattr(cfg, hook))
    if not command.strip():
        does += f" (no {hook} configured: skipped)"
    return Step(name, does, "hook", hook=hook, command=command, undo=undo,
                timeout_s=cfg.hook_timeout_s, changes_world=True)


def _validation_params(direction: Direction, v: ValidationConfig) -> dict[str, Any]:
    return {"direction": direction.value, "sample_size": v.sample_size,
            "completeness_target": v.completeness_target,
            "pass_rate_target": v.pass_rate_target}


def cutover_runbook(cfg: CutoverConfig, validation: ValidationConfig) -> Runbook:
    fwd, rev = Direction.AZURE_TO_AWS, Direction.AWS_TO_AZURE
    steps = (
        Step("check_gates", "evaluate every gate again; any required gate failing stops "
             "the cutover", "check_gates", timeout_s=cfg.gates_timeout_s),
        Step("begin", "set the phase cutting_over (Azure stays primary, replication "
             "azure-to-aws)", "transition", undo="abort_cutover", changes_world=True,
             trigger=Trigger.START_CUTOVER),
        _hook("freeze_azure", "freeze_command", cfg, "stop the application's writers on "
              "Azure", undo="unfreeze_azure"),
        Step("wait_drained", f"wait until Azure is quiet (no new change for "
             f"{cfg.quiet_period_s:g}s) and every change is applied to AWS",
             "wait_drained", timeout_s=cfg.drain_timeout_s,
             params={"direction": fwd.value, "quiet_period_s": cfg.quiet_period_s}),
        Step("final_validation", f"validate {fwd.value} (sample of "
             f"{validation.sample_size}, completeness ≥ {validation.completeness_target:g} %, "
             f"pass rate ≥ {validation.pass_rate_target:g} %)", "validate",
             timeout_s=cfg.validation_timeout_s, params=_validation_params(fwd, validation)),
        Step("point_of_no_return", "journal the point of no return and set the phase "
             "post_cutover in one transaction: AWS is primary, replication aws-to-azure",
             "point_of_no_return", point_of_no_return=True, changes_world=True,
             trigger=Trigger.POINT_OF_NO_RETURN, params={"direction": rev.value}),
        Step("prove_reverse", "write a probe object on AWS and wait until replication "
             "brings it to Azure (then remove it)", "probe", timeout_s=cfg.probe_timeout_s,
             params={"direction": rev.value}),
        _hook("unfreeze_aws", "aws_unfreeze_command", cfg, "let the application's writers "
              "in on AWS"),
        _hook("switch", "switch_command", cfg, "point the application at AWS"),
        Step("complete", "record the cutover as complete (phase post_cutover)", "transition",
             trigger=Trigger.COMPLETE_CUTOVER),
    )
    undo = (
        Step("abort_cutover", "set the phase back to pre_cutover", "transition",
             changes_world=True, trigger=Trigger.ABORT),
        _hook("unfreeze_azure", "unfreeze_command", cfg, "let the application's writers "
              "in on Azure again"),
    )
    return Runbook("cutover", steps, undo)


def rollback_runbook(cfg: CutoverConfig, validation: ValidationConfig) -> Runbook:
    rev, fwd = Direction.AWS_TO_AZURE, Direction.AZURE_TO_AWS
    steps = (
        Step("check_gates", "evaluate the gates; only the reverse replication running and "
             "the azure-to-aws preflight stop a rollback", "check_gates",
             timeout_s=cfg.gates_timeout_s),
        Step("begin", "set the phase rolling_back (AWS stays primary, replication "
             "aws-to-azure)", "transition", undo="abort_rollback", changes_world=True,
             trigger=Trigger.START_ROLLBACK),
        _hook("freeze_aws", "aws_freeze_command", cfg, "stop the application's writers on "
              "AWS", undo="unfreeze_aws"),
        Step("wait_drained", f"wait until AWS is quiet (no new change for "
             f"{cfg.quiet_period_s:g}s) and every change is applied to Azure",
             "wait_drained", timeout_s=cfg.drain_timeout_s,
             params={"direction": rev.value, "quiet_period_s": cfg.quiet_period_s}),
        Step("final_validation", f"validate {rev.value} (sample of "
             f"{validation.sample_size}, completeness ≥ {validation.completeness_target:g} %, "
             f"pass rate ≥ {validation.pass_rate_target:g} %)", "validate",
             timeout_s=cfg.validation_timeout_s, params=_validation_params(rev, validation)),
        Step("point_of_no_return", "journal the rollback's point of no return and set the "
             "phase pre_cutover in one transaction: Azure is primary, replication "
             "azure-to-aws", "point_of_no_return", point_of_no_return=True,
             changes_world=True, trigger=Trigger.POINT_OF_NO_RETURN,
             params={"direction": fwd.value}),
        Step("prove_forward", "write a probe object on Azure and wait until replication "
             "brings it to AWS (then remove it)", "probe", timeout_s=cfg.probe_timeout_s,
             params={"direction": fwd.value}),
        _hook("unfreeze_azure", "unfreeze_command", cfg, "let the application's writers "
              "in on Azure again"),
        _hook("unswitch", "unswitch_command", cfg, "point the application back at Azure"),
        Step("complete", "record the rollback as complete (phase pre_cutover)", "transition",
             trigger=Trigger.COMPLETE_ROLLBACK),
    )
    undo = (
        Step("abort_rollback", "set the phase back to post_cutover", "transition",
             changes_world=True, trigger=Trigger.ABORT),
        _hook("unfreeze_aws", "aws_unfreeze_command", cfg, "let the application's writers "
              "in on AWS again"),
    )
    return Runbook("rollback", steps, undo)


def runbook_for(kind: Kind, cfg: CutoverConfig, validation: ValidationConfig) -> Runbook:
    return (cutover_runbook if kind == "cutover" else rollback_runbook)(cfg, validation)
