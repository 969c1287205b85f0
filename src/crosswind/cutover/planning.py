"""``cutover plan`` / ``rollback plan``: gather the gates' inputs, evaluate the
gates, build the runbook, hash the whole, keep it in the state store and audit
it. The plan is saved whether or not its gates pass (it is the record of what
was looked at), but only a plan whose gates passed can be approved."""

from __future__ import annotations

from datetime import UTC, datetime

from crosswind.audit import AuditLog
from crosswind.config import Config
from crosswind.control import whoami
from crosswind.cutover.gates import GateLimits, Kind, evaluate_gates
from crosswind.cutover.inputs import gather_inputs
from crosswind.cutover.plan import Plan, PlanError, PlanStore, make_plan
from crosswind.cutover.runbook import runbook_for
from crosswind.migration import MigrationStore, Phase
from crosswind.state import StateStore

#: the phase each kind of switch starts from
STARTS_FROM: dict[Kind, Phase] = {"cutover": Phase.PRE_CUTOVER,
                                  "rollback": Phase.POST_CUTOVER}


def limits(cfg: Config) -> GateLimits:
    return GateLimits(cfg.cutover.max_lag_s, cfg.cutover.validation_max_age_s)


async def prepare_plan(cfg: Config, kind: Kind, *, dlq_acknowledged: int = 0,
                       now: datetime | None = None, by: str | None = None) -> Plan:
    at = now or datetime.now(UTC)
    state = StateStore(cfg.state_dir)
    try:
        phase = MigrationStore(state).get().phase
    finally:
        state.close()
    if phase is not STARTS_FROM[kind]:
        other = "rollback" if kind == "cutover" else "cutover"
        raise PlanError(f"the migration is {phase.value}: a {kind} plan needs "
                        f"{STARTS_FROM[kind].value} (crosswind {other} plan?)")
    inputs = await gather_inputs(cfg, kind, dlq_acknowledged=dlq_acknowledged, now=at)
    gates = evaluate_gates(inputs, limits(cfg))
    book = runbook_for(kind, cfg.cutover, cfg.validation)
    state = StateStore(cfg.state_dir)
    try:
        audit = AuditLog(state)
        who = by or whoami()
        plan = make_plan(kind=kind, cfg=cfg, phase=inputs.phase, inputs=inputs, gates=gates,
                         runbook=book, created_at=at.isoformat(timespec="milliseconds"),
                         created_by=who, audit_head=audit.head())
        PlanStore(state).save(plan)
        failed = [g.name for g in gates if g.blocks]
        v = inputs.validation
        audit.append(
            "plan", "gates passed" if not failed else f"gates failed: {', '.join(failed)}",
            principal=who, verified_by="local user (not authenticated)", plan_hash=plan.hash,
            evidence={"kind": kind, "phase": inputs.phase, "lag_p99_s": inputs.lag_p99_s,
                      "dlq_open": inputs.dlq_open,
                      "dlq_acknowledged": inputs.dlq_acknowledged,
                      "validation_id": None if v is None else v.run_id,
                      "completeness_pct": None if v is None else v.completeness_pct,
                      "pass_rate_pct": None if v is None else v.pass_rate_pct,
                      "gates": {g.name: g.passed for g in gates}})
    finally:
        state.close()
    return plan
