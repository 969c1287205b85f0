"""The plan: what a switch will do and what its gates saw, as one document with
one hash.

The document holds the config (secrets only by reference: a literal secret,
which only an emulator config may have, shows as ``<literal secret, not
shown>``), the gates' inputs and results, the runbook's steps, the migration
phase, when and by whom it was made, and the audit chain's head at that
moment. Its hash is SHA-256 over the RFC 8785 canonical JSON of that document
(the ``rfc8785`` package): same document, same hash, on any machine; any
change, a different hash. Approvers sign the hash, so an approval covers
exactly what they were shown. Because the audit head is inside, every approved
plan also anchors the audit chain up to that record (``audit verify`` checks
stored plans' anchors).

Plans are kept in the state store (``cutover_plans``). A plan is *stale* —
cannot be approved or run — when a newer plan of its kind exists, the
migration phase moved, the config or the runbook it would produce changed, or
it has already been run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crosswind.audit import Head, canonical_json, sha256_hex
from crosswind.config import Config
from crosswind.cutover.gates import GateInputs, GateResult, Kind, all_pass
from crosswind.cutover.runbook import Runbook, runbook_for
from crosswind.errors import CrosswindError
from crosswind.secrets import is_reference, redact
from crosswind.state import StateStore, now_iso

FORMAT = "crosswind-plan/1"
LITERAL = "<literal secret, not shown>"
#: config fields that hold secrets or references to them
SECRET_FIELDS = frozenset({("azure", "connection_string"), ("azure", "credential"),
                           ("aws", "access_key_id"), ("aws", "secret_access_key"),
                           ("aws", "session_token")})
HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class PlanError(CrosswindError):
    pass


def config_view(cfg: Config) -> dict[str, Any]:
    """The config as the plan shows it: every setting, secrets only by reference."""
    doc = cfg.model_dump(mode="json", exclude={"base_dir"})
    doc["state"] = {"dir": str(cfg.state_dir)}
    for section, name in SECRET_FIELDS:
        value = doc.get(section, {}).get(name)
        if isinstance(value, str) and not (is_reference(value) or value == "default"):
            doc[section][name] = LITERAL
    uri = doc.get("aws", {}).get("documentdb_uri")
    if isinstance(uri, str) and not is_reference(uri):
        doc["aws"]["documentdb_uri"] = _without_password(uri)
    out: dict[str, Any] = _redacted(doc)
    return out


def _without_password(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _redacted(value: Any) -> Any:
    """Every string through the process-wide redactor (registered secrets and the
    shapes of secrets), e.g. a hook command someone wrote a token into."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def plan_document(*, kind: Kind, cfg: Config, phase: str, inputs: GateInputs,
                  gates: Sequence[GateResult], runbook: Runbook, created_at: str,
                  created_by: str, audit_head: Head | None) -> dict[str, Any]:
    """The document the hash is taken over (pure: same arguments, same document)."""
    return {
        "format": FORMAT,
        "kind": kind,
        "created_at": created_at,
        "created_by": created_by,
        "phase": phase,
        "config": config_view(cfg),
        "inputs": _redacted(inputs.as_dict()),
        "gates": _redacted([g.as_dict() for g in gates]),
        "gates_passed": all_pass(gates),
        "runbook": _redacted(runbook.as_dict()),
        "audit_head": None if audit_head is None else audit_head.as_dict(),
    }


def plan_hash(document: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(document))


@dataclass(frozen=True, slots=True)
class Plan:
    hash: str
    document: Mapping[str, Any]
    executed_at: str | None = None

    @property
    def kind(self) -> Kind:
        k = str(self.document["kind"])
        return "cutover" if k == "cutover" else "rollback"

    @property
    def gates_passed(self) -> bool:
        return bool(self.document["gates_passed"])

    @property
    def created_at(self) -> str:
        return str(self.document["created_at"])

    @property
    def audit_head(self) -> Head | None:
        h = self.document.get("audit_head")
        return None if not h else Head(int(h["seq"]), str(h["hash"]))


def make_plan(**kw: Any) -> Plan:
    doc = plan_document(**kw)
    return Plan(plan_hash(doc), doc)


def check_hash(text: str) -> str:
    h = text.strip().lower()
    if not HASH_RE.match(h):
        raise PlanError(f"{text!r} is not a plan hash (64 hex digits, as cutover plan "
                        "prints it)")
    return h


class PlanStore:
    def __init__(self, state: StateStore) -> None:
        self.db = state.db

    def save(self, plan: Plan) -> None:
        # Stored as the canonical text: reading it back gives the same hash.
        self.db.execute(
            "INSERT OR IGNORE INTO cutover_plans(hash, kind, created_at, phase, gates_passed,"
            " document) VALUES (?, ?, ?, ?, ?, ?)",
            (plan.hash, plan.kind, plan.created_at, str(plan.document["phase"]),
             int(plan.gates_passed), canonical_json(plan.document).decode("utf-8")))

    def get(self, hash_: str) -> Plan | None:
        row = self.db.execute("SELECT document, executed_at FROM cutover_plans WHERE hash=?",
                              (hash_,)).fetchone()
        if row is None:
            return None
        plan = self._plan(row[0], row[1])
        if plan.hash != hash_:
            raise PlanError(f"plan {hash_[:12]}… was altered in the state store (its "
                            f"document now hashes to {plan.hash[:12]}…); plan again")
        return plan

    def require(self, hash_: str) -> Plan:
        plan = self.get(check_hash(hash_))
        if plan is None:
            raise PlanError(f"no plan {hash_[:12]}… in the state store (make one with "
                            "crosswind cutover plan / rollback plan)")
        return plan

    def latest(self, kind: Kind) -> Plan | None:
        row = self.db.execute("SELECT document, executed_at FROM cutover_plans WHERE kind=?"
                              " ORDER BY seq DESC LIMIT 1", (kind,)).fetchone()
        return None if row is None else self._plan(row[0], row[1])

    def last_executed(self, kind: Kind) -> Plan | None:
        row = self.db.execute("SELECT document, executed_at FROM cutover_plans WHERE kind=?"
                              " AND executed_at IS NOT NULL ORDER BY executed_at DESC LIMIT 1",
                              (kind,)).fetchone()
        return None if row is None else self._plan(row[0], row[1])

    def mark_executed(self, hash_: str, at: str | None = None) -> None:
        """The executor calls this when it starts running the plan: it can run once."""
        cur = self.db.execute("UPDATE cutover_plans SET executed_at=? WHERE hash=? AND"
                              " executed_at IS NULL", (at or now_iso(), hash_))
        if cur.rowcount != 1:
            raise PlanError(f"plan {hash_[:12]}… is unknown or has already been run")

    def anchors(self) -> list[tuple[str, Head]]:
        """(plan hash, audit head) of every stored plan that recorded one."""
        out = []
        for h, doc in self.db.execute("SELECT hash, document FROM cutover_plans ORDER BY seq"):
            head = Plan(h, json.loads(doc)).audit_head
            if head is not None:
                out.append((str(h), head))
        return out

    @staticmethod
    def _plan(doc: str, executed_at: str | None) -> Plan:
        document = json.loads(doc)
        return Plan(plan_hash(document), document, executed_at)


def stale_reason(plan: Plan, *, cfg: Config, phase: str, latest: Plan | None) -> str | None:
    """Why ``plan`` can no longer be approved or run, or None while it can."""
    if plan.executed_at:
        return f"plan {plan.hash[:12]}… was already run at {plan.executed_at}; plan again"
    if latest is not None and latest.hash != plan.hash:
        return (f"plan {plan.hash[:12]}… is stale: a newer {plan.kind} plan "
                f"{latest.hash[:12]}… was made at {latest.created_at}")
    if plan.document["phase"] != phase:
        return (f"plan {plan.hash[:12]}… is stale: it was made in phase "
                f"{plan.document['phase']}, the migration is now {phase}")
    now_cfg, then = config_view(cfg), plan.document["config"]
    if canonical_json(now_cfg) != canonical_json(then):
        changed = sorted(k for k in set(now_cfg) | set(then)
                         if canonical_json(now_cfg.get(k)) != canonical_json(then.get(k)))
        return (f"plan {plan.hash[:12]}… is stale: the config changed since it was made "
                f"([{'], ['.join(changed)}]); plan again")
    book = _redacted(runbook_for(plan.kind, cfg.cutover, cfg.validation).as_dict())
    if canonical_json(book) != canonical_json(plan.document["runbook"]):
        return (f"plan {plan.hash[:12]}… is stale: this crosswind would run other steps "
                "than the plan lists; plan again")
    return None
