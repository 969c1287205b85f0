"""The cutover transition table: a hypothesis state machine fires random
triggers (legal and illegal) and checks the table's promises after each."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from crosswind.cutover.transitions import (
    STAGES,
    TRANSITIONS,
    CutoverState,
    IllegalTransition,
    Stage,
    Trigger,
    allowed,
    fire,
    stage_for,
)
from crosswind.migration import Phase
from crosswind.model import Direction

# The persisted phase may only move along the cycle, or back by an abort.
PHASE_MOVES = {
    (Phase.PRE_CUTOVER, Phase.CUTTING_OVER), (Phase.CUTTING_OVER, Phase.PRE_CUTOVER),
    (Phase.CUTTING_OVER, Phase.POST_CUTOVER), (Phase.POST_CUTOVER, Phase.ROLLING_BACK),
    (Phase.ROLLING_BACK, Phase.POST_CUTOVER), (Phase.ROLLING_BACK, Phase.PRE_CUTOVER),
}


class SwitchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = CutoverState()
        # moves since the switch under way began, for the undo promise
        self.since_rest: list[Trigger] = []

    @rule(trigger=st.sampled_from(list(Trigger)),
          step=st.sampled_from([None, "freeze_azure", "wait_drained", "switch"]))
    def fire_any(self, trigger: Trigger, step: str | None) -> None:
        before = self.state
        legal = trigger in allowed(before) and ((step is not None)
                                                == (trigger is Trigger.STEP_FAILED))
        try:
            after = fire(before, trigger, step=step)
        except IllegalTransition as exc:
            assert not legal, f"{trigger} refused in {before}: {exc}"
            msg = str(exc)
            assert "\n" not in msg and trigger.value in msg
            assert self.state == before  # a refusal changes nothing
            return
        assert legal, f"{trigger} accepted in {before}"
        if after.phase is not before.phase:
            assert (before.phase, after.phase) in PHASE_MOVES
        if trigger is Trigger.POINT_OF_NO_RETURN:
            # The primary and the direction flip in the one move, never separately.
            assert after.primary != before.primary and after.committed
        elif trigger not in (Trigger.COMPLETE_CUTOVER, Trigger.COMPLETE_ROLLBACK):
            assert after.primary == before.primary
        # Before the point of no return, every move but that one has its undo.
        if not before.committed and before.info.in_progress \
                and trigger is not Trigger.POINT_OF_NO_RETURN:
            assert any(t.undo is not None or t.trigger in (Trigger.ABORT, Trigger.RETRY)
                       for t in TRANSITIONS if t.trigger is trigger and t.source is before.stage)
        self.state = after
        if not after.info.in_progress:
            self.since_rest = []
        elif trigger in (Trigger.START_CUTOVER, Trigger.START_ROLLBACK):
            self.since_rest = [trigger]  # a new switch (a rollback of an unfinished cutover)
        else:
            self.since_rest.append(trigger)

    @rule()
    def abort_is_the_way_back_before_the_point_of_no_return(self) -> None:
        s = self.state
        if s.undoable:
            assert Trigger.ABORT in allowed(s)
            back = fire(s, Trigger.ABORT)
            # Undoing returns to the rest state the switch started from, same primary.
            assert not back.info.in_progress and back.primary == s.primary
        elif s.committed:
            with pytest.raises(IllegalTransition, match="point of no return"):
                fire(s, Trigger.ABORT)

    @invariant()
    def exactly_one_primary_and_replication_follows_it(self) -> None:
        s = self.state
        assert s.primary in ("azure", "aws") and s.replica != s.primary
        assert s.direction.source_side == s.primary
        # What the service reads from the persisted phase agrees with the stage.
        assert s.phase.direction is s.direction

    @invariant()
    def everything_since_the_switch_began_can_be_undone_until_the_point_of_no_return(
            self) -> None:
        if self.state.undoable:
            undone_by = {t.trigger: t.undo for t in TRANSITIONS}
            for trig in self.since_rest:
                assert trig is Trigger.RETRY or undone_by[trig] is not None

    @invariant()
    def a_failed_step_holds_the_switch(self) -> None:
        s = self.state
        if s.failed_step is not None:
            assert s.info.in_progress
            assert Trigger.POINT_OF_NO_RETURN not in allowed(s)
            assert Trigger.RETRY in allowed(s)


TestSwitchMachine = SwitchMachine.TestCase


def test_every_stage_is_reachable_and_a_full_cycle_returns_home() -> None:
    s = CutoverState()
    seen = {s.stage}
    for trig in (Trigger.START_CUTOVER, Trigger.POINT_OF_NO_RETURN, Trigger.COMPLETE_CUTOVER,
                 Trigger.START_ROLLBACK, Trigger.POINT_OF_NO_RETURN,
                 Trigger.COMPLETE_ROLLBACK):
        s = fire(s, trig)
        seen.add(s.stage)
    assert s == CutoverState() and seen == set(Stage)


def test_primary_per_stage() -> None:
    assert {st: i.primary for st, i in STAGES.items()} == {
        Stage.PRE_CUTOVER: "azure", Stage.CUTTING_OVER: "azure",
        Stage.CUTOVER_FINISHING: "aws", Stage.POST_CUTOVER: "aws",
        Stage.ROLLING_BACK: "aws", Stage.ROLLBACK_FINISHING: "azure"}
    assert CutoverState(Stage.CUTTING_OVER).direction is Direction.AZURE_TO_AWS


def test_refusals_are_one_line_and_say_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition, match=r"^start_rollback is not allowed in "
                       r"pre_cutover \(allowed: start_cutover\)$"):
        fire(CutoverState(), Trigger.START_ROLLBACK)
    failed = fire(CutoverState(Stage.CUTTING_OVER), Trigger.STEP_FAILED, step="freeze_azure")
    with pytest.raises(IllegalTransition, match="'freeze_azure' failed; retry it first"):
        fire(failed, Trigger.POINT_OF_NO_RETURN)
    with pytest.raises(IllegalTransition, match="is not a trigger"):
        fire(CutoverState(), "jump")
    with pytest.raises(IllegalTransition, match="needs the name"):
        fire(CutoverState(Stage.CUTTING_OVER), Trigger.STEP_FAILED)
    with pytest.raises(IllegalTransition, match="resume it or roll back"):
        fire(CutoverState(Stage.CUTOVER_FINISHING), Trigger.ABORT)


def test_a_failed_finishing_cutover_can_roll_back_but_not_abort() -> None:
    s = fire(CutoverState(Stage.CUTOVER_FINISHING), Trigger.STEP_FAILED, step="prove_reverse")
    assert Trigger.ABORT not in allowed(s)
    assert fire(s, Trigger.START_ROLLBACK) == CutoverState(Stage.ROLLING_BACK)


def test_stage_for_the_persisted_phase() -> None:
    assert stage_for(Phase.POST_CUTOVER) is Stage.POST_CUTOVER
    assert stage_for(Phase.POST_CUTOVER, committed_switch=True) is Stage.CUTOVER_FINISHING
    assert stage_for(Phase.PRE_CUTOVER, committed_switch=True) is Stage.ROLLBACK_FINISHING
    for st_ in Stage:
        info = STAGES[st_]
        assert stage_for(info.phase, committed_switch=info.committed) is st_
    with pytest.raises(IllegalTransition, match="repair"):
        stage_for(Phase.CUTTING_OVER, committed_switch=True)
