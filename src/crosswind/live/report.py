"""The status document: one shape for ``crosswind status --json``, the
service's ``/api/status`` and the service's final run report."""

from __future__ import annotations

from typing import Any

from crosswind.config import Config
from crosswind.governance.stewardship import stewardship_fields
from crosswind.live.status import StatusStore, is_running
from crosswind.metasync.context import scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.migration import MigrationStore, Phase
from crosswind.state import StateStore


def status_document(*, phase: Phase, running: bool, pid: int | None, since: str | None,
                    snapshot: dict[str, Any] | None, dlq_open: int,
                    heartbeat_at: str | None = None, stopped_at: str | None = None,
                    governance: dict[str, Any] | None = None) -> dict[str, Any]:
    snap = snapshot or {}
    streams = snap.get("streams", [])
    return {
        "phase": phase.value,
        "direction": phase.direction.value,
        "service": {"running": running, "pid": pid, "since": since,
                    "heartbeat_at": heartbeat_at, "stopped_at": stopped_at,
                    "http": snap.get("http"),
                    # figures below are the service's last published ones when it is
                    # not running
                    "figures": "live" if running else ("last known" if snap else "none")},
        "lag_p99_s": snap.get("lag_p99_s", 0.0),
        "streams": streams,
        "pending": snap.get("pending", {"keys": 0, "in_flight": 0, "oldest_s": 0.0}),
        "breakers": snap.get("breakers", {}),
        "dlq_open": dlq_open,
        "last_reconcile": _reconcile_brief(snap.get("last_reconcile")),
        "reconciling": bool(snap.get("reconciling", False)),
        "slo": snap.get("slo", {"target_s": None, "breached": False}),
        "deletes": snap.get("deletes"),
        "validation": snap.get("validation"),
        "switch": snap.get("switch"),
        "errors": snap.get("errors", []),
        # stewardship, validation before write and lineage delivery
        "governance": governance if governance is not None else snap.get("governance"),
        "auth_failures": snap.get("auth_failures", []),
        # monitoring (live.monitoring): appliers, store requests, objects applied, alerts
        "breaker_details": snap.get("breaker_details", {}),
        "workers": snap.get("workers"),
        "requests": snap.get("requests"),
        "objects": snap.get("objects"),
        "alerts": snap.get("alerts"),
    }


def _reconcile_brief(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if not rec:
        return None
    # The service's summary nests the objects' and the rows' reconciles; their
    # listing counts and errors are theirs.
    objects, rows = rec.get("objects") or {}, rec.get("rows") or {}
    return {"at": rec.get("at"), "drift": rec.get("drift", 0), "found": rec.get("found", 0),
            "listed": rec.get("listed", objects.get("listed")),
            "drift_examples": rec.get("drift_examples", []),
            "error": rec.get("error") or objects.get("error") or rows.get("error"),
            "parts": {k: {"at": (rec.get(k) or {}).get("at"),
                          "drift": (rec.get(k) or {}).get("drift", 0)}
                      for k in ("objects", "rows") if rec.get(k)}}


def read_status(cfg: Config) -> dict[str, Any]:
    """The status from the state store, whether or not the service runs (no lock
    is taken: the service may hold it)."""
    state = StateStore(cfg.state_dir)
    try:
        phase = MigrationStore(state).get().phase
        row = StatusStore(state).read()
        dlq_open = Ledger(state, scope_of(cfg)).dlq_open_count()
        if row is None:
            return status_document(phase=phase, running=False, pid=None, since=None,
                                   snapshot=None, dlq_open=dlq_open,
                                   governance=stewardship_fields(cfg))
        running = is_running(row)
        snap = row["snapshot"]
        if snap.get("direction") not in (None, phase.direction.value):
            snap = {**snap, "streams": []}  # figures of the other direction
        return status_document(phase=phase, running=running, pid=row["pid"],
                               since=row["started_at"], snapshot=snap, dlq_open=dlq_open,
                               heartbeat_at=row["heartbeat_at"],
                               # the config's stewardship, the service's last counts
                               governance={**(snap.get("governance") or {}),
                                           **stewardship_fields(cfg)},
                               stopped_at=row["stopped_at"] or (None if running else
                                                                "unknown (no clean stop)"))
    finally:
        state.close()
