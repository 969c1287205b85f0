"""The replication service's side of a cutover or rollback: the ``Controls``
the runbook executor (``cutover/executor.py``) asks for, over whichever epoch
(direction) the service is running at the moment.

* ``wait_drained``: the primary quiet (no new change seen for the quiet period:
  no event received, no row written or changed), then one last reconcile of
  objects and rows, and everything it and the events brought applied. The final
  reconcile is what makes "drained" mean "the replica holds what the primary
  holds", whether or not every event arrived.
* ``validate``: a sampled validation of the direction (``validate/``), its report.
* ``wait_direction``: the service has flipped and runs the new direction.
* ``probe``: an object written on the new primary must arrive on the replica
  (its event path first; on an emulator that emits no events, handed to the
  scheduler after a wait, and the evidence says which), then is removed from
  both sides; with rows configured, a row does the same round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crosswind.cutover.executor import Say, StepFailed
from crosswind.entities import Edm, Entity, Prop, doc_id
from crosswind.errors import CrosswindError, NotFound
from crosswind.live.changes import Change
from crosswind.live.scheduler import EVENT
from crosswind.model import Direction, ObjectProps

if TYPE_CHECKING:
    from crosswind.live.service import Epoch, Replicator

PROBE_DIR = "crosswind-probe/"


class ServiceControls:
    def __init__(self, service: Replicator) -> None:
        self.service = service

    def _epoch(self, direction: Direction) -> Epoch:
        epoch = self.service.epoch
        if epoch is None or epoch.direction is not direction or not epoch.ready:
            raise StepFailed(f"the service does not replicate {direction.value} right now")
        return epoch

    async def wait_direction(self, direction: Direction, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            e = self.service.epoch
            if e is not None and e.direction is direction and e.ready:
                return
            await asyncio.sleep(0.2)
        raise StepFailed(f"the service did not start replicating {direction.value} within "
                         f"{timeout_s:.0f}s")

    async def wait_drained(self, direction: Direction, quiet_s: float, timeout_s: float,
                           say: Say) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        epoch = self._epoch(direction)
        t0 = time.monotonic()
        while True:  # 1. quiet: no new change for quiet_s
            quiet_for = time.monotonic() - epoch.last_change_seen
            if quiet_for >= quiet_s and epoch.is_drained():
                break
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"not quiet and drained within {timeout_s:g}s: {epoch.scheduler.pending} "
                    f"keys pending, last change {quiet_for:.1f}s ago", epoch.drain_evidence())
            await asyncio.sleep(0.2)
        say(f"quiet for {quiet_s:g}s and drained after {time.monotonic() - t0:.1f}s; "
            "final reconcile")
        drift = await epoch.final_reconcile(max(1.0, deadline - time.monotonic()))
        while not epoch.is_drained():  # 2. what the reconcile found, applied
            if time.monotonic() > deadline:
                raise StepFailed(f"the final reconcile's {drift} findings were not applied "
                                 f"within {timeout_s:g}s", epoch.drain_evidence())
            await asyncio.sleep(0.2)
        ev = epoch.drain_evidence()
        ev.update({"final_reconcile_drift": drift,
                   "waited_s": round(time.monotonic() - t0, 3)})
        say(f"drained: final reconcile found {drift} change(s) the events had not brought")
        return ev

    async def validate(self, direction: Direction, sample: int | None) -> dict[str, Any]:
        from crosswind.validate.run import ValidateOptions, replication_checks, validate

        cfg = self.service.cfg
        return await validate(cfg, ValidateOptions(direction, checks=replication_checks(cfg),
                                                   sample=sample))

    async def probe(self, direction: Direction, plan_hash: str, timeout_s: float, say: Say
                    ) -> dict[str, Any]:
        epoch = self._epoch(direction)
        deadline = time.monotonic() + timeout_s
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        key = f"{epoch.keep.prefix}{PROBE_DIR}{plan_hash[:12]}-{stamp}.json"
        if not epoch.keep(key):
            raise StepFailed(f"the probe object {key!r} is outside the [sync] filters; "
                             f"include {epoch.keep.prefix}{PROBE_DIR}* to let the probe through")
        body = (f'{{"crosswind_probe": "{plan_hash}", "at": "{stamp}"}}').encode()
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        src, dst = epoch.src_raw, epoch.dst_raw
        t0 = time.monotonic()
        evidence: dict[str, Any] = {"object_key": key}
        await src.put(key, body, ObjectProps(content_type="application/json"), md5=md5)
        via = "events"
        try:
            while True:
                with contextlib.suppress(NotFound):
                    got = await dst.head(key)
                    if got.size == len(body):
                        break
                now = time.monotonic()
                if now > deadline:
                    raise StepFailed(f"the probe object did not reach {dst.name} within "
                                     f"{timeout_s:g}s", evidence)
                grace = min(self.service.cfg.cutover.probe_event_wait_s, timeout_s / 2)
                if via == "events" and now - t0 > grace:
                    # No event came (an emulator emits none, or events are slow): the
                    # service is told about the probe directly; the path from here on
                    # (read primary, write replica, verify) is still the real one.
                    via = f"handed to the scheduler (no event within {grace:g}s)"
                    say(f"no event for the probe yet: {via}")
                    epoch.scheduler.submit(Change("object", "upsert", key, "probe",
                                                  datetime.now(UTC)), priority=EVENT)
                await asyncio.sleep(0.2)
            evidence.update({"object_arrived_s": round(time.monotonic() - t0, 3),
                             "object_via": via})
            say(f"probe object arrived on {dst.name} in {evidence['object_arrived_s']:.1f}s "
                f"via {via}")
        finally:
            # Our own artifact, on both sides (not a replicated delete: no guard).
            for store in (src, dst):
                with contextlib.suppress(CrosswindError):
                    await store.delete(key)
            epoch.state.forget_verified(direction.value, key)
        if epoch.rows is not None:
            evidence.update(await self._probe_row(epoch, direction, plan_hash, stamp,
                                                  deadline, say))
        return evidence

    async def _probe_row(self, epoch: Epoch, direction: Direction, plan_hash: str,
                         stamp: str, deadline: float, say: Say) -> dict[str, Any]:
        from crosswind.metasync.runner import opened_row_stores
        from crosswind.stores.base import RecordWrite

        pk, rk = "crosswind-probe", f"{plan_hash[:12]}-{stamp}"
        e = Entity(pk, rk, {"probe": Prop(Edm.STRING, plan_hash)})
        t0 = time.monotonic()
        async with opened_row_stores(self.service.cfg, direction) as (table, docs):
            primary, replica = (table, docs) if direction is Direction.AZURE_TO_AWS \
                else (docs, table)
            [r] = await primary.write_batch([RecordWrite("upsert", e)])
            if r.status != "ok":
                raise StepFailed(f"could not write the probe row on {primary.name}: "
                                 f"{r.error or r.status}")
            try:
                while True:
                    with contextlib.suppress(NotFound):
                        await replica.get(pk, rk)
                        break
                    if time.monotonic() > deadline:
                        raise StepFailed(f"the probe row {doc_id(pk, rk)} did not reach "
                                         f"{replica.name} in time")
                    await asyncio.sleep(0.2)
                took = round(time.monotonic() - t0, 3)
                say(f"probe row arrived on {replica.name} in {took:.1f}s")
            finally:
                for store in (primary, replica):
                    with contextlib.suppress(CrosswindError):
                        await store.delete(pk, rk)
                epoch.ledger.forget_rows([(pk, rk)])
        return {"row": doc_id(pk, rk), "row_arrived_s": took}
