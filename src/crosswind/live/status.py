"""What the replication service is doing, kept in the state store so that
``crosswind status`` answers whether or not the service runs.

The service publishes a snapshot every ``status_interval_s`` (one row, replaced)
with a heartbeat; a reader calls it running only when that heartbeat is fresh
and the process is alive, so a killed service shows as stopped with its last
known figures rather than as running forever.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

from crosswind.state import StateStore, now_iso


class StatusStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db

    def publish(self, *, pid: int, started_at: str, heartbeat_s: float,
                snapshot: dict[str, Any], stopped: bool = False) -> None:
        at = now_iso()
        self.db.execute(
            "INSERT OR REPLACE INTO service_status(id, pid, host, started_at, heartbeat_at,"
            " heartbeat_s, stopped_at, snapshot) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            (pid, socket.gethostname(), started_at, at, heartbeat_s, at if stopped else None,
             json.dumps(snapshot, default=str)))

    def read(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT pid, host, started_at, heartbeat_at, heartbeat_s, stopped_at, snapshot"
            " FROM service_status WHERE id=1").fetchone()
        if row is None:
            return None
        pid, host, started, beat, beat_s, stopped, snap = row
        return {"pid": pid, "host": host, "started_at": started, "heartbeat_at": beat,
                "heartbeat_s": beat_s, "stopped_at": stopped, "snapshot": json.loads(snap)}

    # -- small durable marks (last reconcile, ...) ---------------------------------
    def mark(self, name: str, value: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO live_marks(name, value, updated_at)"
                        " VALUES (?, ?, ?)", (name, json.dumps(value, default=str), now_iso()))

    def get_mark(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM live_marks WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine: only the heartbeat can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_running(row: dict[str, Any] | None, now: datetime | None = None) -> bool:
    if row is None or row["stopped_at"]:
        return False
    now = now or datetime.now(UTC)
    beat = datetime.fromisoformat(row["heartbeat_at"])
    fresh = (now - beat).total_seconds() <= 3 * float(row["heartbeat_s"]) + 2.0
    return fresh and _alive(int(row["pid"]), str(row["host"]))
