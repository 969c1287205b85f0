"""The safety net: a periodic listing-based comparison of primary and replica.

Events are at-least-once and can be lost, late or reordered on the real
services, so correctness never depends on them: every ``reconcile_interval_s``
both sides are listed, merged with the verified records (``sync/march.py``) and
every key the plan (``sync/plan.py``) would copy or delete is handed to the
scheduler like an event, at a lower priority — the same appliers, the same
per-key ordering, the same delete guard. What it finds that no event had
brought is *drift*: counted and reported, since it measures how far the events
can be trusted.

A copy crosswind itself made in the second of its version's last change (on S3,
where neither the ETag nor the whole-second Last-Modified shows a metadata change
in that second) is *unsettled*: the reconcile hands it over to be looked at again.
That is a re-check of crosswind's own copy, not a change the events missed: it is
counted as ``rechecked``, not as drift, and brings no lag sample (its source time
is when the object was written, long before; measured, every copy an event made
within a second would count as late by up to the whole reconcile interval).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crosswind.live.changes import Change, ChangeOp
from crosswind.live.scheduler import RECONCILE, KeyScheduler
from crosswind.model import ObjectMeta
from crosswind.state import StateStore
from crosswind.stores.base import ObjectStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.march import march
from crosswind.sync.plan import UNSETTLED, Action, decide

STREAM = "reconcile"


@dataclass
class ReconcileResult:
    started_at: datetime
    finished_at: datetime | None = None
    listed_source: int = 0
    listed_replica: int = 0
    #: replica objects in scope: the delete guard's base
    replica_in_scope: int = 0
    #: keys handed to the appliers
    found: int = 0
    #: of those, what no event had brought: not already pending, and changed at
    #: the source longer ago than the grace (a recent change's event may be on its way)
    drift: int = 0
    drift_examples: list[str] = field(default_factory=list)
    #: of the keys handed over, unsettled copies of crosswind's own, looked at again
    rechecked: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": self.finished_at.isoformat(timespec="seconds")
            if self.finished_at else None,
            "listed": {"primary": self.listed_source, "replica": self.listed_replica},
            "found": self.found, "drift": self.drift, "drift_examples": self.drift_examples,
            "rechecked": self.rechecked, "error": self.error,
        }


async def _counted(items: AsyncIterable[ObjectMeta], keep: KeyFilter,
                   bump: Callable[[], None]) -> AsyncIterator[ObjectMeta]:
    everything = keep.selects_all
    async for m in items:
        bump()
        if everything or keep(m.key):
            yield m


async def reconcile_objects(src: ObjectStore, dst: ObjectStore, state: StateStore,
                            direction: str, keep: KeyFilter, scheduler: KeyScheduler, *,
                            drift_grace_s: float = 60.0, examples: int = 20,
                            is_pending: Callable[[str], bool] | None = None
                            ) -> ReconcileResult:
    """One pass; returns once every finding is handed over (not applied)."""
    res = ReconcileResult(datetime.now(UTC))
    started = time.time()

    def bump_src() -> None:
        res.listed_source += 1

    def bump_dst() -> None:
        res.listed_replica += 1

    prefix = keep.prefix
    merged = march(_counted(src.list(prefix), keep, bump_src),
                   _counted(dst.list(prefix), keep, bump_dst),
                   state.iter_verified(direction, prefix))
    async for m in merged:
        if m.dst is not None:
            res.replica_in_scope += 1
        d = decide(m, delete=True, etag_tracks_metadata=src.capabilities.etag_tracks_metadata)
        if d.action in (Action.SKIP, Action.EXTRA):
            continue
        op: ChangeOp = "delete" if d.action is Action.DELETE else "upsert"
        when = m.src.last_modified if m.src is not None else None
        res.found += 1
        if d == UNSETTLED:
            res.rechecked += 1
            when = None  # a re-check, not a late change: no lag sample, no drift
        else:
            pending = is_pending(m.key) if is_pending is not None else False
            recent = when is not None and started - when.timestamp() < drift_grace_s
            if not pending and not recent:
                res.drift += 1
                if len(res.drift_examples) < examples:
                    res.drift_examples.append(f"{op} {m.key} ({d.reason})")
        if not scheduler.has_room():
            await scheduler.wait_room()
        # Lag of a finding is measured from the source's change time, when known:
        # a missed event shows as the lag it really caused.
        scheduler.submit(Change("object", op, m.key, STREAM, when), priority=RECONCILE)
    res.finished_at = datetime.now(UTC)
    return res
