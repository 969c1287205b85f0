"""Validation runs and their findings in the state store.

A validation run is a row of the state store's ``runs`` table with
``kind = 'validate'`` whose ``report`` is the JSON report. Every finding
(not only the examples in the report) goes to ``validation_findings``, so
``--repair`` and later tools can stream the keys a run found wrong, in key
order, without holding them in memory. ``prune`` keeps the newest runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from crosswind.state import StateStore
from crosswind.validate.findings import Check, Finding, Kind

RUN_KIND = "validate"
BATCH = 2000

SCHEMA = """
CREATE TABLE IF NOT EXISTS validation_findings(
    run_id INTEGER NOT NULL,
    check_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS validation_findings_run
    ON validation_findings(run_id, check_name, key);
"""


class FindingLog:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        state.db.executescript(SCHEMA)

    def writer(self, run_id: int) -> FindingWriter:
        return FindingWriter(self.state, run_id)

    def keys(self, run_id: int, check: Check, kinds: Iterable[Kind]) -> Iterator[str]:
        """Distinct keys with findings of ``kinds``, in code-point order (SQLite's
        BINARY collation is UTF-8 byte order), from a snapshot."""
        wanted = sorted(k.value for k in kinds)
        marks = ",".join("?" * len(wanted))
        reader = sqlite3.connect(self.state.path, timeout=30, check_same_thread=False)
        try:
            cur = reader.execute(
                "SELECT DISTINCT key FROM validation_findings WHERE run_id=? AND check_name=?"
                f" AND kind IN ({marks}) ORDER BY key",  # placeholders only
                (run_id, check.value, *wanted),
            )
            while rows := cur.fetchmany(BATCH):
                for (key,) in rows:
                    yield key
        finally:
            reader.close()

    def findings(self, run_id: int, limit: int = 1000) -> list[dict[str, str]]:
        rows = self.state.db.execute(
            "SELECT check_name, kind, key, detail FROM validation_findings WHERE run_id=?"
            " ORDER BY check_name, kind, key LIMIT ?",
            (run_id, limit),
        ).fetchall()
        return [{"check": c, "kind": k, "key": key, "detail": d} for c, k, key, d in rows]

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent validation runs with their headline figures, newest first."""
        out: list[dict[str, Any]] = []
        for r in self.state.runs(RUN_KIND, limit=limit):
            rep = self.state.run_report(int(r["id"])) or {}
            totals = rep.get("totals", {})
            out.append({
                "id": r["id"],
                "direction": r["direction"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "status": r["status"],
                "verdict": rep.get("verdict", "unknown" if r["status"] != "running" else "running"),
                "checks": sorted(rep.get("checks", {})),
                "items": totals.get("items"),
                "discrepancies": sum((rep.get("discrepancy_counts") or {}).values()),
                "completeness_pct": totals.get("completeness_pct"),
                "pass_rate_pct": totals.get("pass_rate_pct"),
                "repaired": (rep.get("repair") or {}).get("copied"),
                "error": rep.get("error"),
            })
        return out

    def prune(self, keep: int) -> int:
        """Forget all but the newest ``keep`` validation runs; returns how many went."""
        with self.state.tx() as db:
            old = [r for (r,) in db.execute(
                "SELECT id FROM runs WHERE kind=? ORDER BY id DESC LIMIT -1 OFFSET ?",
                (RUN_KIND, keep),
            ).fetchall()]
            for run_id in old:
                db.execute("DELETE FROM validation_findings WHERE run_id=?", (run_id,))
                db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        return len(old)


class FindingWriter:
    """Buffers findings and writes them in batches (one transaction per batch):
    a million findings must not be a million transactions."""

    def __init__(self, state: StateStore, run_id: int) -> None:
        self.state = state
        self.run_id = run_id
        self._buf: list[tuple[int, str, str, str, str]] = []
        self.written = 0

    def add(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self._buf.append((self.run_id, f.check.value, f.kind.value, f.key, f.detail))
        if len(self._buf) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        with self.state.tx() as db:
            db.executemany(
                "INSERT INTO validation_findings(run_id, check_name, kind, key, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                self._buf,
            )
        self.written += len(self._buf)
        self._buf.clear()
