"""The cutover's transition table: which switch states exist, which triggers move
between them, which side is the primary in each, and which moves can be undone.

Pure data and pure functions, no I/O. The persisted migration phase
(``crosswind.migration.Phase``) is what the replication service reads to know
which way to replicate; a ``Stage`` refines it with what the phase alone cannot
say: whether a switch that is under way has passed its point of no return.

    stage               phase         primary  replication   before the point of no return?
    pre_cutover         pre_cutover   azure    azure-to-aws  (at rest)
    cutting_over        cutting_over  azure    azure-to-aws  yes: abort undoes it
    cutover_finishing   post_cutover  aws      aws-to-azure  no: resume, or roll back
    post_cutover        post_cutover  aws      aws-to-azure  (at rest)
    rolling_back        rolling_back  aws      aws-to-azure  yes: abort undoes it
    rollback_finishing  pre_cutover   azure    azure-to-aws  no: resume only

The point of no return flips the primary and the replication direction in the
same move (the executor journals it and sets the phase in one state-store
transaction), so there is never a moment with no primary or two, and the
direction always runs from the primary to the replica.

A failed step is a marker on the state (``failed_step``), not a stage of its
own: the stage still says where the switch stands, the marker says that it is
stopped there until the step is retried (``retry``) or, before the point of no
return, the switch is undone (``abort``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from crosswind.errors import CrosswindError
from crosswind.migration import Phase
from crosswind.model import Direction

Side = Literal["azure", "aws"]


class Stage(StrEnum):
    PRE_CUTOVER = "pre_cutover"
    CUTTING_OVER = "cutting_over"
    CUTOVER_FINISHING = "cutover_finishing"
    POST_CUTOVER = "post_cutover"
    ROLLING_BACK = "rolling_back"
    ROLLBACK_FINISHING = "rollback_finishing"


class Trigger(StrEnum):
    START_CUTOVER = "start_cutover"
    #: the journal entry after which the way back is a rollback, not an undo
    POINT_OF_NO_RETURN = "point_of_no_return"
    COMPLETE_CUTOVER = "complete_cutover"
    START_ROLLBACK = "start_rollback"
    COMPLETE_ROLLBACK = "complete_rollback"
    #: undo a switch that has not passed its point of no return
    ABORT = "abort"
    #: a step failed: the switch stops where it is
    STEP_FAILED = "step_failed"
    #: try the failed step again (resume)
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class StageInfo:
    phase: Phase
    primary: Side
    #: a switch is under way (cutover or rollback)
    in_progress: bool
    #: the switch under way has passed its point of no return
    committed: bool


STAGES: Mapping[Stage, StageInfo] = MappingProxyType({
    Stage.PRE_CUTOVER: StageInfo(Phase.PRE_CUTOVER, "azure", False, False),
    Stage.CUTTING_OVER: StageInfo(Phase.CUTTING_OVER, "azure", True, False),
    Stage.CUTOVER_FINISHING: StageInfo(Phase.POST_CUTOVER, "aws", True, True),
    Stage.POST_CUTOVER: StageInfo(Phase.POST_CUTOVER, "aws", False, False),
    Stage.ROLLING_BACK: StageInfo(Phase.ROLLING_BACK, "aws", True, False),
    Stage.ROLLBACK_FINISHING: StageInfo(Phase.PRE_CUTOVER, "azure", True, True),
})


@dataclass(frozen=True, slots=True)
class Transition:
    trigger: Trigger
    source: Stage
    #: None: the stage stays (only the failed-step marker changes)
    target: Stage | None
    #: the trigger that undoes this move, None when it cannot be undone
    undo: Trigger | None
    #: legal only when no step has failed (True), only when one has (False), or
    #: either way (None)
    needs_clean: bool | None
    does: str


def _t(trigger: Trigger, source: Stage, target: Stage | None, undo: Trigger | None,
       needs_clean: bool | None, does: str) -> Transition:
    return Transition(trigger, source, target, undo, needs_clean, does)


_IN_PROGRESS = [s for s, i in STAGES.items() if i.in_progress]

TRANSITIONS: tuple[Transition, ...] = (
    _t(Trigger.START_CUTOVER, Stage.PRE_CUTOVER, Stage.CUTTING_OVER, Trigger.ABORT, True,
       "begin the cutover; Azure stays primary while its writers are frozen and drained"),
    _t(Trigger.ABORT, Stage.CUTTING_OVER, Stage.PRE_CUTOVER, None, None,
       "undo a cutover before its point of no return"),
    _t(Trigger.POINT_OF_NO_RETURN, Stage.CUTTING_OVER, Stage.CUTOVER_FINISHING, None, True,
       "journal the point of no return: AWS is primary, replication runs aws-to-azure"),
    _t(Trigger.COMPLETE_CUTOVER, Stage.CUTOVER_FINISHING, Stage.POST_CUTOVER, None, True,
       "the cutover is done: reverse replication proven, the application on AWS"),
    _t(Trigger.START_ROLLBACK, Stage.POST_CUTOVER, Stage.ROLLING_BACK, Trigger.ABORT, True,
       "begin a rollback; AWS stays primary while its writers are frozen and drained"),
    # After the point of no return the way back to Azure is a rollback, also when a
    # finishing step failed (the reverse probe, the switch hook).
    _t(Trigger.START_ROLLBACK, Stage.CUTOVER_FINISHING, Stage.ROLLING_BACK, Trigger.ABORT,
       None, "roll back a cutover that passed its point of no return but did not finish"),
    _t(Trigger.ABORT, Stage.ROLLING_BACK, Stage.POST_CUTOVER, None, None,
       "undo a rollback before its point of no return"),
    _t(Trigger.POINT_OF_NO_RETURN, Stage.ROLLING_BACK, Stage.ROLLBACK_FINISHING, None, True,
       "journal the rollback's point of no return: Azure is primary, replication runs "
       "azure-to-aws"),
    _t(Trigger.COMPLETE_ROLLBACK, Stage.ROLLBACK_FINISHING, Stage.PRE_CUTOVER, None, True,
       "the rollback is done: forward replication proven, the application on Azure"),
    *(_t(Trigger.STEP_FAILED, s, None, Trigger.RETRY, True,
         "a step failed: stop here until it is retried or the switch is undone")
      for s in _IN_PROGRESS),
    *(_t(Trigger.RETRY, s, None, None, False, "try the failed step again")
      for s in _IN_PROGRESS),
)


class IllegalTransition(CrosswindError):
    """A trigger the transition table does not allow in the current state."""

    exit_code = 5


@dataclass(frozen=True, slots=True)
class CutoverState:
    stage: Stage = Stage.PRE_CUTOVER
    #: the step that failed and holds the switch, if any
    failed_step: str | None = None

    @property
    def info(self) -> StageInfo:
        return STAGES[self.stage]

    @property
    def phase(self) -> Phase:
        return self.info.phase

    @property
    def primary(self) -> Side:
        return self.info.primary

    @property
    def replica(self) -> Side:
        return "aws" if self.primary == "azure" else "azure"

    @property
    def direction(self) -> Direction:
        """Replication always runs from the primary to the replica."""
        return Direction.AZURE_TO_AWS if self.primary == "azure" else Direction.AWS_TO_AZURE

    @property
    def committed(self) -> bool:
        return self.info.committed

    @property
    def undoable(self) -> bool:
        """A switch is under way and can still be undone (``abort``)."""
        return self.info.in_progress and not self.info.committed

    def describe(self) -> str:
        failed = f", stopped at failed step {self.failed_step!r}" if self.failed_step else ""
        return f"{self.stage.value}{failed}"


def transitions_from(state: CutoverState) -> list[Transition]:
    """The moves the table allows from ``state``."""
    failed = state.failed_step is not None
    return [t for t in TRANSITIONS if t.source is state.stage
            and (t.needs_clean is None or t.needs_clean is not failed)]


def allowed(state: CutoverState) -> list[Trigger]:
    return sorted({t.trigger for t in transitions_from(state)})


def fire(state: CutoverState, trigger: Trigger | str, *, step: str | None = None
         ) -> CutoverState:
    """The state after ``trigger``, or ``IllegalTransition`` with a one-line reason.
    ``step`` names the failed step (``step_failed`` only)."""
    try:
        trig = Trigger(trigger)
    except ValueError:
        known = ", ".join(t.value for t in Trigger)
        raise IllegalTransition(f"{trigger!r} is not a trigger (known: {known})") from None
    match = [t for t in transitions_from(state) if t.trigger is trig]
    if not match:
        raise IllegalTransition(_refusal(state, trig))
    t = match[0]
    if trig is Trigger.STEP_FAILED:
        if not step:
            raise IllegalTransition("step_failed needs the name of the step that failed")
        return replace(state, failed_step=step)
    if step is not None:
        raise IllegalTransition(f"{trig.value} takes no step name")
    if t.target is None:  # retry
        return replace(state, failed_step=None)
    return CutoverState(t.target)


def _refusal(state: CutoverState, trig: Trigger) -> str:
    options = ", ".join(a.value for a in allowed(state)) or "nothing"
    why = ""
    if trig is Trigger.ABORT and state.committed:
        why = ": the switch is past its point of no return; resume it"
        if state.stage is Stage.CUTOVER_FINISHING:
            why += " or roll back"
    elif state.failed_step is not None and any(t.trigger is trig for t in TRANSITIONS
                                               if t.source is state.stage):
        why = f": step {state.failed_step!r} failed; retry it first"
    elif trig is Trigger.RETRY and state.failed_step is None:
        why = ": no step has failed"
    return (f"{trig.value} is not allowed in {state.describe()}{why} "
            f"(allowed: {options})")


def stage_for(phase: Phase, *, committed_switch: bool = False) -> Stage:
    """The stage a persisted phase stands for. ``committed_switch`` is what the
    executor's journal says: a switch passed its point of no return and has not
    completed (the phase alone cannot tell ``post_cutover`` from a cutover still
    finishing)."""
    if not committed_switch:
        return {Phase.PRE_CUTOVER: Stage.PRE_CUTOVER, Phase.CUTTING_OVER: Stage.CUTTING_OVER,
                Phase.POST_CUTOVER: Stage.POST_CUTOVER,
                Phase.ROLLING_BACK: Stage.ROLLING_BACK}[phase]
    if phase is Phase.POST_CUTOVER:
        return Stage.CUTOVER_FINISHING
    if phase is Phase.PRE_CUTOVER:
        return Stage.ROLLBACK_FINISHING
    raise IllegalTransition(f"phase {phase.value} cannot be past a point of no return "
                            "(the journal and the phase disagree: run cutover repair)")
