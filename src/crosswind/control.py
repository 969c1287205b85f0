"""Requests from control commands to the running replication service.

One process at a time holds a state directory's engine lock (``replicate``
while it runs). A control command that must write what the engine writes —
``dlq replay``, and the cutover and rollback runbooks — therefore does not act
itself while the service runs: it leaves a request in the state store, the
service executes it between changes, writes progress lines and a result, and
the command prints them as they come and exits with the result. With no
service running, the command takes the lock and does the work itself.

Requests are durable: a service that dies mid-request leaves it ``running``,
and the next service start marks it ``abandoned`` (the caller sees that and can
retry), never silently done.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from crosswind.errors import CrosswindError
from crosswind.state import StateStore, now_iso

RequestStatus = Literal["pending", "running", "done", "failed", "abandoned"]


class RequestFailed(CrosswindError):
    """The service ran the request and it failed (its own exit code travels with it)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NoAnswer(CrosswindError):
    """The service did not finish the request in time."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    kind: str
    args: dict[str, Any]
    requested_by: str | None
    status: RequestStatus


def whoami() -> str:
    return f"{os.environ.get('USER') or os.getuid()}@{socket.gethostname()} pid {os.getpid()}"


class ControlQueue:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db

    # -- the caller's side ---------------------------------------------------------
    def submit(self, kind: str, args: dict[str, Any], by: str | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO control_requests(kind, args, requested_at, requested_by)"
            " VALUES (?, ?, ?, ?)", (kind, json.dumps(args), now_iso(), by or whoami()))
        return int(cur.lastrowid or 0)

    def result(self, request_id: int) -> tuple[RequestStatus, dict[str, Any] | None]:
        row = self.db.execute("SELECT status, result FROM control_requests WHERE id=?",
                              (request_id,)).fetchone()
        if row is None:
            raise CrosswindError(f"no control request {request_id}")
        return row[0], (json.loads(row[1]) if row[1] else None)

    def progress(self, request_id: int, after: int = 0) -> list[tuple[int, str]]:
        rows = self.db.execute(
            "SELECT seq, line FROM control_progress WHERE request_id=? AND seq>? ORDER BY seq",
            (request_id, after)).fetchall()
        return [(int(s), str(line)) for s, line in rows]

    def wait(self, request_id: int, *, timeout_s: float, on_line: Callable[[str], None]
             = lambda line: None, poll_s: float = 0.2,
             alive: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Block until the service has finished the request; its progress lines
        are passed to ``on_line`` as they appear. Returns its result or raises
        ``RequestFailed`` / ``NoAnswer`` (also when ``alive`` says the service is
        gone: it cannot finish the request any more)."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        dead_since: float | None = None
        while True:
            for seq, line in self.progress(request_id, seen):
                seen = seq
                on_line(line)
            status, result = self.result(request_id)
            if status == "done":
                for _, line in self.progress(request_id, seen):
                    on_line(line)
                return result or {}
            if status in ("failed", "abandoned"):
                for _, line in self.progress(request_id, seen):
                    on_line(line)
                r = result or {}
                raise RequestFailed(str(r.get("error") or f"request {status}"),
                                    int(r.get("exit_code", 1)))
            if alive is not None:
                if alive():
                    dead_since = None
                elif dead_since is None:
                    dead_since = time.monotonic()
                elif time.monotonic() - dead_since > 2.0:
                    raise NoAnswer(f"the replication service stopped while it ran request "
                                   f"{request_id} (still {status}); it is marked abandoned "
                                   "when the service starts again — crosswind status, and "
                                   "crosswind cutover status for a switch")
            if time.monotonic() > deadline:
                raise NoAnswer(f"the replication service has not finished request "
                               f"{request_id} within {timeout_s:.0f}s; it is still "
                               f"{status} (crosswind status shows the service)")
            time.sleep(poll_s)

    # -- the service's side --------------------------------------------------------
    def take(self) -> Request | None:
        """The oldest pending request, now marked running."""
        with self.state.tx() as db:
            row = db.execute("SELECT id, kind, args, requested_by FROM control_requests"
                             " WHERE status='pending' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE control_requests SET status='running' WHERE id=?", (row[0],))
        return Request(int(row[0]), row[1], json.loads(row[2]), row[3], "running")

    def say(self, request_id: int, line: str) -> None:
        with self.state.tx() as db:
            seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM control_progress"
                             " WHERE request_id=?", (request_id,)).fetchone()[0]
            db.execute("INSERT INTO control_progress(request_id, seq, at, line)"
                       " VALUES (?, ?, ?, ?)", (request_id, seq, now_iso(), line))

    def finish(self, request_id: int, status: RequestStatus, result: dict[str, Any]) -> None:
        self.db.execute("UPDATE control_requests SET status=?, result=?, finished_at=?"
                        " WHERE id=?", (status, json.dumps(result, default=str), now_iso(),
                                        request_id))

    def abandon_running(self) -> int:
        """Requests a dead service left running (called when a service starts)."""
        cur = self.db.execute(
            "UPDATE control_requests SET status='abandoned', finished_at=?,"
            " result='{\"error\": \"the replication service stopped while running it\"}'"
            " WHERE status='running'", (now_iso(),))
        return cur.rowcount
