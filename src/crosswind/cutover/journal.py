"""The step journal: what the executor is about to do, and how it went.

Before a step acts, its intent is recorded; after, its outcome. A step with an
intent and no outcome is one a crash interrupted: the executor resumes it
(before the point of no return it may instead undo), never leaves it
half-done. The point of no return is the journal entry that also sets the
migration phase, in one state-store transaction, so the journal and the phase
can never disagree about which side is primary.

Read by ``cutover status`` (each step's start, finish and outcome) and by
``transitions.stage_for`` (``committed_switch``: a switch passed its point of
no return and has not completed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from crosswind.audit import clean
from crosswind.cutover.gates import Kind
from crosswind.migration import MigrationRecord, MigrationStore, Phase
from crosswind.state import StateStore, now_iso

Event = Literal["intent", "outcome"]
Outcome = Literal["ok", "failed", "skipped", "undone"]
PONR = "point_of_no_return"
COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    plan_hash: str
    kind: Kind
    step: str
    event: Event
    outcome: Outcome | None
    at: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StepProgress:
    step: str
    started_at: str | None
    finished_at: str | None
    outcome: Outcome | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.step, "started_at": self.started_at,
                "finished_at": self.finished_at, "outcome": self.outcome}


class StepJournal:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db

    def _insert(self, plan_hash: str, kind: Kind, step: str, event: Event,
                outcome: Outcome | None, detail: Mapping[str, Any] | None) -> int:
        cur = self.db.execute(
            "INSERT INTO cutover_journal(plan_hash, kind, step, event, outcome, at, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (plan_hash, kind, step, event, outcome, now_iso(),
             json.dumps(clean(dict(detail or {})))))
        return int(cur.lastrowid or 0)

    def intent(self, plan_hash: str, kind: Kind, step: str,
               detail: Mapping[str, Any] | None = None) -> None:
        self._insert(plan_hash, kind, step, "intent", None, detail)

    def outcome(self, plan_hash: str, kind: Kind, step: str, outcome: Outcome,
                detail: Mapping[str, Any] | None = None) -> None:
        self._insert(plan_hash, kind, step, "outcome", outcome, detail)

    def commit_point_of_no_return(self, plan_hash: str, kind: Kind,
                                  migration: MigrationStore, expected_version: int,
                                  by: str | None = None) -> MigrationRecord:
        """Journal the point of no return and set the phase the other side's
        primacy stands for, in one transaction: both happen or neither does (a
        concurrent writer of the phase makes it ``ConcurrentUpdate``)."""
        phase = Phase.POST_CUTOVER if kind == "cutover" else Phase.PRE_CUTOVER
        with self.state.tx():
            self._insert(plan_hash, kind, PONR, "outcome", "ok", {"phase": phase.value})
            return migration.transition(expected_version, phase, by)

    def entries(self, plan_hash: str) -> list[JournalEntry]:
        rows = self.db.execute(
            "SELECT seq, plan_hash, kind, step, event, outcome, at, detail FROM"
            " cutover_journal WHERE plan_hash=? ORDER BY seq", (plan_hash,)).fetchall()
        return [JournalEntry(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6],
                             json.loads(r[7] or "{}")) for r in rows]

    def progress(self, plan_hash: str) -> list[StepProgress]:
        """Each step's latest start, finish and outcome, in the order first started."""
        seen: dict[str, StepProgress] = {}
        for e in self.entries(plan_hash):
            p = seen.get(e.step, StepProgress(e.step, None, None, None))
            if e.event == "intent":
                p = StepProgress(e.step, e.at, None, None)
            else:
                p = StepProgress(e.step, p.started_at or e.at, e.at, e.outcome)
            seen[e.step] = p
        return list(seen.values())

    def interrupted(self, plan_hash: str) -> str | None:
        """The step a crash cut off (an intent with no outcome after it)."""
        last = [p for p in self.progress(plan_hash) if p.started_at and not p.finished_at]
        return last[-1].step if last else None

    def last_plan(self) -> tuple[str, Kind] | None:
        row = self.db.execute("SELECT plan_hash, kind FROM cutover_journal ORDER BY seq DESC"
                              " LIMIT 1").fetchone()
        return None if row is None else (str(row[0]), row[1])

    def committed_switch(self) -> bool:
        """The switch run last passed its point of no return and has not completed."""
        last = self.last_plan()
        if last is None:
            return False
        done = {(p.step, p.outcome) for p in self.progress(last[0])}
        return (PONR, "ok") in done and (COMPLETE, "ok") not in done
