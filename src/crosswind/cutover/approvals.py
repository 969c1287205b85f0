"""Approvals: SSH signatures over a plan hash, from the keys listed in
``[cutover.approvers.NAME]``.

An approver signs the plan hash with their own key, exactly as

    printf '%s\\n' HASH > plan.txt
    ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n crosswind plan.txt   # → plan.txt.sig

does (``crosswind cutover approve --key PATH`` runs that command for them;
``--signature plan.txt.sig`` takes one made on another machine, which is how a
second team approves). The signed message is the 64 hex digits of the hash,
with or without one trailing newline. The namespace ``crosswind`` keeps a
signature made for git or anything else from counting here.

Verification is in Python with the ``sshsig`` package (the SSHSIG format of
OpenSSH's PROTOCOL.sshsig over ``cryptography``'s Ed25519), with the checks
``ssh-keygen -Y verify`` makes and ``sshsig`` leaves to its caller: the
namespace, a hash algorithm of sha256 or sha512 only, an ed25519 key only. No
process to start, and no allowed-signers file to write.

Rules: a switch needs approvals from at least two distinct keys, covering
every role in ``[cutover] required_roles``; an approval expires
``approval_ttl_s`` after it was recorded; it is void when the plan is stale
(``plan.stale_reason``); a second approval by the same key, an unknown key, a
bad signature, another namespace, a plan whose gates failed or a stale plan is
refused with a one-line reason. Every accepted and refused approval goes to
the audit chain.
"""

from __future__ import annotations

import binascii
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sshsig
from sshsig.sshsig import SshsigSignature

from crosswind.audit import AuditLog
from crosswind.config import Config
from crosswind.cutover.plan import Plan, PlanStore, check_hash, stale_reason
from crosswind.errors import CrosswindError
from crosswind.migration import MigrationStore
from crosswind.state import StateStore

NAMESPACE = "crosswind"
#: approvals needed at least, whatever required_roles says (two principals, CW-5)
MIN_APPROVALS = 2
_HASH_ALGOS = (b"sha256", b"sha512")
MAX_SIGNATURE = 16 * 1024


class ApprovalRefused(CrosswindError):
    """An approval that does not count, with the one-line reason."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Approval:
    plan_hash: str
    kind: str
    approver: str
    role: str
    key_fingerprint: str
    approved_at: str
    recorded_by: str | None = None

    def expires_at(self, ttl_s: float) -> datetime:
        return datetime.fromisoformat(self.approved_at) + timedelta(seconds=ttl_s)

    def expired(self, ttl_s: float, now: datetime) -> bool:
        return now >= self.expires_at(ttl_s)

    def as_dict(self, ttl_s: float | None = None, now: datetime | None = None
                ) -> dict[str, object]:
        d: dict[str, object] = {
            "plan_hash": self.plan_hash, "kind": self.kind, "approver": self.approver,
            "role": self.role, "key_fingerprint": self.key_fingerprint,
            "approved_at": self.approved_at, "recorded_by": self.recorded_by}
        if ttl_s is not None:
            d["expires_at"] = self.expires_at(ttl_s).isoformat(timespec="milliseconds")
            if now is not None:
                d["expired"] = self.expired(ttl_s, now)
        return d


@dataclass(frozen=True, slots=True)
class Quorum:
    ok: bool
    reason: str
    #: approvals that count now (unexpired, from a currently listed key and role)
    counted: tuple[Approval, ...]
    missing_roles: tuple[str, ...]


def fingerprint(public_key: str) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    return str(sshsig.PublicKey.from_openssh_str(public_key).sha256_str())


def signed_messages(plan_hash: str) -> tuple[bytes, bytes]:
    """What a signature may cover: the hash with one newline (``echo``) or without."""
    return (plan_hash.encode("ascii") + b"\n", plan_hash.encode("ascii"))


@dataclass(frozen=True, slots=True)
class Verified:
    approver: str
    role: str
    key_fingerprint: str


def verify_signature(config: Config, plan_hash: str, armored: str) -> Verified:
    """The approver whose key made ``armored`` over ``plan_hash`` in the crosswind
    namespace, or ``ApprovalRefused`` saying why not."""
    approvers = config.cutover.approvers
    if not approvers:
        raise ApprovalRefused("no approvers are configured ([cutover.approvers.NAME] "
                              "tables with public_key and role)")
    if len(armored) > MAX_SIGNATURE or "-----BEGIN SSH SIGNATURE-----" not in armored:
        raise ApprovalRefused("not an SSH signature (expected the armored output of "
                              "ssh-keygen -Y sign)")
    try:
        outer = SshsigSignature.from_armored(armored)
        key = sshsig.PublicKey.from_ssh_encoding(outer.public_key)
    except (ValueError, NotImplementedError, binascii.Error, IndexError) as exc:
        raise ApprovalRefused(f"the signature cannot be read: {exc}") from None
    if outer.namespace != NAMESPACE.encode():
        shown = outer.namespace.decode("ascii", "replace")
        raise ApprovalRefused(f"the signature is for namespace {shown!r}, not {NAMESPACE!r} "
                              f"(sign with ssh-keygen -Y sign -n {NAMESPACE})")
    if outer.hash_algo not in _HASH_ALGOS:
        raise ApprovalRefused(f"the signature uses hash {outer.hash_algo!r}; only sha256 "
                              "and sha512 are accepted")
    if key.algo_name != "ssh-ed25519":
        raise ApprovalRefused(f"the signature is made with a {key.algo_name} key; approvers "
                              "sign with ed25519 keys")
    fp = key.sha256_str()
    name = next((n for n, a in approvers.items()
                 if sshsig.PublicKey.from_openssh_str(a.public_key) == key), None)
    if name is None:
        raise ApprovalRefused(f"unknown key {fp}: it is not the public_key of any "
                              "[cutover.approvers] entry")
    for message in signed_messages(plan_hash):
        try:
            sshsig.verify(message, armored, [key], namespace=NAMESPACE)
        except sshsig.InvalidSignature:
            continue
        except Exception:  # noqa: S112  a malformed inner signature (sshsig asserts)
            continue
        return Verified(name, approvers[name].role, fp)
    raise ApprovalRefused(f"bad signature: it is not {name}'s signature of plan "
                          f"{plan_hash[:12]}… (signed another file, or altered)")


def sign_with_key(key_path: Path, plan_hash: str, *, timeout_s: float = 120.0) -> str:
    """Sign ``plan_hash`` with the private key at ``key_path`` by running
    ``ssh-keygen -Y sign -n crosswind`` (a passphrase is asked on the terminal, an
    agent is used for a .pub path, as ssh-keygen does)."""
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise ApprovalRefused("ssh-keygen is not installed (Debian: openssh-client); sign "
                              "elsewhere and pass --signature FILE")
    if not key_path.exists():
        raise ApprovalRefused(f"--key {key_path}: no such file")
    with tempfile.TemporaryDirectory(prefix="crosswind-sign-") as tmp:
        msg = Path(tmp) / "plan.txt"
        msg.write_bytes(signed_messages(plan_hash)[0])
        try:
            done = subprocess.run([exe, "-Y", "sign", "-f", str(key_path), "-n", NAMESPACE,
                                   str(msg)], capture_output=True, text=True,
                                  timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ApprovalRefused(f"ssh-keygen -Y sign did not finish within "
                                  f"{timeout_s:.0f}s") from None
        sig = msg.with_name("plan.txt.sig")
        if done.returncode != 0 or not sig.exists():
            why = " ".join(done.stderr.split())[-300:] or f"exit {done.returncode}"
            raise ApprovalRefused(f"ssh-keygen -Y sign failed: {why}")
        return sig.read_text(encoding="ascii")


class ApprovalBook:
    """Approvals in the state store (``cutover_approvals``)."""

    def __init__(self, state: StateStore, config: Config) -> None:
        self.state = state
        self.db = state.db
        self.config = config
        self.plans = PlanStore(state)
        self.audit = AuditLog(state)

    @property
    def ttl_s(self) -> float:
        return self.config.cutover.approval_ttl_s

    def approve(self, plan_hash: str, armored: str, *, recorded_by: str,
                now: datetime | None = None) -> Approval:
        """Check and record one approval; a refusal is audited and raised."""
        at = now or datetime.now(UTC)
        h = check_hash(plan_hash)
        try:
            plan = self.plans.require(h)
            self._approvable(plan)
            who = verify_signature(self.config, h, armored)
            approval = Approval(h, plan.kind, who.approver, who.role, who.key_fingerprint,
                                at.isoformat(timespec="milliseconds"), recorded_by)
            self._record(approval, armored)
        except ApprovalRefused as exc:
            self.audit.append("approve", f"refused: {exc}", principal=recorded_by,
                              verified_by="not verified", plan_hash=h,
                              evidence={"reason": str(exc)})
            raise
        except CrosswindError as exc:  # no such plan, altered plan
            self.audit.append("approve", f"refused: {exc}", principal=recorded_by,
                              verified_by="not verified", plan_hash=h,
                              evidence={"reason": str(exc)})
            raise ApprovalRefused(str(exc)) from None
        self.audit.append(
            "approve", "accepted", principal=approval.approver,
            verified_by=f"ssh-ed25519 signature, key {approval.key_fingerprint}, namespace "
                        f"{NAMESPACE}, listed in [cutover.approvers.{approval.approver}]",
            plan_hash=h, source=recorded_by,
            evidence={"kind": plan.kind, "role": approval.role,
                      "expires_at": approval.expires_at(self.ttl_s).isoformat(),
                      "gates_passed": plan.gates_passed})
        return approval

    def _approvable(self, plan: Plan) -> None:
        phase = MigrationStore(self.state).get().phase.value
        why = stale_reason(plan, cfg=self.config, phase=phase,
                           latest=self.plans.latest(plan.kind))
        if why:
            raise ApprovalRefused(why)
        if not plan.gates_passed:
            failed = [g["name"] for g in plan.document["gates"]
                      if g["required"] and not g["passed"]]
            raise ApprovalRefused(f"plan {plan.hash[:12]}… failed its gates "
                                  f"({', '.join(failed)}); fix them and plan again")

    def _record(self, a: Approval, armored: str) -> None:
        with self.state.tx() as db:
            row = db.execute("SELECT approver, approved_at FROM cutover_approvals WHERE"
                             " plan_hash=? AND key_fingerprint=?",
                             (a.plan_hash, a.key_fingerprint)).fetchone()
            if row is not None:
                raise ApprovalRefused(f"{a.approver} ({a.key_fingerprint}) already approved "
                                      f"plan {a.plan_hash[:12]}… at {row[1]}; a second "
                                      "approval must come from another key")
            db.execute("INSERT INTO cutover_approvals(plan_hash, kind, approver, role,"
                       " key_fingerprint, signature, approved_at, recorded_by)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (a.plan_hash, a.kind, a.approver, a.role, a.key_fingerprint, armored,
                        a.approved_at, a.recorded_by))

    def approvals(self, plan_hash: str) -> list[Approval]:
        rows = self.db.execute(
            "SELECT plan_hash, kind, approver, role, key_fingerprint, approved_at, recorded_by"
            " FROM cutover_approvals WHERE plan_hash=? ORDER BY id", (plan_hash,)).fetchall()
        return [Approval(*r) for r in rows]

    def quorum(self, plan_hash: str, *, now: datetime | None = None,
               check_stale: bool = True) -> Quorum:
        """Whether ``plan_hash`` is approved at ``now``. Each stored approval counts
        only while unexpired, its signature still verifies, and its key and role are
        still the configured ones (removing an approver voids their approvals)."""
        at = now or datetime.now(UTC)
        plan = self.plans.get(check_hash(plan_hash))
        if plan is None:
            return Quorum(False, f"no plan {plan_hash[:12]}…", (), ())
        if check_stale:
            phase = MigrationStore(self.state).get().phase.value
            why = stale_reason(plan, cfg=self.config, phase=phase,
                               latest=self.plans.latest(plan.kind))
            if why:
                return Quorum(False, why, (), ())
        counted = []
        for a, armored in self._with_signatures(plan.hash):
            if a.expired(self.ttl_s, at):
                continue
            try:
                who = verify_signature(self.config, plan.hash, armored)
            except ApprovalRefused:
                continue
            if (who.approver, who.role) == (a.approver, a.role):
                counted.append(a)
        return _decide(counted, self.config.cutover.required_roles)

    def _with_signatures(self, plan_hash: str) -> list[tuple[Approval, str]]:
        rows = self.db.execute(
            "SELECT plan_hash, kind, approver, role, key_fingerprint, approved_at,"
            " recorded_by, signature FROM cutover_approvals WHERE plan_hash=? ORDER BY id",
            (plan_hash,)).fetchall()
        return [(Approval(*r[:7]), str(r[7])) for r in rows]

    def authorization(self, plan_hash: str, *, now: datetime | None = None) -> Quorum:
        """Whether the plan may run. A rollback plan without a quorum of its own is
        authorized by the approvals of the cutover that was run last, when
        ``rollback_preapproved`` is set: those are judged at the moment that cutover
        started (an automatic rollback may come days later)."""
        own = self.quorum(plan_hash, now=now)
        plan = self.plans.get(check_hash(plan_hash))
        if own.ok or plan is None or plan.kind != "rollback":
            return own
        if not self.config.cutover.rollback_preapproved:
            return own
        if stale_reason(plan, cfg=self.config, phase=MigrationStore(self.state).get()
                        .phase.value, latest=self.plans.latest("rollback")):
            return own
        cut = self.plans.last_executed("cutover")
        if cut is None or cut.executed_at is None:
            return Quorum(False, f"{own.reason}; rollback_preapproved is set but no cutover "
                          "has been run", own.counted, own.missing_roles)
        then = datetime.fromisoformat(cut.executed_at)
        pre = self.quorum(cut.hash, now=then, check_stale=False)
        if not pre.ok:
            return Quorum(False, f"{own.reason}; the cutover's approvals do not cover it "
                          f"({pre.reason})", own.counted, own.missing_roles)
        names = ", ".join(a.approver for a in pre.counted)
        return Quorum(True, f"pre-approved: rollback_preapproved, by the approvals of "
                      f"cutover plan {cut.hash[:12]}… ({names})", pre.counted, ())


def _decide(counted: Sequence[Approval], roles: Sequence[str]) -> Quorum:
    keys = {a.key_fingerprint for a in counted}
    have = {a.role for a in counted}
    missing = tuple(r for r in roles if r not in have)
    need = max(MIN_APPROVALS, len(roles))
    if len(keys) < need or missing:
        parts = [f"{len(keys)} of {need} approvals from distinct keys"]
        if missing:
            parts.append(f"role(s) {', '.join(missing)} not covered")
        return Quorum(False, "not approved: " + "; ".join(parts), tuple(counted), missing)
    names = ", ".join(f"{a.approver} ({a.role})" for a in counted)
    return Quorum(True, f"approved by {names}", tuple(counted), ())

