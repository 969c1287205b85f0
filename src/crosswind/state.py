"""Durable state in one SQLite file (WAL): runs, verified copies, failures,
open multipart uploads, pending deletes.

Every change is one committed transaction, so a process killed at any moment
leaves the file consistent: an object is recorded as verified only after its
destination copy was checked, and a record that was committed survives the
crash. Keys are TEXT with SQLite's BINARY collation, i.e. UTF-8 byte order,
which is the code-point order the sorted merge (``sync/march.py``) uses, so
verified records can be streamed in the same order as listings.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from crosswind.errors import CrosswindError

RunStatus = Literal["running", "succeeded", "failed", "aborted", "interrupted"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0,
    report TEXT
);
CREATE TABLE IF NOT EXISTS verified(
    direction TEXT NOT NULL,
    key TEXT NOT NULL,
    src_etag TEXT,
    src_size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    dst_etag TEXT,
    run_id INTEGER,
    verified_at TEXT NOT NULL,
    src_mtime INTEGER,
    src_read_at REAL,
    PRIMARY KEY(direction, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures(
    run_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_run ON failures(run_id);
CREATE TABLE IF NOT EXISTS uploads(
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY(store, key, upload_id)
);
CREATE TABLE IF NOT EXISTS upload_intents(
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    token TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY(store, key, token)
);
CREATE TABLE IF NOT EXISTS pending_deletes(
    run_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    etag TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(run_id, key)
) WITHOUT ROWID;
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class VerifiedCopy:
    key: str
    src_etag: str | None
    src_size: int
    md5: str
    dst_etag: str | None
    #: the last-modified time (whole seconds since the epoch) of the source
    #: version that was read: S3 keeps an object's ETag (the MD5 of its bytes)
    #: when only its metadata changes
    src_mtime: int | None = None
    #: when that version began to be read (epoch seconds, this machine's clock);
    #: a read within the second of ``src_mtime`` may have missed a later change
    #: in that same second (see ``sync/plan.py``)
    src_read_at: float | None = None


class StateLocked(CrosswindError):
    exit_code = 5


class StateStore:
    """The state database under ``[state].dir``; one writer process at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "state.db"
        self._lock_file: IO[str] | None = None
        self.db = self._connect()
        self.db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since the first state files, in one transaction (which
        also keeps two processes opening an old file at once from both adding)."""
        if {"src_mtime", "src_read_at"} <= self._columns("verified"):
            return
        with self.tx() as db:
            cols = self._columns("verified")
            if "src_mtime" not in cols:
                db.execute("ALTER TABLE verified ADD COLUMN src_mtime INTEGER")
            if "src_read_at" not in cols:
                db.execute("ALTER TABLE verified ADD COLUMN src_read_at REAL")
                # Records from before the column: their run's start is a lower
                # bound of when the copy read its source (it listed after it).
                db.execute(
                    "UPDATE verified SET src_read_at = (SELECT (julianday(r.started_at)"
                    " - 2440587.5) * 86400.0 FROM runs r WHERE r.id = verified.run_id)")

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps committed transactions across a process crash (the WAL is
        # in the OS cache); only a power loss can drop the last few.
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # -- exclusive use -------------------------------------------------------
    def lock(self) -> None:
        """Take the per-directory lock; the OS drops it if the process dies."""
        f = (self.directory / "lock").open("w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise StateLocked(
                f"another crosswind process is using {self.directory}; wait for it to finish"
            ) from None
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def close(self) -> None:
        self.db.close()
        if self._lock_file:
            self._lock_file.close()
            self._lock_file = None

    # Single statements run in autocommit mode: each is its own transaction,
    # atomic and durable on return, without a BEGIN/COMMIT round of its own.
    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs ----------------------------------------------------------------
    def start_run(self, kind: str, direction: str, dry_run: bool) -> int:
        with self.tx() as db:
            # A run still marked running was killed: it holds no lock any more.
            db.execute(
                "UPDATE runs SET status='interrupted' WHERE status='running' AND kind=?", (kind,)
            )
            cur = db.execute(
                "INSERT INTO runs(kind, direction, started_at, status, dry_run)"
                " VALUES (?, ?, ?, 'running', ?)",
                (kind, direction, now_iso(), int(dry_run)),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: RunStatus, report: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, report=? WHERE id=?",
            (now_iso(), status, json.dumps(report, default=str), run_id),
        )

    def runs(self, kind: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        sql = "SELECT id, kind, direction, started_at, finished_at, status, dry_run FROM runs"
        args: tuple[Any, ...] = ()
        if kind:
            sql += " WHERE kind=?"
            args = (kind,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self.db.execute(sql, (*args, limit)).fetchall()
        cols = ("id", "kind", "direction", "started_at", "finished_at", "status", "dry_run")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def run_report(self, run_id: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT report FROM runs WHERE id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    # -- verified copies -----------------------------------------------------
    def record_verified(
        self, direction: str, copy: VerifiedCopy, run_id: int | None = None
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO verified"
            "(direction, key, src_etag, src_size, md5, dst_etag, run_id, verified_at,"
            " src_mtime, src_read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (direction, copy.key, copy.src_etag, copy.src_size, copy.md5, copy.dst_etag,
             run_id, now_iso(), copy.src_mtime, copy.src_read_at),
        )

    def record_verified_many(
        self, direction: str, copies: Sequence[VerifiedCopy], run_id: int | None = None
    ) -> None:
        """``record_verified`` for several copies in one transaction (one commit
        instead of one per object: a fifth of the engine's CPU per small object)."""
        if not copies:
            return
        at = now_iso()
        with self.tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO verified"
                "(direction, key, src_etag, src_size, md5, dst_etag, run_id, verified_at,"
                " src_mtime, src_read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(direction, c.key, c.src_etag, c.src_size, c.md5, c.dst_etag, run_id, at,
                  c.src_mtime, c.src_read_at) for c in copies],
            )

    def forget_verified(self, direction: str, key: str) -> None:
        self.db.execute("DELETE FROM verified WHERE direction=? AND key=?", (direction, key))

    def get_verified(self, direction: str, key: str) -> VerifiedCopy | None:
        row = self.db.execute(
            "SELECT key, src_etag, src_size, md5, dst_etag, src_mtime, src_read_at"
            " FROM verified WHERE direction=? AND key=?",
            (direction, key),
        ).fetchone()
        return VerifiedCopy(*row) if row else None

    def iter_verified(self, direction: str, prefix: str = "") -> Iterator[VerifiedCopy]:
        """All verified copies of a direction in key order, from a snapshot.

        A separate connection gives a stable snapshot while this process keeps
        writing new records through the main one.
        """
        reader = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            cur = reader.execute(
                "SELECT key, src_etag, src_size, md5, dst_etag, src_mtime, src_read_at"
                " FROM verified WHERE direction=? AND key >= ? ORDER BY key",
                (direction, prefix),
            )
            while rows := cur.fetchmany(2000):
                for row in rows:
                    if not row[0].startswith(prefix):
                        return
                    yield VerifiedCopy(*row)
        finally:
            reader.close()

    # -- failures ------------------------------------------------------------
    def record_failure(self, run_id: int, key: str, kind: str, reason: str) -> None:
        self.db.execute(
            "INSERT INTO failures(run_id, key, kind, reason, at) VALUES (?, ?, ?, ?, ?)",
            (run_id, key, kind, reason, now_iso()),
        )

    def failures(self, run_id: int) -> list[dict[str, str]]:
        rows = self.db.execute(
            "SELECT key, kind, reason FROM failures WHERE run_id=? ORDER BY key", (run_id,)
        ).fetchall()
        return [{"key": k, "kind": kind, "reason": r} for k, kind, r in rows]

    # -- multipart uploads in flight -----------------------------------------
    # An upload's id is known only once the service created it. The intent to
    # start one is recorded first, so a process killed in between leaves a
    # trace: the next run aborts that key's open uploads.
    def upload_intended(self, store: str, key: str) -> str:
        token = secrets.token_hex(8)
        self.db.execute(
            "INSERT INTO upload_intents(store, key, token, started_at) VALUES (?, ?, ?, ?)",
            (store, key, token, now_iso()),
        )
        return token

    def upload_started(self, store: str, key: str, upload_id: str,
                       intent: str | None = None) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads(store, key, upload_id, started_at)"
                " VALUES (?, ?, ?, ?)",
                (store, key, upload_id, now_iso()),
            )
            if intent is not None:
                db.execute("DELETE FROM upload_intents WHERE store=? AND key=? AND token=?",
                           (store, key, intent))

    def upload_intents(self, store: str) -> list[tuple[str, str]]:
        """(key, token) of uploads that were about to start and never recorded."""
        rows = self.db.execute(
            "SELECT key, token FROM upload_intents WHERE store=?", (store,)
        ).fetchall()
        return [(k, t) for k, t in rows]

    def upload_intent_done(self, store: str, key: str, token: str) -> None:
        self.db.execute("DELETE FROM upload_intents WHERE store=? AND key=? AND token=?",
                        (store, key, token))

    def upload_ended(self, store: str, key: str, upload_id: str) -> None:
        self.db.execute(
            "DELETE FROM uploads WHERE store=? AND key=? AND upload_id=?",
            (store, key, upload_id),
        )

    def open_uploads(self, store: str) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT key, upload_id FROM uploads WHERE store=?", (store,)
        ).fetchall()
        return [(k, u) for k, u in rows]

    # -- deletes, held back until the max-delete guard has passed ------------
    def add_pending_delete(self, run_id: int, key: str, etag: str | None, size: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pending_deletes(run_id, key, etag, size)"
            " VALUES (?, ?, ?, ?)",
            (run_id, key, etag, size),
        )

    def pending_deletes(self, run_id: int) -> Iterator[tuple[str, str | None, int]]:
        reader = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            cur = reader.execute(
                "SELECT key, etag, size FROM pending_deletes WHERE run_id=? ORDER BY key",
                (run_id,),
            )
            while rows := cur.fetchmany(1000):
                yield from rows
        finally:
            reader.close()

    def clear_pending_deletes(self, run_id: int) -> None:
        self.db.execute("DELETE FROM pending_deletes WHERE run_id=?", (run_id,))


# -- metadata rows (issue 3): read and written through crosswind.metasync.ledger -------
# ``scope`` names one table ⇄ collection pair, so one state dir can serve several.
SCHEMA += """
CREATE TABLE IF NOT EXISTS meta_rows(
    scope TEXT NOT NULL,
    pk TEXT NOT NULL,
    rk TEXT NOT NULL,
    azure_etag TEXT,
    doc_hash TEXT,
    doc_id TEXT,
    synced_at TEXT NOT NULL,
    PRIMARY KEY(scope, pk, rk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS meta_rows_doc ON meta_rows(scope, doc_id);
CREATE TABLE IF NOT EXISTS meta_dlq(
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    direction TEXT NOT NULL,
    item_kind TEXT NOT NULL,
    item TEXT NOT NULL,
    pk TEXT,
    rk TEXT,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    attempts INTEGER NOT NULL DEFAULT 1,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    run_id INTEGER,
    UNIQUE(scope, direction, item_kind, item)
);
CREATE TABLE IF NOT EXISTS meta_watermarks(
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY(scope, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta_resume_tokens(
    scope TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta_conflicts(
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    pk TEXT NOT NULL,
    rk TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    recorded_etag TEXT,
    azure_etag TEXT,
    azure_version TEXT,
    aws_version TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    resolution TEXT,
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS meta_conflicts_key ON meta_conflicts(scope, pk, rk);
"""

# -- live migration (issue 7): the migration phase, the replication service's
# status and the control requests other processes leave for it. Read and written
# through crosswind.migration and crosswind.live.status.
SCHEMA += """
CREATE TABLE IF NOT EXISTS migration(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    phase TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT
);
CREATE TABLE IF NOT EXISTS service_status(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    heartbeat_s REAL NOT NULL,
    stopped_at TEXT,
    snapshot TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS live_marks(
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS control_requests(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    requested_by TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    finished_at TEXT
);
"""
SCHEMA += """
CREATE TABLE IF NOT EXISTS control_progress(
    request_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY(request_id, seq)
) WITHOUT ROWID;
"""

# -- cutover and rollback (issue 8): plans, approvals, the audit chain and the step
# journal. Read and written through crosswind.cutover.plan, crosswind.cutover.approvals,
# crosswind.audit and crosswind.cutover.journal. ``document`` and ``body`` are RFC 8785
# canonical JSON, so what is read back hashes to what was stored.
SCHEMA += """
CREATE TABLE IF NOT EXISTS cutover_plans(
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    phase TEXT NOT NULL,
    gates_passed INTEGER NOT NULL,
    document TEXT NOT NULL,
    executed_at TEXT
);
CREATE INDEX IF NOT EXISTS cutover_plans_kind ON cutover_plans(kind, seq);
CREATE TABLE IF NOT EXISTS cutover_approvals(
    id INTEGER PRIMARY KEY,
    plan_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    approver TEXT NOT NULL,
    role TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    signature TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    recorded_by TEXT,
    UNIQUE(plan_hash, key_fingerprint)
);
CREATE TABLE IF NOT EXISTS audit_log(
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cutover_journal(
    seq INTEGER PRIMARY KEY,
    plan_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT,
    at TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS cutover_journal_plan ON cutover_journal(plan_hash, seq);
"""
