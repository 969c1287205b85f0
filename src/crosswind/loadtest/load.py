"""What one change of a schedule writes on the primary, and what the load
believes the primary holds afterwards (``Expected``): the object's revision
(or its absence) and the row's version (or its absence), per touched key. A
key whose last write failed is *uncertain* (the primary may or may not have
it) and is left out of the final check, but counted."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field

from crosswind.keys import KeySpec
from crosswind.loadtest import flights
from crosswind.loadtest.flights import FlightEvent
from crosswind.loadtest.primary import Primary
from crosswind.loadtest.schedule import Op

CONTENT_TYPE = "application/json"
RowKey = tuple[str, str]


@dataclass
class Expected:
    #: object name -> (revision, size), or None once deleted
    objects: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    #: (PartitionKey, RowKey) -> row version, or None once deleted
    rows: dict[RowKey, int | None] = field(default_factory=dict)
    uncertain_objects: set[str] = field(default_factory=set)
    uncertain_rows: set[RowKey] = field(default_factory=set)
    #: the kind of the last change of each object name
    last_kind: dict[str, str] = field(default_factory=dict)


class FlightLoad:
    """``do(op)`` for ``pacing.run_schedule``: flight events on the primary."""

    def __init__(self, primary: Primary, keys: KeySpec, namespace: str) -> None:
        self.primary = primary
        self.keys = keys
        self.namespace = namespace
        self.expected = Expected()
        self._events: dict[int, FlightEvent] = {}
        self._rev: dict[int, list[int]] = {}

    def event(self, ordinal: int) -> tuple[FlightEvent, RowKey]:
        ev = self._events.get(ordinal)
        if ev is None:
            ev = self._events[ordinal] = flights.flight_event(self.namespace, ordinal)
        k = self.keys.keys(ev.key)
        return ev, (k.partition_key, k.row_key)

    async def do(self, op: Op) -> None:
        ev, rk = self.event(op.key)
        exp = self.expected
        exp.last_kind[ev.key] = op.kind
        rev = self._rev.setdefault(op.key, [0, 0])
        if op.kind in ("new", "overwrite"):
            rev[0] += 1
            rev[1] += 1
            await self._object(ev, rev[0], op.size)
            await self._row(ev, rk, rev[1])
        elif op.kind == "meta":
            rev[1] += 1
            await self._row(ev, rk, rev[1])
        elif op.kind == "delete":
            self._events.pop(op.key, None)
            await self._object_write(ev.key, None, self.primary.delete_object(ev.key))
            await self._row_write(rk, None, self.primary.delete_row(*rk))
        else:
            raise ValueError(f"unknown kind of change {op.kind!r}")

    async def _object(self, ev: FlightEvent, rev: int, size: int) -> None:
        data = flights.body(ev, rev, size)
        await self._object_write(ev.key, (rev, len(data)), self.primary.put_object(
            ev.key, data, CONTENT_TYPE, flights.metadata(ev, rev)))

    async def _row(self, ev: FlightEvent, rk: RowKey, version: int) -> None:
        await self._row_write(rk, version, self.primary.put_row(flights.row(ev, version, *rk)))

    async def _object_write(self, key: str, value: tuple[int, int] | None,
                            write: Awaitable[None]) -> None:
        """Record what the object should hold, then write; a failure makes it uncertain."""
        self.expected.objects[key] = value
        try:
            await write
        except BaseException:
            self.expected.uncertain_objects.add(key)
            raise
        self.expected.uncertain_objects.discard(key)

    async def _row_write(self, key: RowKey, value: int | None, write: Awaitable[None]) -> None:
        self.expected.rows[key] = value
        try:
            await write
        except BaseException:
            self.expected.uncertain_rows.add(key)
            raise
        self.expected.uncertain_rows.discard(key)
