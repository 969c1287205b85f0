"""Validation before write of metadata rows, on the rig: a row that breaks the
registered DocumentDB document schema is written (off), written and counted
(warn) or kept out and filed in the DLQ with its path and rule (reject); a
rejected row replays once a version that accepts it is registered. After
cutover the same for the Azure Table entity schema."""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.entities import Edm, Entity, Prop
from crosswind.governance.registry import Registry
from crosswind.governance.subjects import builtin_schema
from crosswind.rig.demo_rows import demo_entity
from crosswind.state import StateStore
from tests.integration.metadata.conftest import MetaEnv
from tests.lineage_model import check_event

pytestmark = pytest.mark.integration


def invoke(*args: str, code: int | None = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    if code is not None:
        assert result.exit_code == code, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def rows(n: int) -> list[Entity]:
    rng = random.Random(5)
    return [demo_entity(f"AA{42 + i:04d}_20261126", str(uuid.UUID(int=i + 1)),
                        {"carrier": "AA", "flight": 42 + i, "origin": "DFW", "dest": "LAX",
                         "event_type": "departure"}, rng) for i in range(n)]


def bad_row() -> Entity:
    """A row whose FlightNumber someone wrote as text."""
    e = rows(1)[0]
    props = dict(e.properties)
    props["FlightNumber"] = Prop(Edm.STRING, "AA")
    return Entity("AA0999_20261126", str(uuid.UUID(int=999)), props)


def register(env: MetaEnv, subject: str, schema: dict[str, Any]) -> int:
    state = StateStore(env.config.state_dir)
    try:
        return Registry(state).register(subject, schema).version.version
    finally:
        state.close()


def wider_flight_number(subject: str) -> dict[str, Any]:
    s = copy.deepcopy(builtin_schema(subject))
    s["properties"]["FlightNumber"] = {"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 9999},
        {"type": "string", "pattern": "^[A-Z0-9]{2}$"}]}
    if subject == "table-entity":
        s["properties"]["FlightNumber@odata.type"] = {"enum": ["Edm.Int32", "Edm.String"]}
    return s


@pytest.mark.parametrize("enforce", ["off", "warn", "reject"])
def test_enforcement_modes_and_replay_after_a_schema_change(
        make_meta_env: Callable[..., MetaEnv], enforce: str) -> None:
    env = make_meta_env().reload(f"""
        [governance]
        enforce = "{enforce}"
        domain = "ADL"
        flow_id = 26
        """)
    c = str(env.config_path)
    register(env, "documentdb-document", builtin_schema("documentdb-document"))
    good = rows(5)
    env.put_many([*good, bad_row()])
    report = invoke("sync", "metadata", "-c", c, "-d", "azure-to-aws",
                    code=1 if enforce == "reject" else 0)
    sv = report["schema_validation"]
    assert report["stewardship"]["domain"] == "ADL" and report["stewardship"]["flow_id"] == "26"
    bad_key = ("AA0999_20261126", str(uuid.UUID(int=999)))
    if enforce == "off":
        assert sv["checked"] == 0 and report["written"] == 6
        assert bad_key in env.documents()
        return
    assert sv["checked"] == 6 and sv["passed"] == 5
    assert sv["subjects"]["documentdb-document"] == {"version": 1, "checked": 6, "failed": 1}
    assert sv["examples"][0]["path"] == "$.FlightNumber"
    assert sv["examples"][0]["rule"] == "type"
    if enforce == "warn":
        assert sv["warned"] == 1 and report["written"] == 6
        assert bad_key in env.documents()
        return
    # reject: not written, in the DLQ with the path and the rule
    assert sv["rejected"] == 1 and report["written"] == 5 and report["failed_by_kind"] == {
        "schema": 1}
    assert bad_key not in env.documents() and len(env.documents()) == 5
    [item] = invoke("dlq", "list", "-c", c, "--kind", "schema")["items"]
    assert item["item"] == "/".join(bad_key) and item["item_kind"] == "row"
    # the run's lineage: the Azure table in, DocumentDB out with the 5 rows written
    lines = (env.config.state_dir / "lineage" / "events.jsonl").read_text().splitlines()
    runs = [json.loads(line) for line in lines]
    assert [(e["job"]["name"], e["eventType"]) for e in runs] == [
        ("sync-metadata.azure-to-aws", "START"), ("sync-metadata.azure-to-aws", "COMPLETE")]
    for e in runs:
        check_event(e)
    [table] = runs[-1]["inputs"]
    [docs] = runs[-1]["outputs"]
    assert table["namespace"].startswith("azuretable://")
    assert table["name"] == env.config.azure.table
    assert docs["namespace"].startswith("mongodb://")
    assert docs["name"] == f"{env.config.aws.database}.{env.config.aws.collection}"
    assert docs["outputFacets"]["outputStatistics"]["rowCount"] == 5
    assert item["reason"].startswith("schema documentdb-document v1: $.FlightNumber: type:")
    shown = invoke("dlq", "show", "-c", c, str(item["id"]))
    assert shown["payload"]["path"] == "$.FlightNumber" and shown["payload"]["rule"] == "type"
    assert shown["payload"]["instance"]["properties"]["FlightNumber"]["value"] == "AA"
    # a replay against the same schema still fails ...
    again = invoke("dlq", "replay", "-c", c, "--all", code=1)
    assert again["still_failing"][0]["kind"] == "schema"
    # ... and passes once a version that accepts it is registered
    assert register(env, "documentdb-document", wider_flight_number("documentdb-document")) == 2
    done = invoke("dlq", "replay", "-c", c, "--all")
    assert done["resolved_ids"] == [item["id"]]
    assert env.documents()[bad_key].properties["FlightNumber"].value == "AA"


def test_reverse_sync_checks_the_table_entity_schema(
        make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env().reload("""
        [governance]
        enforce = "reject"
        """)
    c = str(env.config_path)
    register(env, "table-entity", builtin_schema("table-entity"))
    from crosswind.entities import entity_to_document

    for e in [*rows(3), bad_row()]:
        env.coll.insert_one(entity_to_document(e))
    report = invoke("sync", "metadata", "-c", c, "-d", "aws-to-azure", code=1)
    assert report["schema_validation"]["rejected"] == 1
    assert report["failed_by_kind"] == {"schema": 1}
    assert len(env.azure_rows()) == 3
    [item] = invoke("dlq", "list", "-c", c, "--kind", "schema")["items"]
    assert item["item_kind"] == "document"
    assert item["reason"].startswith("schema table-entity v1: $['FlightNumber@odata.type']: "
                                     "const:")
    register(env, "table-entity", wider_flight_number("table-entity"))
    invoke("dlq", "replay", "-c", c, "--all")
    assert len(env.azure_rows()) == 4
