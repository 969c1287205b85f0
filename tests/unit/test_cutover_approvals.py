"""Approvals with real ed25519 keys made by ssh-keygen: what counts, every
refusal, the quorum, expiry, and rollback pre-approval."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from crosswind.audit import AuditLog
from crosswind.config import Config
from crosswind.cutover.approvals import (
    ApprovalBook,
    ApprovalRefused,
    fingerprint,
    sign_with_key,
    verify_signature,
)
from crosswind.cutover.plan import Plan, PlanStore
from crosswind.migration import MigrationStore, Phase
from crosswind.state import StateStore
from tests.unit.cutover_fixtures import (
    NOW,
    Key,
    build_plan,
    load,
    make_key,
    passing_inputs,
    ssh_sign,
    write_config,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    d = tmp_path_factory.mktemp("keys")
    return {n: make_key(d, n) for n in ("alice", "bob", "carol", "mallory")}


@pytest.fixture
def setup(tmp_path: Path, keys: dict[str, Key]) -> tuple[Config, StateStore, Plan]:
    path = write_config(tmp_path, {"alice": (keys["alice"], "platform"),
                                   "bob": (keys["bob"], "security"),
                                   "carol": (keys["carol"], "platform")})
    cfg = load(path)
    state = StateStore(cfg.state_dir)
    plan = build_plan(cfg)
    PlanStore(state).save(plan)
    return cfg, state, plan


def sig(key: Key, plan: Plan, tmp: Path, *, newline: bool = True, ns: str = "crosswind"
        ) -> str:
    return ssh_sign(key, plan.hash.encode() + (b"\n" if newline else b""), tmp, ns)


def test_a_signature_made_by_ssh_keygen_counts(setup: tuple[Config, StateStore, Plan],
                                               keys: dict[str, Key], tmp_path: Path) -> None:
    cfg, state, plan = setup
    book = ApprovalBook(state, cfg)
    a = book.approve(plan.hash, sig(keys["alice"], plan, tmp_path), recorded_by="ops",
                     now=NOW)
    assert (a.approver, a.role) == ("alice", "platform")
    assert a.key_fingerprint == fingerprint(keys["alice"].public)
    # Signed with printf '%s' (no newline) counts too.
    b = book.approve(plan.hash, sig(keys["bob"], plan, tmp_path, newline=False),
                     recorded_by="ops", now=NOW)
    assert b.approver == "bob"
    q = book.quorum(plan.hash, now=NOW + timedelta(seconds=1))
    assert q.ok and q.reason == "approved by alice (platform), bob (security)"


def test_sign_with_key_runs_ssh_keygen_and_ssh_keygen_agrees(
        setup: tuple[Config, StateStore, Plan], keys: dict[str, Key], tmp_path: Path) -> None:
    cfg, _, plan = setup
    armored = sign_with_key(keys["carol"].private, plan.hash)
    assert verify_signature(cfg, plan.hash, armored).approver == "carol"
    # The same signature passes OpenSSH's own verification, namespace and all.
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'carol namespaces="crosswind" {keys["carol"].public}\n')
    sigfile = tmp_path / "s.sig"
    sigfile.write_text(armored)
    done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "carol",
                           "-n", "crosswind", "-s", str(sigfile)],
                          input=(plan.hash + "\n").encode(), capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", ["twice", "unknown", "other-plan", "namespace", "garbage",
                                  "truncated"])
def test_refusals_are_one_line(case: str, setup: tuple[Config, StateStore, Plan],
                               keys: dict[str, Key], tmp_path: Path) -> None:
    cfg, state, plan = setup
    book = ApprovalBook(state, cfg)
    if case == "twice":
        book.approve(plan.hash, sig(keys["alice"], plan, tmp_path), recorded_by="o", now=NOW)
        armored, want = sig(keys["alice"], plan, tmp_path), "alice .* already approved plan"
    elif case == "unknown":
        armored, want = sig(keys["mallory"], plan, tmp_path), "unknown key SHA256:"
    elif case == "other-plan":
        armored = ssh_sign(keys["alice"], b"f" * 64 + b"\n", tmp_path)
        want = "bad signature: it is not alice's signature of plan"
    elif case == "namespace":
        armored, want = sig(keys["alice"], plan, tmp_path, ns="git"), "namespace 'git'"
    elif case == "garbage":
        armored, want = "hello", "not an SSH signature"
    else:
        good = sig(keys["alice"], plan, tmp_path).splitlines()
        armored, want = "\n".join([good[0], good[1][:20], good[-1]]), "cannot be read"
    with pytest.raises(ApprovalRefused, match=want) as exc:
        book.approve(plan.hash, armored, recorded_by="ops", now=NOW)
    assert "\n" not in str(exc.value)
    # Every refusal is audited.
    last = list(AuditLog(state).records())[-1]
    assert last.body["action"] == "approve" and str(last.body["outcome"]).startswith("refused")


def test_a_tampered_signature_is_bad(setup: tuple[Config, StateStore, Plan],
                                     keys: dict[str, Key], tmp_path: Path) -> None:
    cfg, state, plan = setup
    lines = sig(keys["alice"], plan, tmp_path).splitlines()
    body = list("".join(lines[1:-1]))
    body[-8] = "A" if body[-8] != "A" else "B"  # inside the ed25519 signature bytes
    text = "".join(body)
    armored = "\n".join([lines[0], *[text[i:i + 70] for i in range(0, len(text), 70)],
                         lines[-1]]) + "\n"
    with pytest.raises(ApprovalRefused, match=r"bad signature|cannot be read"):
        ApprovalBook(state, cfg).approve(plan.hash, armored, recorded_by="o", now=NOW)


def test_stale_and_failed_plans_cannot_be_approved(setup: tuple[Config, StateStore, Plan],
                                                   keys: dict[str, Key], tmp_path: Path
                                                   ) -> None:
    cfg, state, plan = setup
    book = ApprovalBook(state, cfg)
    failing = build_plan(cfg, inputs=passing_inputs(lag_p99_s=99.0),
                         created_at="2026-12-01T12:01:00.000+00:00")
    PlanStore(state).save(failing)
    with pytest.raises(ApprovalRefused, match="is stale: a newer cutover plan"):
        book.approve(plan.hash, sig(keys["alice"], plan, tmp_path), recorded_by="o", now=NOW)
    with pytest.raises(ApprovalRefused, match=r"failed its gates \(replication\)"):
        book.approve(failing.hash, sig(keys["alice"], failing, tmp_path), recorded_by="o",
                     now=NOW)
    with pytest.raises(ApprovalRefused, match="no plan"):
        book.approve("1" * 64, "x", recorded_by="o", now=NOW)


def test_quorum_rules(setup: tuple[Config, StateStore, Plan], keys: dict[str, Key],
                      tmp_path: Path) -> None:
    cfg, state, plan = setup
    book = ApprovalBook(state, cfg)
    book.approve(plan.hash, sig(keys["alice"], plan, tmp_path), recorded_by="o", now=NOW)
    q = book.quorum(plan.hash, now=NOW)
    assert not q.ok and q.reason == ("not approved: 1 of 2 approvals from distinct keys; "
                                     "role(s) security not covered")
    # Two keys of one role are two approvals, but the security role is still missing.
    book.approve(plan.hash, sig(keys["carol"], plan, tmp_path), recorded_by="o", now=NOW)
    q = book.quorum(plan.hash, now=NOW)
    assert not q.ok and q.missing_roles == ("security",)
    book.approve(plan.hash, sig(keys["bob"], plan, tmp_path), recorded_by="o",
                 now=NOW + timedelta(seconds=300))
    assert book.quorum(plan.hash, now=NOW + timedelta(seconds=301)).ok
    # approval_ttl_s = 600: alice and carol expire first, then nothing is approved.
    late = book.quorum(plan.hash, now=NOW + timedelta(seconds=600))
    assert not late.ok and [a.approver for a in late.counted] == ["bob"]


def test_a_config_change_voids_approvals(setup: tuple[Config, StateStore, Plan],
                                         keys: dict[str, Key], tmp_path: Path) -> None:
    cfg, state, plan = setup
    book = ApprovalBook(state, cfg)
    for k in ("alice", "bob"):
        book.approve(plan.hash, sig(keys[k], plan, tmp_path), recorded_by="o", now=NOW)
    assert book.quorum(plan.hash, now=NOW).ok
    changed = load(write_config(tmp_path, {"alice": (keys["alice"], "platform"),
                                           "bob": (keys["carol"], "security")}))
    q = ApprovalBook(state, changed).quorum(plan.hash, now=NOW)
    assert not q.ok and "the config changed" in q.reason
    # Judged without the staleness check, bob's approval no longer matches bob's key.
    q = ApprovalBook(state, changed).quorum(plan.hash, now=NOW, check_stale=False)
    assert [a.approver for a in q.counted] == ["alice"]


@pytest.mark.parametrize("preapproved", [True, False])
def test_rollback_preapproval(preapproved: bool, tmp_path: Path, keys: dict[str, Key]) -> None:
    extra = "rollback_preapproved = true" if preapproved else ""
    cfg = load(write_config(tmp_path, {"alice": (keys["alice"], "platform"),
                                       "bob": (keys["bob"], "security")}, extra))
    state = StateStore(cfg.state_dir)
    plans, book = PlanStore(state), ApprovalBook(state, cfg)
    cut = build_plan(cfg)
    plans.save(cut)
    for k in ("alice", "bob"):
        book.approve(cut.hash, sig(keys[k], cut, tmp_path), recorded_by="o", now=NOW)
    plans.mark_executed(cut.hash, (NOW + timedelta(seconds=60)).isoformat())
    m = MigrationStore(state)
    m.transition(m.transition(0, Phase.CUTTING_OVER).version, Phase.POST_CUTOVER)
    roll = build_plan(cfg, kind="rollback")
    plans.save(roll)
    # Days later the cutover's approvals have long expired; pre-approval still holds.
    auth = book.authorization(roll.hash, now=NOW + timedelta(days=3))
    assert auth.ok is preapproved
    if preapproved:
        assert "pre-approved" in auth.reason and "alice" in auth.reason
    else:
        assert "not approved" in auth.reason
