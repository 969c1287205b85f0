"""The plan document and its hash: same inputs, same hash; any change, another;
secrets only by reference; stored plans and when they are stale."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.audit import Head
from crosswind.config import parse_config
from crosswind.cutover.plan import (
    LITERAL,
    PlanError,
    PlanStore,
    canonical_json,
    check_hash,
    config_view,
    plan_hash,
    stale_reason,
)
from crosswind.state import StateStore
from tests.unit.cutover_fixtures import build_plan, passing_inputs

BASE: dict[str, Any] = {"azure": {"connection_string": "env:AZ", "container": "c"},
                        "aws": {"bucket": "b"}}


def cfg_of(**sections: Any) -> Any:
    return parse_config({**BASE, **sections}, Path("/tmp/cutover-helper-cfg"))


def test_the_hash_is_sha256_of_the_rfc8785_form() -> None:
    import hashlib

    plan = build_plan(cfg_of())
    assert plan.hash == hashlib.sha256(canonical_json(plan.document)).hexdigest()
    assert canonical_json({"b": 1.0, "a": [True, None]}) == b'{"a":[true,null],"b":1}'
    # Rebuilding from the same inputs gives the same hash, and the JSON text read
    # back (as the state store keeps it) too.
    again = build_plan(cfg_of())
    assert again.hash == plan.hash
    assert plan_hash(json.loads(canonical_json(plan.document))) == plan.hash


CHANGES: dict[str, Any] = {
    "lag": lambda i: replace(i, lag_p99_s=i.lag_p99_s + 0.001),
    "dlq": lambda i: replace(i, dlq_open=1, dlq_acknowledged=1),
    "validation": lambda i: replace(i, validation=replace(i.validation, run_id=8)),
    "age": lambda i: replace(i, validation_age_s=3601.0),
    "breaker": lambda i: replace(i, breakers=(("s3", "half-open"),)),
    "preflight": lambda i: replace(i, preflight=replace(i.preflight, reason="other")),
}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(CHANGES)) | st.sampled_from(
    ["max_lag_s", "freeze", "approver_role", "sample", "time", "head", "kind"]))
def test_any_change_gives_another_hash(change: str) -> None:
    base_cfg = cfg_of()
    plan = build_plan(base_cfg)
    if change in CHANGES:
        other = build_plan(base_cfg, inputs=CHANGES[change](passing_inputs()))
    elif change == "max_lag_s":
        other = build_plan(cfg_of(cutover={"max_lag_s": 29}))
    elif change == "freeze":
        other = build_plan(cfg_of(cutover={"freeze_command": "x", "unfreeze_command": "y"}))
    elif change == "approver_role":
        other = build_plan(cfg_of(cutover={"required_roles": ["platform", "dba"]}))
    elif change == "sample":
        other = build_plan(cfg_of(validation={"sample_size": 999}))
    elif change == "time":
        other = build_plan(base_cfg, created_at="2026-12-01T12:00:00.001+00:00")
    elif change == "head":
        other = build_plan(base_cfg, head=Head(3, "a" * 64))
    else:
        other = build_plan(base_cfg, kind="rollback")
    assert other.hash != plan.hash


@given(st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**6), st.text(max_size=30))
def test_same_inputs_same_hash(lag: float, dlq: int, reason: str) -> None:
    cfg = cfg_of()
    i = replace(passing_inputs(), lag_p99_s=lag, dlq_open=dlq,
                preflight=replace(passing_inputs().preflight, reason=reason))
    assert build_plan(cfg, inputs=i).hash == build_plan(cfg, inputs=i).hash


def test_secrets_appear_only_by_reference() -> None:
    cfg = parse_config({
        "azure": {"connection_string": "DefaultEndpointsProtocol=http;AccountName=devstore;"
                                       "AccountKey=Zm9vYmFyYmF6cXV4;BlobEndpoint=http://"
                                       "127.0.0.1:10000/devstore;", "container": "c",
                  "emulator": True},
        "aws": {"bucket": "b", "access_key_id": "AKIATESTTESTTEST", "secret_access_key":
                "file:/run/secrets/aws", "endpoint_url": "http://127.0.0.1:5000",
                "emulator": True, "documentdb_uri": "mongodb://u:pa55word@127.0.0.1:27017/"},
    }, Path("."))
    view = config_view(cfg)
    text = canonical_json(view).decode()
    for secret in ("Zm9vYmFyYmF6cXV4", "AKIATESTTESTTEST", "pa55word"):
        assert secret not in text
    assert view["azure"]["connection_string"] == LITERAL
    assert view["aws"]["secret_access_key"] == "file:/run/secrets/aws"
    assert view["aws"]["documentdb_uri"] == "mongodb://u:***@127.0.0.1:27017/"
    assert "base_dir" not in view


def test_stored_plans_round_trip_and_refuse_alteration(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    store = PlanStore(state)
    plan = build_plan(cfg_of())
    store.save(plan)
    assert store.require(plan.hash).hash == plan.hash
    assert store.latest("cutover") == store.get(plan.hash)
    assert store.latest("rollback") is None
    doc = json.loads(state.db.execute("SELECT document FROM cutover_plans").fetchone()[0])
    doc["inputs"]["lag_p99_s"] = 0.0
    state.db.execute("UPDATE cutover_plans SET document=?", (json.dumps(doc),))
    with pytest.raises(PlanError, match="was altered in the state store"):
        store.get(plan.hash)
    with pytest.raises(PlanError, match="is not a plan hash"):
        check_hash("abc")
    with pytest.raises(PlanError, match="no plan"):
        store.require("0" * 64)


def test_stale_reasons(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    store = PlanStore(state)
    cfg = cfg_of()
    old = build_plan(cfg)
    store.save(old)
    assert stale_reason(old, cfg=cfg, phase="pre_cutover", latest=store.latest("cutover")) \
        is None
    assert "made in phase pre_cutover, the migration is now post_cutover" in str(
        stale_reason(old, cfg=cfg, phase="post_cutover", latest=old))
    changed = cfg_of(cutover={"max_lag_s": 5})
    assert "the config changed since it was made ([cutover])" in str(
        stale_reason(old, cfg=changed, phase="pre_cutover", latest=old))
    new = build_plan(cfg, created_at="2026-12-01T12:05:00.000+00:00")
    store.save(new)
    assert "a newer cutover plan" in str(
        stale_reason(old, cfg=cfg, phase="pre_cutover", latest=store.latest("cutover")))
    store.mark_executed(new.hash, "2026-12-01T12:06:00+00:00")
    ran = store.require(new.hash)
    assert "already run" in str(stale_reason(ran, cfg=cfg, phase="pre_cutover", latest=ran))
    with pytest.raises(PlanError, match="already been run"):
        store.mark_executed(new.hash)
    assert store.last_executed("cutover") == ran
