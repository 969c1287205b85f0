"""The step journal: intent and outcome per step, a crash mid-step found, and the
point of no return journaled with the phase in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from crosswind.cutover.journal import StepJournal
from crosswind.cutover.transitions import Stage, stage_for
from crosswind.migration import ConcurrentUpdate, MigrationStore, Phase
from crosswind.state import StateStore

H = "ab" * 32


def test_progress_and_an_interrupted_step(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s")
    j = StepJournal(state)
    j.intent(H, "cutover", "check_gates")
    j.outcome(H, "cutover", "check_gates", "ok", {"gates": 6})
    j.intent(H, "cutover", "freeze_azure", {"password": "hunter2hunter2"})
    # the process dies here: an intent without an outcome
    again = StepJournal(StateStore(tmp_path / "s"))
    assert again.interrupted(H) == "freeze_azure"
    steps = [p.as_dict() for p in again.progress(H)]
    assert [s["name"] for s in steps] == ["check_gates", "freeze_azure"]
    assert steps[0]["outcome"] == "ok" and steps[1]["finished_at"] is None
    assert "hunter2" not in str(again.entries(H))  # details are cleaned like audit evidence
    j.outcome(H, "cutover", "freeze_azure", "failed")
    assert j.interrupted(H) is None


def test_the_point_of_no_return_and_the_phase_move_together(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s")
    m, j = MigrationStore(state), StepJournal(state)
    rec = m.transition(0, Phase.CUTTING_OVER)
    assert not j.committed_switch()
    # A stale version: neither the journal entry nor the phase change happens.
    with pytest.raises(ConcurrentUpdate):
        j.commit_point_of_no_return(H, "cutover", m, rec.version - 1)
    assert j.entries(H) == [] and m.get().phase is Phase.CUTTING_OVER
    after = j.commit_point_of_no_return(H, "cutover", m, rec.version)
    assert after.phase is Phase.POST_CUTOVER and j.committed_switch()
    assert stage_for(m.get().phase, committed_switch=j.committed_switch()) \
        is Stage.CUTOVER_FINISHING
    j.outcome(H, "cutover", "complete", "ok")
    assert not j.committed_switch()
    assert stage_for(m.get().phase, committed_switch=False) is Stage.POST_CUTOVER
