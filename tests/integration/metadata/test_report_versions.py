"""The metadata commands' reports carry the crosswind version: the sync report
(printed and saved), the DLQ replay and a conflict's resolution."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from types import MappingProxyType
from typing import Any

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.entities import Edm, Entity, Prop
from crosswind.state import StateStore
from tests.integration.metadata.conftest import MetaEnv

pytestmark = pytest.mark.integration
VERSION = metadata.version("crosswind")


def run_json(*args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_metadata_reports_carry_the_version(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    c = str(env.config_path)
    env.put_rows(Entity("p", "r1", MappingProxyType({"v": Prop(Edm.INT32, 1)})))
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "poison", "_cw": "reserved"})
    forward = run_json("sync", "metadata", "-c", c, "-d", "azure-to-aws", code=1)
    assert forward["kind"] == "sync-metadata" and forward["crosswind_version"] == VERSION
    path = env.config.state_dir / "reports" / f"sync-metadata-{forward['run_id']}.json"
    assert json.loads(path.read_text())["crosswind_version"] == VERSION
    # What the state store keeps comes from the report builder itself (the CLI also
    # stamps what it prints and writes, which would hide a builder without it).
    state = StateStore(env.config.state_dir)
    try:
        kept = state.run_report(forward["run_id"])
    finally:
        state.close()
    assert kept is not None and kept["crosswind_version"] == VERSION

    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "poison", "cw": "renamed"},
                            mode="replace")
    replayed = run_json("dlq", "replay", "-c", c, "--all")
    assert replayed["kind"] == "dlq-replay" and replayed["crosswind_version"] == VERSION

    back = run_json("sync", "metadata", "-c", c, "-d", "aws-to-azure")
    assert back["crosswind_version"] == VERSION
    env.put_rows(Entity("p", "r1", MappingProxyType({"v": Prop(Edm.INT32, -1)})))
    env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 1000}})
    assert run_json("sync", "metadata", "-c", c, "-d", "aws-to-azure")["conflicts"] == 1
    [conflict] = run_json("conflicts", "list", "-c", c)["conflicts"]
    resolved = run_json("conflicts", "resolve", "-c", c, str(conflict["id"]), "--keep", "aws")
    assert resolved["kind"] == "conflict-resolve" and resolved["crosswind_version"] == VERSION
