"""`crosswind schema infer` on a sample of the real estate (Azurite's table and
container, SecantusDB's collection): the inferred schema holds every sampled
item, is a valid schema the registry takes, and knows the EDM types."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.governance.compat import check_schema
from crosswind.governance.subjects import entity_document_instance, entity_instance
from crosswind.rig.demo_rows import demo_entity
from tests.integration.metadata.conftest import MetaEnv

pytestmark = pytest.mark.integration


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_infer_each_subject_then_register(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    c = str(env.config_path)
    rng = random.Random(11)
    env.put_many([demo_entity(f"UA{i:04d}_20261126", str(uuid.UUID(int=i + 1)),
                              {"carrier": "UA", "flight": i, "origin": "ORD", "dest": "SFO",
                               "event_type": "landing"}, rng) for i in range(30)])
    for i in range(5):
        env.container.upload_blob(f"events/{i}.json", b"{}",
                                  metadata={"Carrier": "UA", "EventType": "landing"})
    entity = json.loads(cli("schema", "infer", "-c", c, "--subject", "table-entity",
                            "--sample", "20"))
    assert check_schema(entity) == []
    props = entity["properties"]
    assert props["Sequence@odata.type"] == {"const": "Edm.Int64"}
    assert props["EventTime"]["format"] == "date-time" and props["RowKey"]["format"] == "uuid"
    assert "Inferred from 20 samples" in entity["description"]
    # every row holds under it, the 10 rows it did not sample too (formats asserted,
    # as the validation before write asserts them)
    rows = env.azure_rows()
    assert len(rows) == 30
    holds = Draft202012Validator(entity, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.row_key for e in rows.values() if not holds.is_valid(entity_instance(e))] == []
    objects = json.loads(cli("schema", "infer", "-c", c, "--subject", "object-metadata",
                             "--closed"))
    assert objects["properties"]["metadata"]["properties"]["carrier"]["type"] == "string"
    assert objects["properties"]["metadata"]["additionalProperties"] is False
    cli("sync", "metadata", "-c", c, "-d", "azure-to-aws")
    out = env.tmp / "doc.json"
    cli("schema", "infer", "-c", c, "--subject", "documentdb-document", "--out", str(out))
    doc = json.loads(out.read_text())
    assert doc["properties"]["Sequence"]["properties"]["$numberLong"]["type"] == "string"
    assert doc["properties"]["CorrelationId"]["properties"]["$binary"]["properties"][
        "subType"] == {"const": "04"}
    assert "_cw" in doc["required"]
    docs = env.documents()
    assert len(docs) == 30
    holds = Draft202012Validator(doc, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [d.row_key for d in docs.values()
            if not holds.is_valid(entity_document_instance(d))] == []
    registered = cli("schema", "register", "-c", c, "--subject", "documentdb-document",
                     "--schema", str(out))
    assert registered.startswith("documentdb-document version 1 registered")
