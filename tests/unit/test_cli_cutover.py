"""`crosswind cutover|rollback plan|approve` and `crosswind audit verify|export`
through the real CLI (typer's runner), with real ssh-keygen keys. No stores are
reachable here, so the preflight gate fails with its reason: the plan is still
printed, saved and audited, exit 1, and cannot be approved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.cutover.plan import PlanStore
from crosswind.migration import MigrationStore, Phase
from crosswind.state import StateStore
from tests.unit.cutover_fixtures import Key, build_plan, load, make_key, ssh_sign, write_config


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), prog_name="crosswind")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    d = tmp_path_factory.mktemp("cli-keys")
    return {n: make_key(d, n) for n in ("alice", "bob")}


@pytest.fixture
def config(tmp_path: Path, keys: dict[str, Key]) -> Path:
    return write_config(tmp_path, {"alice": (keys["alice"], "platform"),
                                   "bob": (keys["bob"], "security")})


def test_plan_prints_steps_gates_and_the_hash_and_fails_on_a_gate(config: Path) -> None:
    r = invoke("cutover", "plan", "-c", str(config))
    assert r.exit_code == 1, r.output
    h = r.stdout.strip()
    assert len(h) == 64 and r.stdout == h + "\n"  # the hash alone on stdout
    for text in ("point_of_no_return", "freeze_azure", "wait_drained", "prove_reverse",
                 "replication", "the replication service is not running", "preflight",
                 "aws-to-azure preflight failed", "cannot be approved", f"plan {h}"):
        assert text in r.stderr, text
    state = StateStore(load(config).state_dir)
    try:
        plan = PlanStore(state).require(h)
        assert not plan.gates_passed
        audit = state.db.execute("SELECT body FROM audit_log").fetchall()
        assert len(audit) == 1 and json.loads(audit[0][0])["plan_hash"] == h
    finally:
        state.close()


def test_plan_json_has_the_whole_document(config: Path) -> None:
    r = invoke("cutover", "plan", "-c", str(config), "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["kind"] == "cutover" and doc["approvable"] is False
    assert len(doc["plan_hash"]) == 64 and doc["crosswind_version"]
    assert [g["name"] for g in doc["gates"]] == ["replication", "streams", "breakers", "dlq",
                                                 "validation", "preflight"]
    assert doc["runbook"]["steps"][0]["name"] == "check_gates"
    assert doc["config"]["azure"]["connection_string"] == "env:CW_TEST_NEVER_RESOLVED"


def test_rollback_plan_needs_post_cutover(config: Path) -> None:
    r = invoke("rollback", "plan", "-c", str(config))
    assert r.exit_code == 1
    assert r.stderr == ("error: the migration is pre_cutover: a rollback plan needs "
                        "post_cutover (crosswind cutover plan?)\n")


def test_a_failed_plan_cannot_be_approved(config: Path, keys: dict[str, Key]) -> None:
    h = invoke("cutover", "plan", "-c", str(config)).stdout.strip()
    r = invoke("cutover", "approve", "-c", str(config), "--plan", h, "--key",
               str(keys["alice"].private))
    assert r.exit_code == 1
    assert "failed its gates (replication, validation, preflight)" in r.stderr
    assert r.stderr.count("\n") == 1


def test_approve_with_a_key_and_with_a_signature_made_elsewhere(
        config: Path, keys: dict[str, Key], tmp_path: Path) -> None:
    cfg = load(config)
    state = StateStore(cfg.state_dir)
    plan = build_plan(cfg)
    try:
        PlanStore(state).save(plan)
    finally:
        state.close()
    r = invoke("cutover", "approve", "-c", str(config), "--plan", plan.hash, "--key",
               str(keys["alice"].private))
    assert r.exit_code == 0, r.output
    assert "accepted: alice (platform" in r.stderr
    assert "not approved: 1 of 2 approvals" in r.stderr
    again = invoke("cutover", "approve", "-c", str(config), "--plan", plan.hash, "--key",
                   str(keys["alice"].private))
    assert again.exit_code == 1 and "already approved" in again.stderr
    sig = tmp_path / "bob.sig"
    sig.write_text(ssh_sign(keys["bob"], plan.hash.encode() + b"\n", tmp_path))
    r = invoke("cutover", "approve", "-c", str(config), "--plan", plan.hash, "--signature",
               str(sig), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["approved"] is True and doc["approval"]["approver"] == "bob"
    # A cutover plan is not approved through rollback approve.
    wrong = invoke("rollback", "approve", "-c", str(config), "--plan", plan.hash,
                   "--signature", str(sig))
    assert wrong.exit_code == 1 and "is a cutover plan" in wrong.stderr
    both = invoke("cutover", "approve", "-c", str(config), "--plan", plan.hash)
    assert both.exit_code == 2 and "exactly one of --key" in both.stderr


def test_rollback_plan_and_approve_after_cutover(config: Path, keys: dict[str, Key],
                                                 tmp_path: Path) -> None:
    cfg = load(config)
    state = StateStore(cfg.state_dir)
    try:
        m = MigrationStore(state)
        m.transition(m.transition(0, Phase.CUTTING_OVER).version, Phase.POST_CUTOVER)
        plan = build_plan(cfg, kind="rollback")
        PlanStore(state).save(plan)
    finally:
        state.close()
    r = invoke("rollback", "approve", "-c", str(config), "--plan", plan.hash, "--key",
               str(keys["bob"].private))
    assert r.exit_code == 0, r.output
    assert "approved rollback plan" in r.stderr
    failed = invoke("rollback", "plan", "-c", str(config))
    # Only the required rollback gates block: the service is not running.
    assert failed.exit_code == 1 and "fail (advisory)" in failed.stderr


def test_audit_verify_and_export(config: Path, tmp_path: Path) -> None:
    for _ in range(3):
        invoke("cutover", "plan", "-c", str(config))
    r = invoke("audit", "verify", "-c", str(config))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("ok: 3 records, head 3:")
    head = r.stdout.split("head ")[1].strip()
    out = tmp_path / "audit.jsonl"
    r = invoke("audit", "export", "-c", str(config), "--out", str(out))
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 3
    assert invoke("audit", "verify", "-c", str(config), "--file", str(out), "--head",
                  head).exit_code == 0
    state = StateStore(load(config).state_dir)
    try:
        body = json.loads(state.db.execute("SELECT body FROM audit_log WHERE seq=2"
                                           ).fetchone()[0])
        body["outcome"] = "gates passed"
        state.db.execute("UPDATE audit_log SET body=? WHERE seq=2", (json.dumps(body),))
        state.db.execute("DELETE FROM audit_log WHERE seq=3")
    finally:
        state.close()
    r = invoke("audit", "verify", "-c", str(config), "--head", head)
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert "record 2: its content does not match its hash (edited)" in lines
    assert any("records 3..3 were removed (truncated)" in ln for ln in lines)
    j = json.loads(invoke("audit", "verify", "-c", str(config), "--json").stdout)
    assert j["ok"] is False and {p["seq"] for p in j["problems"]} >= {2}
