"""`crosswind validate` with metadata rows and the join, on the rig: all checks
by default, a name that does not fit the key pattern is a reported
discrepancy (not a crash), rows repaired through the metadata engine, and an
unreachable DocumentDB is a clear one-line error."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from azure.storage.blob import ContentSettings

from crosswind.entities import Edm, Entity, Prop, doc_id
from crosswind.keys import KeySpec
from crosswind.metasync.context import MetaOptions
from crosswind.metasync.runner import sync_metadata
from crosswind.rig.emulators import Moto, free_port
from tests.integration.validate.rig import A2W, sync, with_bucket
from tests.integration.validate.test_validate_cli import cli, validate_json

pytestmark = pytest.mark.integration


def estate(make_meta_env: Callable[..., Any], moto: Moto, s3_client: Any, n: int = 10) -> Any:
    env = with_bucket(make_meta_env(), moto, s3_client)
    spec = KeySpec.from_config(env.config.keys)
    for i in range(n):
        name = f"events/2026/11/26/AA{100 + i}/DFW-LAX/departure-e{i}.json"
        env.container.upload_blob(name, b"{}", metadata={"seq": str(i)},
                                  content_settings=ContentSettings("application/json"))
        k = spec.keys(name)
        env.put_rows(Entity(k.partition_key, k.row_key, {"gate": Prop(Edm.STRING, f"B{i}")}))
    env.container.upload_blob("manifests/2026-11-26.csv", b"a,b\n")
    sync(env, A2W)
    meta = asyncio.run(sync_metadata(env.config, MetaOptions.from_config(env.config, A2W)))
    assert meta.ok, meta.report
    return env


def test_all_checks_bad_names_and_row_repair(make_meta_env: Callable[..., Any], moto: Moto,
                                             s3_client: Any) -> None:
    env = estate(make_meta_env, moto, s3_client)
    gone, changed = doc_id("AA101_20261126", "e1"), doc_id("AA102_20261126", "e2")
    env.coll.delete_one({"_id": gone})
    env.coll.update_one({"_id": changed}, {"$set": {"gate": "Z9"}})

    code, r = validate_json(env, "--full")
    assert code == 1
    assert list(r["checks"]) == ["objects", "metadata", "join-azure", "join-aws"]
    assert r["checks"]["objects"]["failed"] == 0
    md = r["checks"]["metadata"]
    # 10 rows at the source, 9 at the destination (90 %), 2 of 10 rows differ (80 %).
    assert (md["completeness_pct"], md["pass_rate_pct"]) == (90.0, 80.0)
    assert {k: v["count"] for k, v in md["discrepancies"].items()} == {
        "missing_on_destination": 1, "metadata_mismatch": 1}
    (ex,) = md["discrepancies"]["metadata_mismatch"]["examples"]
    assert ex["key"] == changed and "gate: Edm.String 'B2' at source" in ex["detail"]
    # The manifest does not fit the key pattern: reported on both sides, with the reason.
    for side in ("join-azure", "join-aws"):
        (bad,) = r["checks"][side]["discrepancies"]["unparseable_name"]["examples"]
        assert bad["key"] == "manifests/2026-11-26.csv" and "expected" in bad["detail"]
    jw = r["checks"]["join-aws"]["discrepancies"]
    assert [e["key"] for e in jw["orphan_object"]["examples"]] == [
        "events/2026/11/26/AA101/DFW-LAX/departure-e1.json"]

    code, r = validate_json(env, "--full", "--repair")
    rep = r["repair"]
    assert rep["metadata"]["written"] == 2 and rep["metadata"]["failed"] == 0
    assert "objects" not in rep
    assert rep["not_repairable"] == {"join-azure/unparseable_name": 1,
                                     "join-aws/unparseable_name": 1}
    assert r["checks"]["metadata"]["failed"] == 0
    assert r["discrepancy_counts"] == {"unparseable_name": 2}
    assert env.documents()[("AA102_20261126", "e2")].properties["gate"].value == "B2"
    # 11 objects per side, 10 with their row: 90.9090 % on each side's join.
    assert code == 1 and r["checks"]["join-aws"]["completeness_pct"] == 90.909

    # Only the checks asked for.
    code, r = validate_json(env, "--metadata", "--sample", "0")
    assert code == 0 and list(r["checks"]) == ["metadata"]


def test_unreachable_documentdb_is_one_clear_line(make_meta_env: Callable[..., Any],
                                                  moto: Moto, s3_client: Any) -> None:
    env = with_bucket(make_meta_env(), moto, s3_client)
    dead = env.config_path.with_name("dead-docdb.toml")
    dead.write_text(re.sub(r'documentdb_uri = "[^"]+"',
                           f'documentdb_uri = "mongodb://127.0.0.1:{free_port()}/'
                           '?directConnection=true&serverSelectionTimeoutMS=1500"',
                           env.config_path.read_text()))
    p = cli("validate", "--config", str(dead), "--metadata")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 3 and len(lines) == 1, p.stderr
    assert lines[0].startswith("error:") and "Traceback" not in p.stderr
    assert "cannot reach" in lines[0] or "unreachable" in lines[0].lower(), lines[0]
    p = cli("validate", "history", "--config", str(dead), "--json")
    assert json.loads(p.stdout)["validations"][0]["verdict"] == "error"
    # No rows configured: asking for them is a config error, not a crash.
    plain = env.config_path.with_name("plain.toml")
    plain.write_text(re.sub(r'documentdb_uri = "[^"]+"\n', "", env.config_path.read_text()))
    p = cli("validate", "--config", str(plain), "--join")
    assert p.returncode == 2 and "cannot validate join-aws, join-azure" in p.stderr
