"""Metadata rows for the demo estate (``make demo``), written into Azurite.

``seed_demo_rows(cfg, object_names)`` gives every object whose name fits the
``[keys]`` pattern its row (typed properties of every EDM type, keys from the
name), plus a few rows whose object does not exist, so the table scan has
something only it can find. Names that do not fit get no row: they are the
badly named objects the object-driven sync reports. ``BAD_OBJECT_NAMES`` are
a few such names for the demo to upload next to the good ones.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

from crosswind.config import Config
from crosswind.entities import Edm, EdmDateTime, Entity, Prop
from crosswind.errors import ConfigError, NameParseError
from crosswind.keys import KeySpec
from crosswind.metasync.plan import by_partition
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_tables import MAX_TRANSACTION, open_table_store
from crosswind.stores.base import RecordWrite

#: Names a flight-event pattern refuses, each for another reason.
BAD_OBJECT_NAMES = (
    "events/2026/13/26/AA1234/DFW-LAX/departure-0b5e.json",  # month 13
    "events/2026/11/26/AA1234/DFWLAX/departure-0b5e.json",  # no '-' between airports
    "events/2026/11/26/aa1234/DFW-LAX/departure-0b5e.json",  # lower-case carrier
    "events/2026/11/26/AA1234/DFW-LAX/departure.json",  # no event id
    "events/2026/11/26/AA1234/DFW-LAX/departure-0b5e.json.tmp",  # stray suffix
)


@dataclass
class SeedSummary:
    rows: int = 0
    orphan_rows: list[tuple[str, str]] = field(default_factory=list)
    names_without_keys: list[str] = field(default_factory=list)


def demo_entity(pk: str, rk: str, fields: dict[str, object], rng: random.Random) -> Entity:
    """A row with a property of every EDM type, some taken from the name's fields."""
    day = fields.get("date")
    base = (datetime(day.year, day.month, day.day, tzinfo=UTC) if isinstance(day, date)
            else datetime(2026, 11, 26, tzinfo=UTC))
    at = base + timedelta(minutes=rng.randint(0, 1439), microseconds=rng.randint(0, 999_999))
    ticks = EdmDateTime.from_datetime(at).ticks + rng.randint(0, 9)  # all 7 digits used
    props = {
        "Carrier": Prop(Edm.STRING, str(fields.get("carrier", "XX"))),
        "FlightNumber": Prop(Edm.INT32, int(str(fields.get("flight", 0)))),
        "Origin": Prop(Edm.STRING, str(fields.get("origin", ""))),
        "Destination": Prop(Edm.STRING, str(fields.get("dest", ""))),
        "EventType": Prop(Edm.STRING, str(fields.get("event_type", "unknown"))),
        "EventTime": Prop(Edm.DATETIME, EdmDateTime(ticks)),
        "Sequence": Prop(Edm.INT64, rng.randint(0, 2**40)),
        "DelayMinutes": Prop(Edm.DOUBLE, round(rng.uniform(-5, 240), 2)),
        "Cancelled": Prop(Edm.BOOLEAN, rng.random() < 0.03),
        "CorrelationId": Prop(Edm.GUID, uuid.UUID(int=rng.getrandbits(128))),
        "Checksum": Prop(Edm.BINARY, rng.randbytes(16)),
    }
    return Entity(pk, rk, MappingProxyType(props))


async def seed_demo_rows(cfg: Config, object_names: Iterable[str], *, orphans: int = 5,
                         seed: int = 2026) -> SeedSummary:
    """Create ``[azure].table`` if needed and write the rows of ``object_names``."""
    if cfg.keys is None:
        raise ConfigError("[keys] is needed to give objects their rows")
    spec = KeySpec.from_config(cfg.keys)
    rng = random.Random(seed)
    out = SeedSummary()
    rows: list[Entity] = []
    for name in object_names:
        try:
            k = spec.keys(name)
        except NameParseError:
            out.names_without_keys.append(name)
            continue
        rows.append(demo_entity(k.partition_key, k.row_key, dict(k.fields), rng))
    for i in range(orphans):  # rows whose object never existed
        pk, rk = f"ZZ{9000 + i}_20261126", str(uuid.UUID(int=rng.getrandbits(128)))
        rows.append(demo_entity(pk, rk, {"carrier": "ZZ", "flight": 9000 + i,
                                         "event_type": "orphan"}, rng))
        out.orphan_rows.append((pk, rk))
    table = open_table_store(resolve_auth(cfg.azure), cfg.azure.table, writable=True)
    try:
        await table.create()
        for batch in by_partition((RecordWrite("upsert", e) for e in rows), MAX_TRANSACTION):
            results = await table.write_batch(batch)
            out.rows += sum(r.status == "ok" for r in results)
    finally:
        await table.close()
    return out
