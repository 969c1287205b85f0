"""`crosswind cutover plan` on the rig: the replication service running,
a real validation, a real preflight of aws-to-azure against Azurite and moto;
then two approvals with real ssh-keygen keys, and the audit chain verified."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from crosswind.cutover.approvals import ApprovalBook
from crosswind.state import StateStore
from tests.integration.live.conftest import LiveEnv, Service, stream
from tests.unit.cutover_fixtures import make_key

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args], capture_output=True,
                          text=True, timeout=120)


def test_plan_passes_every_gate_on_a_live_estate_and_two_teams_approve(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service],
        tmp_path: Path) -> None:
    live = make_live_env()
    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    with live.path.open("a") as f:
        f.write(f'\n[cutover]\nmax_lag_s = 30\n'
                f'[cutover.approvers.alice]\npublic_key = "{alice.public}"\n'
                f'role = "platform"\n'
                f'[cutover.approvers.bob]\npublic_key = "{bob.public}"\nrole = "security"\n')
    keys = [f"flights/FX{i:03d}.json" for i in range(5)]
    svc = services(live)
    for i, k in enumerate(keys):
        live.put_blob(k, json.dumps({"i": i}).encode())
    svc.wait_until(lambda s: stream(s, "azure-blob-events")["applied"] >= len(keys)
                   and stream(s, "azure-blob-events")["backlog"] == 0, what="applied")

    # Before any validation the plan is refused, with the reason.
    before = cli("cutover", "plan", "-c", str(live.path), "--json")
    assert before.returncode == 1, before.stderr
    gates = {g["name"]: g for g in json.loads(before.stdout)["gates"]}
    assert not gates["validation"]["passed"] and gates["preflight"]["passed"]
    assert gates["replication"]["passed"], gates["replication"]

    v = cli("validate", "-c", str(live.path), "--objects", "--full")
    assert v.returncode == 0, v.stderr
    r = cli("cutover", "plan", "-c", str(live.path), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert plan["approvable"] and all(g["passed"] for g in plan["gates"])
    pre = {g["name"]: g for g in plan["gates"]}["preflight"]
    assert pre["evidence"]["direction"] == "aws-to-azure"
    assert any(c.endswith(": write") for c in pre["evidence"]["checked"])
    assert plan["inputs"]["validation"]["verdict"] == "pass"
    h = plan["plan_hash"]

    a = cli("cutover", "approve", "-c", str(live.path), "--plan", h, "--key",
            str(alice.private))
    assert a.returncode == 0, a.stderr
    b = cli("cutover", "approve", "-c", str(live.path), "--plan", h, "--key",
            str(bob.private), "--json")
    assert b.returncode == 0, b.stderr
    assert json.loads(b.stdout)["approved"] is True
    state = StateStore(live.config.state_dir)
    try:
        assert ApprovalBook(state, live.config).quorum(h).ok
    finally:
        state.close()

    audit = cli("audit", "verify", "-c", str(live.path))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.startswith("ok: 4 records")  # two plans, two approvals
    assert svc.terminate() == 0
