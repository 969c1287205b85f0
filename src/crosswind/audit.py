"""The audit log: a tamper-evident hash chain of every plan, approval, start,
step, trigger, abort, rollback and repair, in the state store.

Each record is a JSON object with the fields of NIST SP 800-53 AU-3 — what
(``action``), when (``time``), where (``where``: the host), source
(``source``: the process that wrote it), outcome, identity (``actor``:
principal and how it was verified) — plus the plan hash and the evidence
(lag, validation id, completeness, ...), its sequence number and ``prev``, the
SHA-256 of the previous record. A record's hash is SHA-256 over its RFC 8785
canonical JSON (the ``rfc8785`` package), so anyone can recompute it from an
export with a few lines of any language.

``verify`` walks the chain and reports every record that was edited (its
content no longer hashes to its hash), removed (a gap in the sequence, or a
``prev`` that does not match), inserted or reordered (``prev`` or ``seq`` out
of place), each with its sequence number.

Truncation — removing the newest records — leaves a chain that is valid on
its own, so it is caught only against a head kept somewhere else:

* the head file ``audit.head`` next to the state database, rewritten after
  every append (catches a database restored from an older copy or cut short);
* the audit head inside every stored plan: plans are signed by the approvers
  (they sign the plan hash, and the plan holds the head), so each approved
  plan is a signed checkpoint of the chain up to its record;
* a head the operator keeps outside the machine (``audit verify --head
  SEQ:HASH``, e.g. the line ``audit verify`` printed into the change ticket).

Someone who can rewrite the state database, the head file and the plans alike
can only be caught by the last one: keep the printed head somewhere they
cannot write.

Secrets never enter a record: evidence passes through the process-wide
redactor, and values under secret-looking names are kept only when they are
references (``env:``, ``file:``, ...).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from crosswind.errors import CrosswindError
from crosswind.secrets import MASK, is_reference, redact
from crosswind.state import StateStore, now_iso

GENESIS = "0" * 64
HEAD_FILE = "audit.head"
_HEAD_LINE = re.compile(r"^crosswind-audit-head v1 (\d+) ([0-9a-f]{64})$")
#: keys whose values are masked unless they are references
_SECRET_KEY = re.compile(r"(?i)(secret|password|passwd|token|credential|connection_string"
                         r"|account_key|private_key|sas)")


class AuditError(CrosswindError):
    pass


def canonical_json(doc: Any) -> bytes:
    """RFC 8785 canonical JSON (sorted keys, no whitespace, ES6 numbers, UTF-8)."""
    try:
        return rfc8785.dumps(doc)
    except rfc8785.CanonicalizationError as exc:
        raise AuditError(f"not representable as canonical JSON: {exc}") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Head:
    """The newest record: its sequence number and hash."""

    seq: int
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @staticmethod
    def parse(text: str) -> Head:
        seq, sep, h = text.strip().partition(":")
        if not sep or not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", h):
            raise AuditError(f"{text!r} is not an audit head (SEQ:HASH, as audit verify "
                             "prints it)")
        return Head(int(seq), h)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    hash: str
    body: Mapping[str, Any]

    def as_export(self) -> dict[str, Any]:
        return {**self.body, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Problem:
    #: the sequence number the problem is at (None: the chain as a whole)
    seq: int | None
    message: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.message}" if self.seq is not None else self.message


def clean(value: Any, key: str = "") -> Any:
    """``value`` made safe for a record: no secret values, JSON types only."""
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key) and not is_reference(value):
            return MASK
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def record_body(*, seq: int, prev: str, time: str, action: str, outcome: str,
                principal: str, verified_by: str, where: str, source: str,
                plan_hash: str | None, evidence: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "prev": prev, "time": time, "action": action, "outcome": outcome,
            "actor": {"principal": principal, "verified_by": verified_by},
            "where": where, "source": source, "plan_hash": plan_hash,
            "evidence": clean(evidence)}


def record_hash(body: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(dict(body)))


def verify_chain(rows: Iterable[tuple[int, str, str]], *,
                 heads: Iterable[tuple[str, Head]] = ()) -> tuple[list[Problem], Head | None]:
    """Check ``(seq, hash, body JSON)`` rows in ``seq`` order (pure). ``heads`` are
    (where it comes from, head) pairs kept elsewhere; each must be on the chain.
    Returns the problems and the chain's head."""
    problems: list[Problem] = []
    seen: dict[int, str] = {}
    prev, expected, last = GENESIS, 1, None
    for seq, stored, text in rows:
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            problems.append(Problem(seq, "is not a JSON object (edited)"))
            prev, expected, last = stored, seq + 1, Head(seq, stored)
            continue
        if seq < expected:
            problems.append(Problem(seq, f"comes after record {expected - 1} (reordered or "
                                         "duplicated)"))
        elif seq > expected:
            gone = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            problems.append(Problem(seq, f"record(s) {gone} before it are missing (removed)"))
        if body.get("seq") != seq:
            problems.append(Problem(seq, f"says it is record {body.get('seq')} (moved, "
                                         "reordered or inserted)"))
        if record_hash(body) != stored:
            problems.append(Problem(seq, "its content does not match its hash (edited)"))
        if body.get("prev") != prev and seq == expected:
            problems.append(Problem(seq, f"its prev does not match record {seq - 1}'s hash "
                                         "(a record was edited, inserted or reordered "
                                         "here)" if seq > 1 else "the first record does "
                                         "not start the chain (records before it removed "
                                         "or one inserted)"))
        seen[seq] = stored
        prev, expected, last = stored, seq + 1, Head(seq, stored)
    for where, head in heads:
        if last is None or head.seq > last.seq:
            have = 0 if last is None else last.seq
            problems.append(Problem(None, f"the chain ends at record {have} but {where} "
                                          f"has record {head.seq}: records "
                                          f"{have + 1}..{head.seq} were removed (truncated)"))
        elif seen.get(head.seq) != head.hash:
            problems.append(Problem(head.seq, f"does not match the hash {where} has for it "
                                              "(the chain was rewritten)"))
    return problems, last


class AuditLog:
    """The chain in a state store. Appends from several processes (the service,
    an ``approve`` command) are serialized by a lock file next to the database,
    which also orders the head-file writes."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db
        self.head_path = state.directory / HEAD_FILE
        self._lock_path = state.directory / "audit.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def append(self, action: str, outcome: str, *, principal: str, verified_by: str,
               plan_hash: str | None = None, evidence: Mapping[str, Any] | None = None,
               source: str | None = None, at: str | None = None) -> AuditRecord:
        with self._locked():
            with self.state.tx() as db:
                row = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
                                 ).fetchone()
                seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
                body = record_body(
                    seq=seq, prev=prev, time=at or now_iso(), action=action,
                    outcome=redact(outcome), principal=redact(principal),
                    verified_by=redact(verified_by), where=socket.gethostname(),
                    source=redact(source or _source()), plan_hash=plan_hash,
                    evidence=evidence or {})
                text = canonical_json(body).decode("utf-8")
                h = sha256_hex(text.encode("utf-8"))
                db.execute("INSERT INTO audit_log(seq, hash, body) VALUES (?, ?, ?)",
                           (seq, h, text))
            self._write_head(Head(seq, h))
        return AuditRecord(seq, h, body)

    def _write_head(self, head: Head) -> None:
        tmp = self.head_path.with_name(f"{HEAD_FILE}.{os.getpid()}.tmp")
        tmp.write_text(f"crosswind-audit-head v1 {head.seq} {head.hash}\n", encoding="utf-8")
        tmp.replace(self.head_path)

    def head_file(self) -> Head | None:
        try:
            text = self.head_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        m = _HEAD_LINE.match(text)
        if not m:
            raise AuditError(f"{self.head_path} is not an audit head file")
        return Head(int(m.group(1)), m.group(2))

    def head(self) -> Head | None:
        row = self.db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
                              ).fetchone()
        return None if row is None else Head(int(row[0]), str(row[1]))

    def _rows(self) -> Iterator[tuple[int, str, str]]:
        cur = self.db.execute("SELECT seq, hash, body FROM audit_log ORDER BY seq")
        while batch := cur.fetchmany(1000):
            for seq, h, body in batch:
                yield int(seq), str(h), str(body)

    def records(self) -> Iterator[AuditRecord]:
        for seq, h, body in self._rows():
            yield AuditRecord(seq, h, json.loads(body))

    def verify(self, anchors: Iterable[tuple[str, Head]] = ()) -> tuple[list[Problem],
                                                                     Head | None]:
        """Problems of the chain, checked against the head file and ``anchors``
        (e.g. the heads stored plans recorded, or one given by the operator)."""
        heads: list[tuple[str, Head]] = []
        problems: list[Problem] = []
        try:
            on_file = self.head_file()
        except AuditError as exc:
            problems.append(Problem(None, str(exc)))
            on_file = None
        if on_file is not None:
            heads.append((f"the head file {self.head_path.name}", on_file))
        elif self.head() is not None and not problems:
            problems.append(Problem(None, f"the head file {self.head_path.name} is missing: "
                                          "removal of the newest records cannot be ruled "
                                          "out (check against a head kept elsewhere with "
                                          "--head)"))
        heads.extend(anchors)
        found, head = verify_chain(self._rows(), heads=heads)
        return problems + found, head

    def export(self, path: Path) -> tuple[int, Head | None]:
        """Every record as one line of JSON (the record plus its ``hash``), written
        to a temporary file and renamed into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        n, head = 0, None
        with tmp.open("w", encoding="utf-8") as f:
            for rec in self.records():
                f.write(canonical_json(rec.as_export()).decode("utf-8") + "\n")
                n, head = n + 1, Head(rec.seq, rec.hash)
        tmp.replace(path)
        return n, head


def read_export(path: Path) -> Iterator[tuple[int, str, str]]:
    """Rows of an export, for ``verify_chain`` (each line: the record plus ``hash``)."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                doc = json.loads(line)
                h = str(doc.pop("hash"))
                seq = int(doc["seq"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise AuditError(f"{path}:{n}: not an audit record") from None
            yield seq, h, json.dumps(doc)


def _source() -> str:
    return f"{os.environ.get('USER') or os.getuid()} pid {os.getpid()}"
