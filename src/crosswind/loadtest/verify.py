"""Nothing lost: after the load, every touched key on the replica is polled
until it holds what the load left on the primary (the object's revision and
size, or its absence; the row's version, or its absence), within a bounded
wait. Only the touched keys are read, never a whole listing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from crosswind.entities import Entity
from crosswind.errors import NotFound
from crosswind.loadtest.load import Expected, RowKey
from crosswind.stores.base import ObjectStore, RecordStore

Verdict = str  # "ok", "missing", "stale", "not deleted", or "error: ..."


@dataclass
class Verification:
    objects_checked: int = 0
    rows_checked: int = 0
    #: row deletes the replica keeps by design ([metadata] propagate_deletes = false)
    row_deletes_not_propagated: int = 0
    uncertain: int = 0
    #: what stayed wrong at the end, by kind of key and verdict
    lost: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    settled_s: float | None = None
    waited_s: float = 0.0
    rounds: int = 0

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def as_dict(self) -> dict[str, Any]:
        return {"objects_checked": self.objects_checked, "rows_checked": self.rows_checked,
                "lost": self.lost_total, "lost_by": dict(self.lost),
                "examples": self.examples[:10], "uncertain_keys": self.uncertain,
                "row_deletes_not_propagated": self.row_deletes_not_propagated,
                "settled_s": self.settled_s, "waited_s": round(self.waited_s, 1),
                "rounds": self.rounds}


async def _object_verdict(store: ObjectStore, key: str, want: tuple[int, int] | None
                          ) -> Verdict:
    try:
        meta = await store.head(key)
    except NotFound:
        return "ok" if want is None else "missing"
    if want is None:
        return "not deleted"
    md = {k.lower(): v for k, v in ((meta.props.metadata if meta.props else {}) or {}).items()}
    rev, size = want
    return "ok" if md.get("rev") == str(rev) and meta.size == size else "stale"


def _version(e: Entity) -> object:
    p = e.properties.get("Version")
    return None if p is None else p.value


async def _row_verdict(store: RecordStore, key: RowKey, want: int | None) -> Verdict:
    try:
        e = await store.get(*key)
    except NotFound:
        return "ok" if want is None else "missing"
    if want is None:
        return "not deleted"
    return "ok" if _version(e) == want else "stale"


async def verify_replica(objects: ObjectStore, rows: RecordStore, expected: Expected, *,
                         timeout_s: float, propagate_row_deletes: bool = True,
                         poll_s: float = 2.0, concurrency: int = 32) -> Verification:
    """Poll until every touched key is right on the replica or ``timeout_s`` passed."""
    v = Verification()
    todo_objects = {k: w for k, w in expected.objects.items()
                    if k not in expected.uncertain_objects}
    todo_rows = {k: w for k, w in expected.rows.items() if k not in expected.uncertain_rows}
    if not propagate_row_deletes:
        kept = [k for k, w in todo_rows.items() if w is None]
        v.row_deletes_not_propagated = len(kept)
        for k in kept:
            del todo_rows[k]
    v.objects_checked, v.rows_checked = len(todo_objects), len(todo_rows)
    v.uncertain = len(expected.uncertain_objects) + len(expected.uncertain_rows)
    sem = asyncio.Semaphore(concurrency)
    last: dict[str, Verdict] = {}

    async def guarded(name: str, check: Any) -> tuple[str, Verdict]:
        async with sem:
            try:
                return name, await check
            except Exception as exc:  # an unreachable replica: tried again next round
                return name, f"error: {type(exc).__name__}"

    t0 = time.monotonic()
    while True:
        v.rounds += 1
        checks = [guarded(f"object {k}", _object_verdict(objects, k, w))
                  for k, w in todo_objects.items()]
        checks += [guarded(f"row {k[0]}/{k[1]}", _row_verdict(rows, k, w))
                   for k, w in todo_rows.items()]
        results = await asyncio.gather(*checks)
        last = {name: verdict for name, verdict in results if verdict != "ok"}
        ok = {name for name, verdict in results if verdict == "ok"}
        todo_objects = {k: w for k, w in todo_objects.items() if f"object {k}" not in ok}
        todo_rows = {k: w for k, w in todo_rows.items() if f"row {k[0]}/{k[1]}" not in ok}
        v.waited_s = time.monotonic() - t0
        if not last:
            v.settled_s = round(v.waited_s, 1)
            break
        if v.waited_s >= timeout_s:
            break
        await asyncio.sleep(min(poll_s, max(0.0, timeout_s - v.waited_s)))
    for name, verdict in sorted(last.items()):
        v.lost[f"{name.split(' ', 1)[0]}s {verdict}"] += 1
        if len(v.examples) < 10:
            v.examples.append(f"{name}: {verdict}")
    return v
