"""The load's writes and the final check of the replica, on memory stores: the
check finds a lost object, a stale row and a delete that never arrived, and
passes once the replica holds what the primary does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from crosswind.entities import Edm, Entity, Prop
from crosswind.errors import NotFound
from crosswind.keys import KeySpec
from crosswind.loadtest.flights import KEY_PATTERN, PARTITION_KEY, ROW_KEY
from crosswind.loadtest.load import FlightLoad
from crosswind.loadtest.pacing import run_schedule
from crosswind.loadtest.primary import Primary
from crosswind.loadtest.schedule import FLIGHT_EVENT_SIZES, parse_mix, plan
from crosswind.loadtest.verify import verify_replica
from crosswind.model import ObjectProps
from crosswind.stores.base import RecordWrite, WriteResult
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore


class Rows:
    """The record-store calls the load and the check make, over a dict."""

    name = "rows://memory"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Entity] = {}

    async def get(self, pk: str, rk: str) -> Entity:
        try:
            return self.rows[(pk, rk)]
        except KeyError:
            raise NotFound(f"{pk}/{rk}") from None

    async def write_batch(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        for w in writes:
            self.rows[(w.entity.partition_key, w.entity.row_key)] = w.entity
        return [WriteResult(w, "ok") for w in writes]

    async def delete(self, pk: str, rk: str) -> None:
        self.rows.pop((pk, rk), None)


async def scenario() -> None:
    objects, rows = MemoryStore("primary"), Rows()
    load = FlightLoad(Primary(objects, rows, None, "c"),  # type: ignore[arg-type]
                      KeySpec(KEY_PATTERN, PARTITION_KEY, ROW_KEY), "ns")
    ops = list(plan(200, 1, parse_mix("new=60,overwrite=20,meta=10,delete=10"),
                    FLIGHT_EVENT_SIZES, 4))
    stats = await run_schedule(ops, load.do, rate=200, duration_s=1)
    assert stats.completed == 200 and not stats.errors
    exp = load.expected
    assert len(objects.objects) == 120 - 20 == sum(1 for v in exp.objects.values() if v)
    # a replica that is a faithful copy, less three changes
    replica_objects, replica_rows = MemoryStore("replica"), Rows()
    for key, s in objects.objects.items():
        await replica_objects.put(key, s.data, s.props or ObjectProps(), md5=md5_hex(s.data))
    replica_rows.rows = dict(rows.rows)
    lost_object = next(iter(objects.objects))
    replica_objects.objects.pop(lost_object)
    stale_row = next(k for k, v in exp.rows.items() if v and v > 1)
    old = replica_rows.rows[stale_row]
    replica_rows.rows[stale_row] = Entity(old.partition_key, old.row_key,
                                          {**old.properties, "Version": Prop(Edm.INT32, 1)})
    deleted = next(k for k, v in exp.rows.items() if v is None)
    replica_rows.rows[deleted] = old
    v = await verify_replica(replica_objects, replica_rows, exp,  # type: ignore[arg-type]
                             timeout_s=0.3, poll_s=0.1)
    assert v.lost == {"objects missing": 1, "rows stale": 1, "rows not deleted": 1}
    assert v.settled_s is None and v.rounds >= 2
    assert any(lost_object in e for e in v.examples)
    # the same check, when the replica catches up while it waits
    async def catch_up() -> None:
        await asyncio.sleep(0.2)
        s = objects.objects[lost_object]
        await replica_objects.put(lost_object, s.data, s.props or ObjectProps(),
                                  md5=md5_hex(s.data))
        replica_rows.rows = dict(rows.rows)

    task = asyncio.create_task(catch_up())
    v = await verify_replica(replica_objects, replica_rows, exp,  # type: ignore[arg-type]
                             timeout_s=5, poll_s=0.1)
    await task
    assert v.lost_total == 0 and v.settled_s is not None and v.settled_s < 5
    assert v.objects_checked == len(exp.objects) and v.rows_checked == len(exp.rows)


def test_the_check_finds_what_the_replica_lost_and_passes_once_it_caught_up() -> None:
    asyncio.run(scenario())
