"""The gates a switch must pass before it starts, as pure functions.

``GateInputs`` is everything the gates look at, gathered once (``inputs.py``)
and kept in the plan, so the plan hash covers exactly what the approvers saw.
Each gate returns a ``GateResult`` with a one-line reason and its evidence.

For a cutover every gate is required. For a rollback only what the rollback
itself needs is required — the reverse replication running (it drains AWS)
and the preflight of the direction after it — and the rest is reported but
does not block: lag over the SLO, a failed validation, an open breaker are the
very conditions that trigger a rollback, so they cannot be allowed to stop
one. The rollback's own final validation is its proof.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from crosswind.model import Direction

Kind = Literal["cutover", "rollback"]


@dataclass(frozen=True, slots=True)
class StreamBrief:
    name: str
    #: changes of this stream that failed and were dead-lettered since the service started
    failed: int = 0
    #: the stream's own error, when it reports one
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ValidationBrief:
    """The latest finished validation run of the direction the switch leaves."""

    run_id: int
    direction: str
    verdict: str
    finished_at: str
    completeness_pct: float | None = None
    pass_rate_pct: float | None = None


@dataclass(frozen=True, slots=True)
class PreflightResult:
    """The preflight of the direction that will run after the switch."""

    direction: str
    passed: bool
    reason: str
    #: what was probed, e.g. "aws s3://b: read", "azure blob c: write"
    checked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GateInputs:
    kind: Kind
    #: the migration phase the plan was made in
    phase: str
    service_running: bool
    #: the direction the running service replicates (None: not running)
    service_direction: str | None
    lag_p99_s: float
    oldest_pending_s: float
    streams: tuple[StreamBrief, ...]
    #: loops of the service that failed and were restarted (its ``errors`` list)
    service_errors: tuple[str, ...]
    #: endpoint → closed / open / half-open
    breakers: tuple[tuple[str, str], ...]
    dlq_open: int
    #: open DLQ items the operator acknowledged (``cutover plan --ack-dlq N``)
    dlq_acknowledged: int
    validation: ValidationBrief | None
    #: seconds from the validation's finish to ``observed_at``
    validation_age_s: float | None
    preflight: PreflightResult | None
    observed_at: str
    #: why the status could not be read, if it could not
    status_error: str | None = None

    @property
    def leaving(self) -> Direction:
        """The direction replication runs before the switch."""
        return Direction.AZURE_TO_AWS if self.kind == "cutover" else Direction.AWS_TO_AZURE

    @property
    def arriving(self) -> Direction:
        return Direction.AWS_TO_AZURE if self.kind == "cutover" else Direction.AZURE_TO_AWS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str
    passed: bool
    reason: str
    #: False: reported, but does not stop the switch
    required: bool = True
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return self.required and not self.passed

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "required": self.required,
                "reason": self.reason, "evidence": dict(self.evidence)}


@dataclass(frozen=True, slots=True)
class GateLimits:
    max_lag_s: float
    validation_max_age_s: float


# -- the gates ------------------------------------------------------------------------


def replication_gate(i: GateInputs, lim: GateLimits) -> GateResult:
    ev = {"running": i.service_running, "direction": i.service_direction,
          "lag_p99_s": i.lag_p99_s, "oldest_pending_s": i.oldest_pending_s,
          "max_lag_s": lim.max_lag_s}
    want = i.leaving.value
    if i.status_error:
        return GateResult("replication", False, f"the service status cannot be read: "
                          f"{i.status_error}", evidence=ev)
    if not i.service_running:
        return GateResult("replication", False, "the replication service is not running "
                          f"(start crosswind replicate; it must replicate {want})", evidence=ev)
    if i.service_direction != want:
        return GateResult("replication", False, f"the service replicates "
                          f"{i.service_direction}, the {i.kind} needs {want}", evidence=ev)
    worst = max(i.lag_p99_s, i.oldest_pending_s)
    if not worst < lim.max_lag_s:
        what = "lag p99" if i.lag_p99_s >= i.oldest_pending_s else "the oldest pending change"
        return GateResult("replication", False, f"{what} is {worst:.1f}s, not below "
                          f"max_lag_s = {lim.max_lag_s:g}s", evidence=ev)
    return GateResult("replication", True, f"running {want}, lag p99 {i.lag_p99_s:.1f}s "
                      f"(oldest pending {i.oldest_pending_s:.1f}s) below {lim.max_lag_s:g}s",
                      evidence=ev)


def streams_gate(i: GateInputs) -> GateResult:
    bad = [f"{s.name}: {s.error}" for s in i.streams if s.error]
    ev = {"streams": [s.name for s in i.streams], "in_error": bad,
          "service_errors": list(i.service_errors)}
    if bad:
        return GateResult("streams", False, f"{len(bad)} stream(s) in error: {bad[0]}"
                          + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""),
                          evidence=ev)
    if i.service_errors:
        return GateResult("streams", False, f"{len(i.service_errors)} service loop "
                          f"failure(s), latest: {i.service_errors[-1]}", evidence=ev)
    return GateResult("streams", True, f"{len(i.streams)} stream(s), none in error",
                      evidence=ev)


def breakers_gate(i: GateInputs) -> GateResult:
    not_closed = [(ep, st) for ep, st in i.breakers if st != "closed"]
    ev = {"breakers": dict(i.breakers)}
    if not_closed:
        listed = ", ".join(f"{ep} {st}" for ep, st in not_closed)
        return GateResult("breakers", False, f"circuit breaker not closed: {listed}",
                          evidence=ev)
    return GateResult("breakers", True, "every circuit breaker closed", evidence=ev)


def dlq_gate(i: GateInputs) -> GateResult:
    ev = {"open": i.dlq_open, "acknowledged": i.dlq_acknowledged}
    if i.dlq_open == 0:
        return GateResult("dlq", True, "the dead-letter queue is empty", evidence=ev)
    if i.dlq_acknowledged == i.dlq_open:
        return GateResult("dlq", True, f"{i.dlq_open} open dead-letter item(s), "
                          "acknowledged", evidence=ev)
    if i.dlq_acknowledged:
        return GateResult("dlq", False, f"{i.dlq_open} open dead-letter item(s) but "
                          f"{i.dlq_acknowledged} acknowledged; look at them (crosswind dlq "
                          f"list) and plan again with --ack-dlq {i.dlq_open}", evidence=ev)
    return GateResult("dlq", False, f"{i.dlq_open} open dead-letter item(s); replay or "
                      f"purge them, or acknowledge with --ack-dlq {i.dlq_open}", evidence=ev)


def validation_gate(i: GateInputs, lim: GateLimits) -> GateResult:
    v = i.validation
    want = i.leaving.value
    ev: dict[str, Any] = {"max_age_s": lim.validation_max_age_s,
                          "age_s": i.validation_age_s}
    if v is None:
        return GateResult("validation", False, f"no finished {want} validation (run "
                          f"crosswind validate -d {want})", evidence=ev)
    ev.update(run_id=v.run_id, verdict=v.verdict, finished_at=v.finished_at,
              completeness_pct=v.completeness_pct, pass_rate_pct=v.pass_rate_pct)
    if v.direction != want:
        return GateResult("validation", False, f"validation {v.run_id} is {v.direction}, "
                          f"the {i.kind} needs {want}", evidence=ev)
    if v.verdict != "pass":
        return GateResult("validation", False, f"the latest {want} validation ({v.run_id}) "
                          f"did not pass: {v.verdict}", evidence=ev)
    age = i.validation_age_s
    if age is None or not 0 <= age < lim.validation_max_age_s:
        shown = "unknown" if age is None else f"{age:.0f}s"
        return GateResult("validation", False, f"validation {v.run_id} passed but is "
                          f"{shown} old, not younger than validation_max_age_s = "
                          f"{lim.validation_max_age_s:g}s (validate again)", evidence=ev)
    return GateResult("validation", True, f"validation {v.run_id} passed {age:.0f}s ago",
                      evidence=ev)


def preflight_gate(i: GateInputs) -> GateResult:
    p = i.preflight
    want = i.arriving.value
    if p is None:
        return GateResult("preflight", False, f"the {want} preflight did not run",
                          evidence={"direction": want})
    ev = {"direction": p.direction, "checked": list(p.checked)}
    if p.direction != want:
        return GateResult("preflight", False, f"the preflight checked {p.direction}, the "
                          f"{i.kind} needs {want}", evidence=ev)
    if not p.passed:
        return GateResult("preflight", False, f"{want} preflight failed: {p.reason}",
                          evidence=ev)
    return GateResult("preflight", True, f"{want} preflight passed: {p.reason}", evidence=ev)


#: gate names in the order they are shown
GATE_NAMES = ("replication", "streams", "breakers", "dlq", "validation", "preflight")
#: the gates that stop a rollback (see the module docstring)
ROLLBACK_REQUIRED = frozenset({"replication", "preflight"})


def evaluate_gates(i: GateInputs, lim: GateLimits) -> list[GateResult]:
    results = [replication_gate(i, lim), streams_gate(i), breakers_gate(i), dlq_gate(i),
               validation_gate(i, lim), preflight_gate(i)]
    if i.kind == "rollback":
        results = [_advisory(r) if r.name not in ROLLBACK_REQUIRED else r for r in results]
        # A rollback drains reverse replication however lagged it is: only that it
        # runs in the right direction is required.
        results = [_running_only(r, i) if r.name == "replication" else r for r in results]
    return results


def _advisory(r: GateResult) -> GateResult:
    return GateResult(r.name, r.passed, r.reason, False, r.evidence)


def _running_only(r: GateResult, i: GateInputs) -> GateResult:
    if r.passed:
        return r
    if i.service_running and i.service_direction == i.leaving.value and not i.status_error:
        return GateResult(r.name, True, f"running {i.service_direction}; {r.reason} (the "
                          "rollback's drain waits for it)", True, r.evidence)
    return r


def all_pass(results: Sequence[GateResult]) -> bool:
    """No required gate failed."""
    return not any(r.blocks for r in results)
