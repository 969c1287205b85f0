"""The registry (in the state store), the built-in schemas against the demo's
data, the instances of each subject, the schema gate's modes, inference, and
stewardship in the config."""

from __future__ import annotations

import copy
import json
import math
import random
import uuid
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from crosswind.config import parse_config
from crosswind.entities import Edm, EdmDateTime, Entity, Prop
from crosswind.errors import ConfigError
from crosswind.governance.compat import check_schema, valid
from crosswind.governance.gate import SchemaGate, SchemaRejected
from crosswind.governance.infer import infer_schema
from crosswind.governance.registry import Registry, SchemaIncompatible, SchemaInvalid
from crosswind.governance.stewardship import Stewardship, stewardship_fields
from crosswind.governance.subjects import (
    SUBJECTS,
    builtin_schema,
    entity_document_instance,
    entity_instance,
    object_instance,
)
from crosswind.model import ObjectProps
from crosswind.rig.demo_rows import demo_entity
from crosswind.state import StateStore

CFG = {"azure": {"connection_string": "env:X", "container": "c"}, "aws": {"bucket": "b"}}


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / "state")
    yield s
    s.close()


def demo_rows(n: int = 50) -> list[Entity]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        fields = {"carrier": "AA", "flight": 42 + i, "origin": "DFW", "dest": "LAX",
                  "event_type": "departure"}
        rows.append(demo_entity(f"AA{42 + i:04d}_20261126", str(uuid.UUID(int=i)), fields, rng))
    # an orphan row, as the demo seeds them (no airports)
    rows.append(demo_entity("ZZ9000_20261126", str(uuid.UUID(int=999)),
                            {"carrier": "ZZ", "flight": 9000, "event_type": "orphan"}, rng))
    return rows


def test_the_builtin_schemas_are_valid_and_fit_the_demo_estate() -> None:
    for subject in SUBJECTS:
        assert check_schema(builtin_schema(subject)) == []
    for e in demo_rows():
        e = Entity(e.partition_key, e.row_key, e.properties, etag='W/"datetime\'x\'"',
                   timestamp=EdmDateTime.from_iso("2026-11-26T10:00:00.1234567Z"))
        assert valid(builtin_schema("table-entity"), entity_instance(e)), entity_instance(e)
        doc = entity_document_instance(e)
        assert valid(builtin_schema("documentdb-document"), doc), doc
    obj = builtin_schema("object-metadata")
    for meta in ({"EventType": "gate_change", "Carrier": "LH", "SourceSystem": "FXIP"},
                 {"Kind": "monthly-archive"}, {}):
        inst = object_instance("events/2026/11/26/LH0400/FRA-JFK/arrivée-Zürich-Ü.json", 1234,
                               ObjectProps(content_type="application/json",
                                           cache_control="max-age=300", metadata=meta))
        assert valid(obj, inst), inst


def test_instances_keep_edm_types_apart() -> None:
    e = Entity("AA0042_20261126", str(uuid.UUID(int=1)), MappingProxyType({
        "Small": Prop(Edm.INT64, 5), "Int": Prop(Edm.INT32, 5),
        "Nan": Prop(Edm.DOUBLE, math.nan), "Neg": Prop(Edm.DOUBLE, -math.inf),
        "When": Prop(Edm.DATETIME, EdmDateTime.from_iso("2026-11-26T10:11:12.3456789Z")),
        "Id": Prop(Edm.GUID, uuid.UUID(int=3)), "Raw": Prop(Edm.BINARY, b"\x00\x01")}))
    ent = entity_instance(e)
    assert ent["Small"] == "5" and ent["Small@odata.type"] == "Edm.Int64"
    assert ent["Int"] == 5 and ent["Int@odata.type"] == "Edm.Int32"
    assert (ent["Nan"], ent["Neg"]) == ("NaN", "-Infinity")
    assert ent["When"] == "2026-11-26T10:11:12.3456789Z"
    assert ent["Raw"] == "AAE="
    doc = entity_document_instance(e)
    assert doc["Small"] == {"$numberLong": "5"} and doc["Int"] == 5
    assert doc["Nan"] == {"$numberDouble": "NaN"}
    assert doc["When"] == {"$date": "2026-11-26T10:11:12.345Z"}
    assert doc["Id"] == {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAw==", "subType": "04"}}
    assert doc["_cw"]["dt"] == {"When": "2026-11-26T10:11:12.3456789Z"}
    assert doc["_id"] == "AA0042_20261126/00000000-0000-0000-0000-000000000001"


def test_object_instance_names_are_case_insensitive_and_exclude_crosswinds_own() -> None:
    inst = object_instance("k", 3, ObjectProps(metadata={
        "flightno": "AA1", "crosswind-md5": "0" * 32,
        "crosswind-keymap": json.dumps({"flightno": "FlightNo"})}))
    assert inst == {"key": "k", "size": 3, "metadata": {"flightno": "AA1"}}


def test_registry_versions_modes_and_idempotence(state: StateStore) -> None:
    reg = Registry(state)
    v1 = builtin_schema("documentdb-document")
    r1 = reg.register("documentdb-document", v1, by="test")
    assert (r1.version.version, r1.created, r1.mode) == (1, True, "BACKWARD")
    again = reg.register("documentdb-document", copy.deepcopy(v1))
    assert (again.version.version, again.created) == (1, False)
    # BACKWARD: a new optional field in a closed model reads old documents
    v2 = copy.deepcopy(v1)
    v2["properties"]["Gate"] = {"type": "string"}
    assert reg.check("documentdb-document", v2) == []
    assert reg.register("documentdb-document", v2).version.version == 2
    # making it required breaks BACKWARD (old documents lack it)
    v3 = copy.deepcopy(v2)
    v3["required"] = [*v3["required"], "Gate"]
    reasons = reg.check("documentdb-document", v3)
    assert reasons == ["version 2 (backward: new schema reading old data): $.Gate: required: the "
                       "reader requires it, the writer may leave it out"]
    with pytest.raises(SchemaIncompatible) as exc:
        reg.register("documentdb-document", v3)
    assert exc.value.exit_code == 1 and exc.value.reasons == reasons
    # under NONE it goes in, and the mode stays NONE
    assert reg.register("documentdb-document", v3, mode="none").version.version == 3
    assert reg.mode("documentdb-document") == "NONE"
    assert [v.version for v in reg.versions("documentdb-document")] == [1, 2, 3]
    assert reg.get("documentdb-document", 2).schema == v2  # type: ignore[union-attr]
    subjects = {s.subject: s for s in reg.subjects()}
    assert subjects["documentdb-document"].latest == 3
    assert subjects["table-entity"].versions == 0 and subjects["table-entity"].mode == "BACKWARD"


def test_registry_refuses_what_is_no_schema(state: StateStore) -> None:
    reg = Registry(state)
    with pytest.raises(SchemaInvalid, match="unknown subject"):
        reg.register("nope", {"type": "string"})
    with pytest.raises(SchemaInvalid, match="not a valid JSON Schema"):
        reg.register("table-entity", {"type": 3})
    with pytest.raises(SchemaInvalid, match="Draft 2020-12"):
        reg.register("table-entity", {"$schema": "http://json-schema.org/draft-07/schema#"})
    with pytest.raises(ConfigError, match="unknown compatibility mode"):
        reg.register("table-entity", {"type": "object"}, mode="SIDEWAYS")


def _row(flight: Any) -> Entity:
    return Entity("AA0042_20261126", str(uuid.UUID(int=1)), MappingProxyType({
        "Carrier": Prop(Edm.STRING, "AA"),
        "FlightNumber": (Prop(Edm.STRING, flight) if isinstance(flight, str)
                         else Prop(Edm.INT32, flight)),
        "EventType": Prop(Edm.STRING, "departure"),
        "EventTime": Prop(Edm.DATETIME, EdmDateTime.from_iso("2026-11-26T10:00:00Z"))}))


@pytest.mark.parametrize("enforce", ["off", "warn", "reject"])
def test_gate_modes(state: StateStore, enforce: str) -> None:
    reg = Registry(state)
    gate = SchemaGate.from_state(state, enforce)  # type: ignore[arg-type]
    bad = _row("forty-two")
    gate.check_document(bad)  # nothing registered yet: not checked
    reg.register("documentdb-document", builtin_schema("documentdb-document"))
    gate._next_refresh = 0  # the registry is read again at the next item
    gate.check_document(_row(42))
    if enforce == "reject":
        with pytest.raises(SchemaRejected) as exc:
            gate.check_document(bad)
        assert exc.value.path == "$.FlightNumber" and exc.value.rule == "type"
        assert str(exc.value).startswith("schema documentdb-document v1: $.FlightNumber: type:")
    else:
        gate.check_document(bad)
    r = gate.report()
    assert r["enforce"] == enforce
    if enforce == "off":
        assert r["checked"] == 0
        return
    assert (r["unregistered"], r["checked"], r["passed"]) == (1, 2, 1)
    assert (r["warned"], r["rejected"]) == ((1, 0) if enforce == "warn" else (0, 1))
    assert r["subjects"]["documentdb-document"] == {"version": 1, "checked": 2, "failed": 1}
    assert r["examples"][0]["path"] == "$.FlightNumber"


def test_gate_admits_after_a_new_version(state: StateStore) -> None:
    reg = Registry(state)
    schema = builtin_schema("documentdb-document")
    reg.register("documentdb-document", schema)
    gate = SchemaGate.from_state(state, "reject", refresh_s=0)
    ok, refused = gate.admit([_row(42), _row("AA")], gate.check_document)
    assert [e.properties["FlightNumber"].value for e in ok] == [42]
    assert [exc.rule for _, exc in refused] == ["type"]
    wider = copy.deepcopy(schema)
    wider["properties"]["FlightNumber"] = {"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 9999},
        {"type": "string", "pattern": "^[A-Z]{2}$"}]}
    assert reg.register("documentdb-document", wider).version.version == 2
    ok, refused = gate.admit([_row("AA")], gate.check_document)
    assert len(ok) == 1 and not refused


def test_infer() -> None:
    rows = [entity_instance(e) for e in demo_rows(20)]
    schema = infer_schema(rows, title="rows")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["Sequence@odata.type"] == {"const": "Edm.Int64"}
    assert schema["properties"]["EventTime"]["format"] == "date-time"
    assert schema["properties"]["RowKey"]["format"] == "uuid"
    assert schema["properties"]["FlightNumber"]["type"] == "integer"
    assert schema["properties"]["DelayMinutes"]["type"] == "number"
    assert "Carrier" in schema["required"]
    assert "Inferred from 21 samples" in schema["description"]
    for r in rows:
        assert valid(schema, r)
    mixed = infer_schema([{"a": 1, "b": None}, {"a": 2.5}], closed=True)
    assert mixed["properties"]["a"]["type"] == "number"
    assert mixed["properties"]["b"]["type"] == "null"
    assert mixed["required"] == ["a"] and mixed["additionalProperties"] is False


def test_stewardship_in_the_config() -> None:
    cfg = parse_config({**CFG, "governance": {"domain": "ADL", "steward": "ana@example.com",
                                              "owner": "flight-ops", "flow_id": 26}}, Path("."))
    assert stewardship_fields(cfg) == {"stewardship": {
        "domain": "ADL", "steward": "ana@example.com", "owner": "flight-ops", "flow_id": "26"}}
    assert stewardship_fields(None)["stewardship"] == Stewardship().as_dict()
    with pytest.raises(ConfigError, match="lineage_url"):
        parse_config({**CFG, "governance": {"lineage": "http"}}, Path("."))
    with pytest.raises(ConfigError, match="plain http"):
        parse_config({**CFG, "governance": {"lineage": "http",
                                            "lineage_url": "http://marquez.example.com"}},
                     Path("."))
    parse_config({**CFG, "governance": {"lineage": "http", "lineage_url": "http://127.0.0.1:5000"}},
                 Path("."))


def test_the_cutovers_probe_items_are_never_checked(state: StateStore) -> None:
    from crosswind.cutover.controls import PROBE_DIR
    from crosswind.governance.gate import PROBE_PARTITION, PROBE_PREFIX

    assert PROBE_DIR == PROBE_PREFIX
    Registry(state).register("documentdb-document", builtin_schema("documentdb-document"))
    Registry(state).register("table-entity", builtin_schema("table-entity"))
    strict = copy.deepcopy(builtin_schema("object-metadata"))
    strict["required"] = [*strict["required"], "content_encoding"]
    Registry(state).register("object-metadata", strict, mode="NONE")
    gate = SchemaGate.from_state(state, "reject")
    probe = Entity(PROBE_PARTITION, "abc-20261201", MappingProxyType(
        {"probe": Prop(Edm.STRING, "hash")}))
    gate.check_document(probe)
    gate.check_entity(probe)
    gate.check_object(f"events/{PROBE_PREFIX}abc.json", 10, ObjectProps())
    assert gate.report()["checked"] == 0
    with pytest.raises(SchemaRejected):
        gate.check_object("events/x.json", 10, ObjectProps())


@pytest.mark.parametrize(("size", "way"), [(50, "whole"), (1000, "stream"),
                                           (16 * 1024, "parts")])
def test_every_write_way_of_a_copy_checks_before_it_writes(size: int, way: str) -> None:
    """Whole, streamed and multipart copies: a rejected object leaves nothing at
    the destination (no object, no upload started); a valid one is copied."""
    import asyncio

    from crosswind.observability.stats import SyncStats
    from crosswind.stores.common import md5_hex
    from crosswind.stores.memory import MemoryStore
    from crosswind.sync.budget import ByteBudget
    from crosswind.sync.transfer import Transfer, TransferSettings

    schema = builtin_schema("object-metadata")
    gate = SchemaGate("reject", lambda: {"object-metadata": (1, schema)}, lambda: 1)

    async def go() -> None:
        src, dst = MemoryStore("src"), MemoryStore("dst", "s3")
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        for key, carrier in (("bad", "aa1"), ("good", "AA")):
            await src.put(key, data, ObjectProps(metadata={"Carrier": carrier}),
                          md5=md5_hex(data))
        settings = TransferSettings(stream_threshold=100, multipart_threshold=4 * 1024,
                                    part_size=4 * 1024, schemas=gate)
        t = Transfer(src, dst, settings, ByteBudget(1 << 20), SyncStats())
        bad = await src.head("bad")
        assert t.way(bad) == way
        with pytest.raises(SchemaRejected) as caught:
            await t.copy(bad)
        assert (caught.value.path, caught.value.rule) == ("$.metadata.carrier", "pattern")
        assert "bad" not in dst.objects and dst.uploads == {}
        await t.copy(await src.head("good"))
        assert dst.objects["good"].data == data

    asyncio.run(go())
    assert (gate.counters.checked, gate.counters.rejected) == (2, 1)
