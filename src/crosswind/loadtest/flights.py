"""Flight events for a synthetic load: names, bodies of a given size, user
metadata and the metadata row, each derived from (namespace, ordinal, revision)
only, so that a schedule replays to the same writes. Pure; no I/O.

Names follow the reference estate's pattern (``KEY_PATTERN``) and rows are keyed
by ``PARTITION_KEY``/``ROW_KEY``; a config's ``[keys]`` must parse the names.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crosswind.entities import Edm, EdmDateTime, Entity, Prop

KEY_PATTERN = ("events/{date:%Y/%m/%d}/{carrier:[A-Z0-9]{2}}{flight:int:4}/"
               "{origin:[A-Z]{3}}-{dest:[A-Z]{3}}/{event_type}-{event_id:uuid}.json")
PARTITION_KEY = "{carrier}{flight}_{date:%Y%m%d}"
ROW_KEY = "{event_id}"

CARRIERS = ("LH", "UA", "AA", "DL", "BA", "AF", "KL", "FX")
AIRPORTS = ("FRA", "JFK", "LAX", "ORD", "DFW", "LHR", "CDG", "AMS", "MUC", "SFO", "ATL", "DEN")
EVENT_TYPES = ("scheduled", "boarding", "departure", "airborne", "position", "arrival",
               "gate", "delay")
DAY0 = datetime(2026, 12, 1, tzinfo=UTC)
#: what a load's writes say they are (user metadata ``producer``)
PRODUCER = "crosswind-loadtest"


@dataclass(frozen=True, slots=True)
class FlightEvent:
    """One event's identity: its object name and its row's keys."""

    key: str
    pk: str
    rk: str
    carrier: str
    flight: int
    origin: str
    dest: str
    event_type: str
    at: datetime


def flight_event(namespace: str, ordinal: int) -> FlightEvent:
    """Event ``ordinal`` of a load; a new ``namespace`` gives new names."""
    r = random.Random(f"{namespace}:{ordinal}")
    carrier, flight = r.choice(CARRIERS), r.randint(1, 9999)
    origin, dest = r.sample(AIRPORTS, 2)
    etype = r.choice(EVENT_TYPES)
    at = DAY0 + timedelta(days=r.randint(0, 6), milliseconds=r.randint(0, 86_399_999))
    eid = uuid.UUID(int=r.getrandbits(128), version=4)
    key = f"events/{at:%Y/%m/%d}/{carrier}{flight:04d}/{origin}-{dest}/{etype}-{eid}.json"
    return FlightEvent(key, f"{carrier}{flight:04d}_{at:%Y%m%d}", str(eid), carrier, flight,
                       origin, dest, etype, at)


def body(ev: FlightEvent, rev: int, size: int) -> bytes:
    """The event's JSON of revision ``rev``, padded to ``size`` bytes (a raw
    ACARS/ADS-B dump as hex, as large events carry); never shorter than the
    bare event."""
    r = random.Random(f"{ev.key}:{rev}")
    doc: dict[str, Any] = {
        "eventId": ev.rk, "flight": f"{ev.carrier}{ev.flight:04d}", "origin": ev.origin,
        "destination": ev.dest, "type": ev.event_type,
        "at": ev.at.isoformat(timespec="milliseconds"), "rev": rev,
    }
    bare = json.dumps(doc, separators=(",", ":")).encode()
    pad = size - len(bare) - len(',"raw":""')
    if pad <= 0:
        return bare
    doc["raw"] = r.randbytes((pad + 1) // 2).hex()[:pad]
    return json.dumps(doc, separators=(",", ":")).encode()


def metadata(ev: FlightEvent, rev: int) -> dict[str, str]:
    """User metadata; ``rev`` tells which revision of the object a side holds."""
    return {"flightid": f"{ev.carrier}{ev.flight:04d}", "eventtype": ev.event_type,
            "rev": str(rev), "producer": PRODUCER}


def row(ev: FlightEvent, version: int, pk: str, rk: str) -> Entity:
    """The metadata row of version ``version`` (every EDM type the estate uses);
    ``pk``/``rk`` as the config's ``[keys]`` make them from the name."""
    r = random.Random(f"{ev.key}:row:{version}")
    # never integral: a JSON "15.0" must not come back as an Int32 from anyone
    delay = round(r.uniform(-5, 240), 2) + 0.005
    props = {
        "Carrier": Prop(Edm.STRING, ev.carrier), "FlightNumber": Prop(Edm.INT32, ev.flight),
        "Origin": Prop(Edm.STRING, ev.origin), "Destination": Prop(Edm.STRING, ev.dest),
        "EventType": Prop(Edm.STRING, ev.event_type),
        "EventTime": Prop(Edm.DATETIME, EdmDateTime.from_datetime(ev.at)),
        "Sequence": Prop(Edm.INT64, r.randint(2**33, 2**52)),
        "DelayMinutes": Prop(Edm.DOUBLE, delay), "Cancelled": Prop(Edm.BOOLEAN, r.random() < 0.03),
        "CorrelationId": Prop(Edm.GUID, uuid.UUID(int=r.getrandbits(128), version=4)),
        "Version": Prop(Edm.INT32, version), "ObjectName": Prop(Edm.STRING, ev.key),
    }
    return Entity(pk, rk, props)
