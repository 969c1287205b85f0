"""Gathers the gates' inputs: the service status (``live.report.read_status``),
the latest validation of the direction the switch leaves (validation
history), and the preflight (``crosswind preflight``: every permission probed)
of the direction that runs after the switch, with write permission on its
replica (for a cutover: Azure, so that the rollback path is known to work
before it is needed).

Nothing here decides: whatever cannot be read or probed becomes an input that
says so (``status_error``, a failed ``PreflightResult``), and the gate that
looks at it fails with that reason.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

from crosswind.config import Config
from crosswind.cutover.gates import (
    GateInputs,
    Kind,
    PreflightResult,
    StreamBrief,
    ValidationBrief,
)
from crosswind.errors import CrosswindError
from crosswind.live.report import read_status
from crosswind.migration import MigrationStore
from crosswind.model import Direction
from crosswind.secrets import redact
from crosswind.state import StateStore
from crosswind.validate.history import FindingLog


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(redact(text).split())[:300]


def latest_validation(state: StateStore, direction: Direction, scan: int = 50
                      ) -> ValidationBrief | None:
    """The newest finished validation run of ``direction``."""
    for r in FindingLog(state).history(scan):
        if r["direction"] != direction.value or r["status"] == "running" \
                or not r["finished_at"]:
            continue
        return ValidationBrief(int(r["id"]), r["direction"], str(r["verdict"]),
                               str(r["finished_at"]), r["completeness_pct"],
                               r["pass_rate_pct"])
    return None


async def preflight(cfg: Config, direction: Direction) -> PreflightResult:
    """``crosswind preflight`` of ``direction``: every permission it needs probed on
    every store (``crosswind.preflight``); ``checked`` lists "store: permission"
    of each probe that passed, ``reason`` what is missing."""
    from crosswind.preflight import run_preflight

    try:
        report = await run_preflight(cfg, [direction])
    except (CrosswindError, OSError) as exc:
        return PreflightResult(direction.value, False, _one_line(exc))
    checked = tuple(f"{p.store}: {p.permission}" for p in report.probes if p.result == "ok")
    return PreflightResult(direction.value, report.ok, report.summary(), checked)


def inputs_from(kind: Kind, *, phase: str, status: dict[str, Any] | None,
                status_error: str | None, validation: ValidationBrief | None,
                preflight_result: PreflightResult | None, dlq_acknowledged: int,
                now: datetime) -> GateInputs:
    """``GateInputs`` from what was read (pure)."""
    st = status or {}
    service = st.get("service") or {}
    running = bool(service.get("running")) and status_error is None
    streams = tuple(
        StreamBrief(str(s.get("name")), int(s.get("failed") or 0),
                    (str(s["error"]) if s.get("error") else
                     ("in error" if s.get("state") == "error" else None)))
        for s in st.get("streams") or [])
    age = None
    if validation is not None:
        try:
            age = (now - datetime.fromisoformat(validation.finished_at)).total_seconds()
        except ValueError:
            age = None
    return GateInputs(
        kind=kind, phase=phase, service_running=running,
        service_direction=st.get("direction") if running else None,
        lag_p99_s=float(st.get("lag_p99_s") or 0.0),
        oldest_pending_s=float((st.get("pending") or {}).get("oldest_s") or 0.0),
        streams=streams,
        service_errors=tuple(str(e) for e in st.get("errors") or []),
        breakers=tuple(sorted((str(k), str(v)) for k, v in (st.get("breakers") or {}).items())),
        dlq_open=int(st.get("dlq_open") or 0), dlq_acknowledged=dlq_acknowledged,
        validation=validation, validation_age_s=None if age is None else round(age, 3),
        preflight=preflight_result, observed_at=now.isoformat(timespec="milliseconds"),
        status_error=status_error)


async def gather_inputs(cfg: Config, kind: Kind, *, dlq_acknowledged: int = 0,
                        now: datetime | None = None) -> GateInputs:
    leaving = Direction.AZURE_TO_AWS if kind == "cutover" else Direction.AWS_TO_AZURE
    arriving = Direction.AWS_TO_AZURE if kind == "cutover" else Direction.AZURE_TO_AWS
    state = StateStore(cfg.state_dir)
    try:
        phase = MigrationStore(state).get().phase.value
        validation = latest_validation(state, leaving)
    finally:
        state.close()
    status: dict[str, Any] | None = None
    status_error = None
    try:
        status = read_status(cfg)
    except (CrosswindError, OSError, sqlite3.Error) as exc:
        status_error = _one_line(exc)
    try:
        pre = await asyncio.wait_for(preflight(cfg, arriving),
                                     timeout=cfg.cutover.gates_timeout_s)
    except TimeoutError:
        pre = PreflightResult(arriving.value, False, f"did not finish within "
                              f"{cfg.cutover.gates_timeout_s:g}s")
    return inputs_from(kind, phase=phase, status=status, status_error=status_error,
                       validation=validation, preflight_result=pre,
                       dlq_acknowledged=dlq_acknowledged, now=now or datetime.now(UTC))
