"""Property 30, rollback correctness, on memory stores.

A hypothesis state machine writes and deletes objects on whichever side is the
primary, cuts over and rolls back with the real runbook executor (journal,
transitions, point of no return, undo, resume) driving the real apply logic
(scheduler, workers, applier, reconcile) through a ``Controls`` of memory
stores — and kills the executor at any step it chooses (a crash right after a
step's intent is journaled). After every switch, finished, resumed or undone:
exactly one side is primary, the replication direction runs from it, the
replica holds exactly what the primary holds, and nothing written was lost.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from crosswind.config import load_config
from crosswind.cutover.executor import Executor, Say, StepFailed
from crosswind.cutover.gates import GateInputs, Kind
from crosswind.cutover.journal import StepJournal
from crosswind.cutover.plan import PlanStore
from crosswind.deleteguard import DeleteGuard
from crosswind.live.changes import Change
from crosswind.live.lag import LagTracker
from crosswind.live.objects import ObjectApplier
from crosswind.live.reconcile import STREAM as RECONCILE
from crosswind.live.reconcile import reconcile_objects
from crosswind.live.scheduler import KeyScheduler
from crosswind.live.streams import StreamState
from crosswind.live.workers import ApplyWorkers
from crosswind.metasync.ledger import Ledger
from crosswind.migration import MigrationStore, Phase
from crosswind.model import Direction, ObjectProps
from crosswind.observability.stats import SyncStats
from crosswind.state import StateStore
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.budget import ByteBudget
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import Transfer, TransferSettings
from tests.unit.cutover_fixtures import build_plan, passing_inputs
from tests.unit.test_live_apply import user_view

KEYS = ["a", "b/c", "d", "é/f"]


class Crash(BaseException):
    """The process died: nothing below this point runs (no except, no undo)."""


class CrashingJournal(StepJournal):
    """Dies right after the ``at``-th intent it writes (counting from 1)."""

    def __init__(self, state: StateStore, at: int | None) -> None:
        super().__init__(state)
        self.at = at
        self.n = 0

    def intent(self, plan_hash: str, kind: Kind, step: str,
               detail: Mapping[str, Any] | None = None) -> None:
        super().intent(plan_hash, kind, step, detail)
        self.n += 1
        if self.at is not None and self.n == self.at:
            raise Crash(step)


class MemoryControls:
    """The service's side of a switch, over memory stores: the same scheduler,
    workers and applier as the service, a reconcile for the drain."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def wait_drained(self, direction: Direction, quiet_s: float, timeout_s: float,
                           say: Say) -> dict[str, Any]:
        drift = await self.world.reconcile(direction)
        return {"final_reconcile_drift": drift}

    async def validate(self, direction: Direction, sample: int | None) -> dict[str, Any]:
        src, dst = self.world.sides(direction)
        same = user_view(src) == user_view(dst)
        return {"run_id": 1, "verdict": "pass" if same else "fail"}

    async def wait_direction(self, direction: Direction, timeout_s: float) -> None:
        if self.world.migration.get().direction is not direction:
            raise StepFailed("the phase does not stand for that direction")

    async def probe(self, direction: Direction, plan_hash: str, timeout_s: float, say: Say
                    ) -> dict[str, Any]:
        src, dst = self.world.sides(direction)
        key = f"crosswind-probe/{plan_hash[:8]}"
        await src.put(key, b"p", ObjectProps(), md5=md5_hex(b"p"))
        await self.world.apply(direction, [key])
        if key not in dst.objects:
            raise StepFailed("the probe did not arrive")
        await src.delete(key)
        await dst.delete(key)
        self.world.state.forget_verified(direction.value, key)
        return {"object_arrived_s": 0.0}


class World:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cw-p30-"))
        (self.tmp / "cw.toml").write_text(
            "[azure]\nconnection_string = \"env:CW_NEVER\"\ncontainer = \"c\"\n"
            "[aws]\nbucket = \"b\"\n[state]\ndir = \"state\"\n"
            "[cutover]\nallow_rehearsal = true\n")
        self.cfg = load_config(self.tmp / "cw.toml")
        self.state = StateStore(self.cfg.state_dir)
        self.migration = MigrationStore(self.state)
        self.azure, self.aws = MemoryStore("azure"), MemoryStore("aws")
        self.ledger = Ledger(self.state, "p30")
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()
        self.state.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def sides(self, direction: Direction) -> tuple[MemoryStore, MemoryStore]:
        return (self.azure, self.aws) if direction is Direction.AZURE_TO_AWS \
            else (self.aws, self.azure)

    @property
    def primary(self) -> MemoryStore:
        return self.sides(self.migration.get().direction)[0]

    def _workers(self, direction: Direction) -> tuple[KeyScheduler, ApplyWorkers]:
        src, dst = self.sides(direction)
        sched = KeyScheduler(backoff=lambda attempt: 0.0)
        transfer = Transfer(src, dst, TransferSettings(), ByteBudget(64 << 20), SyncStats())
        applier = ObjectApplier(src, dst, self.state, direction.value, transfer,
                                DeleteGuard(10_000, 100.0), lambda: len(dst.objects),
                                KeyFilter())
        streams = {n: StreamState(n, "objects", n, LagTracker()) for n in ("e", RECONCILE)}
        return sched, ApplyWorkers(sched, applier, self.ledger, direction.value, streams,
                                   attempts=3)

    async def _run(self, sched: KeyScheduler, workers: ApplyWorkers) -> None:
        tasks = [asyncio.create_task(workers.worker()) for _ in range(2)]
        for _ in range(10_000):
            if sched.idle:
                break
            await asyncio.sleep(0)
        sched.close()
        await asyncio.gather(*tasks)
        assert sched.idle

    async def apply(self, direction: Direction, keys: list[str]) -> None:
        sched, workers = self._workers(direction)
        for k in keys:
            sched.submit(Change("object", "upsert", k, "e", datetime.now(UTC)))
        await self._run(sched, workers)

    async def reconcile(self, direction: Direction) -> int:
        src, dst = self.sides(direction)
        sched, workers = self._workers(direction)
        res = await reconcile_objects(src, dst, self.state, direction.value, KeyFilter(),
                                      sched, drift_grace_s=0)
        await self._run(sched, workers)
        return res.drift

    def executor(self, crash_at: int | None = None) -> Executor:
        async def inputs(cfg: Any, kind: Kind, ack: int) -> GateInputs:
            return passing_inputs(kind)

        ex = Executor(self.cfg, self.state, MemoryControls(self), gate_inputs=inputs)
        ex.journal = CrashingJournal(self.state, crash_at)
        return ex


class SwitchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w = World()
        self.plans = 0
        #: what the primary must hold: everything written and not deleted since
        self.model: dict[str, tuple[bytes, dict[str, str], str | None]] = {}

    def teardown(self) -> None:
        self.w.close()

    @property
    def phase(self) -> Phase:
        return self.w.migration.get().phase

    @rule(key=st.sampled_from(KEYS), body=st.binary(max_size=16))
    def write(self, key: str, body: bytes) -> None:
        self.w.loop.run_until_complete(self.w.primary.put(
            key, body, ObjectProps(metadata={"v": body.hex()[:8]}), md5=md5_hex(body)))
        self.model[key] = (body, {"v": body.hex()[:8]}, None)
        # the change is replicated (as an event would have it brought)
        self.w.loop.run_until_complete(self.w.apply(self.w.migration.get().direction, [key]))

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        self.w.loop.run_until_complete(self.w.primary.delete(key))
        self.model.pop(key, None)
        self.w.loop.run_until_complete(self.w.apply(self.w.migration.get().direction, [key]))

    @rule(key=st.sampled_from(KEYS), body=st.binary(max_size=8))
    def write_without_event(self, key: str, body: bytes) -> None:
        """A change whose event is lost: only the drain's reconcile finds it."""
        self.w.loop.run_until_complete(self.w.primary.put(key, body, ObjectProps(),
                                                          md5=md5_hex(body)))
        self.model[key] = (body, {}, None)

    def _switch(self, kind: Kind, crash_at: int | None) -> None:
        w = self.w
        self.plans += 1
        start = Phase.PRE_CUTOVER if kind == "cutover" else Phase.POST_CUTOVER
        plan = build_plan(w.cfg, kind, replace(passing_inputs(kind), phase=start.value),
                          created_at=f"2026-12-01T12:00:{self.plans % 60:02d}.000+00:00")
        PlanStore(w.state).save(plan)
        try:
            report = w.loop.run_until_complete(
                w.executor(crash_at).run(plan.hash, rehearsal=True))
        except Crash:
            # The process died. A new one finds the journal and goes on: forward
            # past the point of no return, back before it.
            ex = w.executor()
            if ex.journal.committed_switch():
                report = w.loop.run_until_complete(ex.run(plan.hash, resume=True))
                assert report.status == "succeeded", report.error
            else:
                w.loop.run_until_complete(ex.undo_interrupted(plan.hash))
                assert self.phase is start, (kind, self.phase)
                return
        assert report.status == "succeeded", report.error

    @precondition(lambda self: self.phase is Phase.PRE_CUTOVER)
    @rule(crash_at=st.one_of(st.none(), st.integers(1, 12)))
    def cutover(self, crash_at: int | None) -> None:
        self._switch("cutover", crash_at)

    @precondition(lambda self: self.phase is Phase.POST_CUTOVER)
    @rule(crash_at=st.one_of(st.none(), st.integers(1, 12)))
    def rollback(self, crash_at: int | None) -> None:
        self._switch("rollback", crash_at)

    @invariant()
    def at_rest_with_one_primary_holding_everything_written(self) -> None:
        # Between rules every switch has finished or been undone: one primary, and
        # it holds exactly what was written on whichever side was primary then.
        assert self.phase in (Phase.PRE_CUTOVER, Phase.POST_CUTOVER), self.phase
        journal = StepJournal(self.w.state)
        last = journal.last_plan()
        assert last is None or journal.interrupted(last[0]) is None
        assert not journal.committed_switch()
        assert user_view(self.w.primary) == self.model

    def _drained_equal(self) -> None:
        w = self.w
        direction = w.migration.get().direction
        w.loop.run_until_complete(w.reconcile(direction))
        src, dst = w.sides(direction)
        assert user_view(dst) == user_view(src)

    @rule()
    def check_replica(self) -> None:
        self._drained_equal()


TestSwitchesUnderCrashes = SwitchMachine.TestCase
TestSwitchesUnderCrashes.settings = settings(max_examples=25, stateful_step_count=12,
                                             deadline=None)
