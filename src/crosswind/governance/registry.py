"""The schema registry, in the state store: subjects, their versions, and the
compatibility mode of each subject (Confluent's: NONE, BACKWARD, FORWARD, FULL
and their ``_TRANSITIVE`` forms; BACKWARD by default).

Like Confluent's registry: registering the schema a subject already has (by
its canonical JSON, RFC 8785) returns that version; a schema that is not
compatible under the subject's mode is refused with the reasons; versions count
1, 2, 3 … per subject and never change. Writes are single transactions, so a
``schema register`` may run beside ``crosswind replicate``; the service's
validation before write picks the new version up within seconds.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import rfc8785

from crosswind.errors import ConfigError, CrosswindError
from crosswind.governance.compat import DEFAULT_MODE, MODES, Mode, check_mode, check_schema
from crosswind.governance.subjects import DRAFT_2020_12, SUBJECTS
from crosswind.state import StateStore, now_iso

DDL = """
CREATE TABLE IF NOT EXISTS schema_subjects(
    subject TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_versions(
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    registered_by TEXT,
    UNIQUE(subject, version)
);
"""


class SchemaIncompatible(CrosswindError):
    """A new schema breaks the subject's compatibility mode (exit 1)."""

    exit_code = 1

    def __init__(self, subject: str, mode: str, reasons: list[str]) -> None:
        super().__init__(f"schema for {subject!r} is not {mode} compatible: "
                         + "; ".join(reasons[:3])
                         + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""))
        self.reasons = reasons


class SchemaInvalid(CrosswindError):
    """Not a Draft 2020-12 schema, or an unknown subject (exit 2)."""

    exit_code = 2


def ensure_tables(db: sqlite3.Connection, ddl: str) -> None:
    """Create the tables if missing, one statement at a time: ``executescript``
    would first commit a transaction another task of the process has open."""
    for statement in ddl.split(";"):
        if statement.strip():
            db.execute(statement)


def canonical(schema: Any) -> bytes:
    return rfc8785.dumps(schema)


def fingerprint(schema: Any) -> str:
    return hashlib.sha256(canonical(schema)).hexdigest()


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    subject: str
    version: int
    id: int
    schema: Any
    fingerprint: str
    registered_at: str
    registered_by: str | None

    def as_dict(self, with_schema: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"subject": self.subject, "version": self.version, "id": self.id,
                             "fingerprint": self.fingerprint,
                             "registered_at": self.registered_at,
                             "registered_by": self.registered_by}
        if with_schema:
            d["schema"] = self.schema
        return d


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    subject: str
    mode: Mode
    versions: int
    latest: int | None
    updated_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "mode": self.mode, "versions": self.versions,
                "latest": self.latest, "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class Registered:
    version: SchemaVersion
    #: False: the subject already had this schema (by canonical JSON)
    created: bool
    mode: Mode


def require_subject(subject: str) -> str:
    if subject not in SUBJECTS:
        raise SchemaInvalid(f"unknown subject {subject!r}; the subjects are "
                            f"{', '.join(SUBJECTS)}")
    return subject


def require_mode(mode: str) -> Mode:
    up = mode.upper()
    if up not in MODES:
        raise ConfigError(f"unknown compatibility mode {mode!r}; one of {', '.join(MODES)}")
    return up


def require_schema(schema: Any, where: str = "schema") -> Any:
    problems = check_schema(schema)
    if isinstance(schema, dict) and schema.get("$schema", DRAFT_2020_12) != DRAFT_2020_12:
        problems.insert(0, f"$schema is {schema['$schema']!r}; the registry keeps Draft "
                           f"2020-12 schemas ({DRAFT_2020_12})")
    if problems:
        raise SchemaInvalid(f"{where} is not a valid JSON Schema: " + "; ".join(problems[:5]))
    return schema


_COLS = "subject, version, id, schema, fingerprint, registered_at, registered_by"


def _row(r: tuple[Any, ...]) -> SchemaVersion:
    return SchemaVersion(r[0], int(r[1]), int(r[2]), json.loads(r[3]), r[4], r[5], r[6])


class Registry:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db
        ensure_tables(self.db, DDL)

    # -- reading -----------------------------------------------------------------------
    def mode(self, subject: str) -> Mode:
        row = self.db.execute("SELECT mode FROM schema_subjects WHERE subject=?",
                              (subject,)).fetchone()
        return row[0] if row else DEFAULT_MODE

    def versions(self, subject: str) -> list[SchemaVersion]:
        rows = self.db.execute(f"SELECT {_COLS} FROM schema_versions WHERE subject=? "
                               "ORDER BY version", (subject,)).fetchall()
        return [_row(r) for r in rows]

    def get(self, subject: str, version: int | None = None) -> SchemaVersion | None:
        """A version, or the latest (``version=None``)."""
        if version is None:
            row = self.db.execute(f"SELECT {_COLS} FROM schema_versions WHERE subject=? "
                                  "ORDER BY version DESC LIMIT 1", (subject,)).fetchone()
        else:
            row = self.db.execute(f"SELECT {_COLS} FROM schema_versions WHERE subject=? AND "
                                  "version=?", (subject, version)).fetchone()
        return _row(row) if row else None

    def latest_all(self) -> dict[str, SchemaVersion]:
        rows = self.db.execute(
            f"SELECT {_COLS} FROM schema_versions v WHERE version = (SELECT max(version) FROM "
            "schema_versions w WHERE w.subject = v.subject)").fetchall()
        return {r[0]: _row(r) for r in rows}

    def generation(self) -> int:
        """Changes whenever a version is added (what the validation before write watches)."""
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM schema_versions")
                   .fetchone()[0])

    def subjects(self) -> list[SubjectInfo]:
        out = []
        for subject in SUBJECTS:
            row = self.db.execute(
                "SELECT count(*), max(version), max(registered_at) FROM schema_versions "
                "WHERE subject=?", (subject,)).fetchone()
            meta = self.db.execute("SELECT updated_at FROM schema_subjects WHERE subject=?",
                                   (subject,)).fetchone()
            out.append(SubjectInfo(subject, self.mode(subject), int(row[0]),
                                   None if row[1] is None else int(row[1]),
                                   meta[0] if meta else row[2]))
        return out

    def iter_all(self) -> Iterator[SchemaVersion]:
        for r in self.db.execute(f"SELECT {_COLS} FROM schema_versions ORDER BY subject, "
                                 "version").fetchall():
            yield _row(r)

    # -- checking and registering ------------------------------------------------------
    def check(self, subject: str, schema: Any, mode: str | None = None) -> list[str]:
        """Why ``schema`` may not be the subject's next version (empty: it may)."""
        require_subject(subject)
        require_schema(schema)
        m = require_mode(mode) if mode else self.mode(subject)
        return check_mode(m, schema, [(v.version, v.schema) for v in self.versions(subject)])

    def register(self, subject: str, schema: Any, *, mode: str | None = None,
                 by: str | None = None) -> Registered:
        """The subject's next version (or the version it already has with this
        schema); ``mode`` also becomes the subject's mode. ``SchemaIncompatible``
        when the mode refuses it."""
        require_subject(subject)
        require_schema(schema)
        fp = fingerprint(schema)
        text = canonical(schema).decode("utf-8")
        with self.state.tx() as db:
            m = require_mode(mode) if mode else self.mode(subject)
            versions = self.versions(subject)
            same = next((v for v in versions if v.fingerprint == fp), None)
            if same is None:
                reasons = check_mode(m, schema, [(v.version, v.schema) for v in versions])
                if reasons:
                    raise SchemaIncompatible(subject, m, reasons)
            at = now_iso()
            db.execute("INSERT INTO schema_subjects(subject, mode, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT(subject) DO UPDATE SET "
                       "mode=excluded.mode, updated_at=excluded.updated_at",
                       (subject, m, at, at))
            if same is not None:
                return Registered(same, False, m)
            number = (versions[-1].version if versions else 0) + 1
            cur = db.execute("INSERT INTO schema_versions(subject, version, schema, fingerprint,"
                             " registered_at, registered_by) VALUES (?, ?, ?, ?, ?, ?)",
                             (subject, number, text, fp, at, by))
            made = SchemaVersion(subject, number, int(cur.lastrowid or 0), json.loads(text), fp,
                                 at, by)
        return Registered(made, True, m)

    def set_mode(self, subject: str, mode: str) -> Mode:
        require_subject(subject)
        m = require_mode(mode)
        at = now_iso()
        self.db.execute("INSERT INTO schema_subjects(subject, mode, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT(subject) DO UPDATE SET "
                        "mode=excluded.mode, updated_at=excluded.updated_at",
                        (subject, m, at, at))
        return m
