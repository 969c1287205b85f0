"""The JSON report of one validation run (field meanings are in the README)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from crosswind.governance.stewardship import Stewardship, stewardship_fields
from crosswind.validate.findings import Check, Kind
from crosswind.validate.tally import CheckTally, Targets, overall
from crosswind.version import crosswind_version

Verdict = Literal["pass", "fail", "error"]


@dataclass
class RunFacts:
    """What a report says about the run besides the tallies."""

    run_id: int
    direction: str
    started_at: datetime
    finished_at: datetime
    source: dict[str, str]
    destination: dict[str, str]
    mode: dict[str, Any]
    targets: Targets
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    stewardship: Stewardship | None = None


def verdict(tallies: Mapping[Check, CheckTally], targets: Targets, error: str | None) -> Verdict:
    """``pass`` only when every check that ran meets both targets."""
    if error is not None:
        return "error"
    for t in tallies.values():
        if not all(t.verdict(targets).values()):
            return "fail"
    return "pass"


def build_report(facts: RunFacts, tallies: Mapping[Check, CheckTally]) -> dict[str, Any]:
    duration = max((facts.finished_at - facts.started_at).total_seconds(), 1e-9)
    total = overall(tallies.values())
    counts: Counter[str] = Counter()
    for t in tallies.values():
        for k, n in t.kinds.items():
            counts[k.value] += n
    totals = total.as_dict(facts.targets)
    for name in ("listed", "coverage", "discrepancies"):
        totals.pop(name)
    checks: dict[str, Any] = {}
    for check, t in tallies.items():
        d = t.as_dict(facts.targets)
        d["items_per_s"] = round(t.items / duration, 1)
        checks[check.value] = d
    return {
        "kind": "validate",
        "crosswind_version": crosswind_version(),
        "run_id": facts.run_id,
        "verdict": verdict(tallies, facts.targets, facts.error),
        "error": facts.error,
        "direction": facts.direction,
        "source": facts.source,
        "destination": facts.destination,
        "started_at": facts.started_at.isoformat(),
        "finished_at": facts.finished_at.isoformat(),
        "duration_s": round(duration, 3),
        "mode": facts.mode,
        "targets": {"completeness_pct": facts.targets.completeness,
                    "pass_rate_pct": facts.targets.pass_rate},
        "totals": totals,
        "discrepancy_counts": {k.value: counts[k.value] for k in Kind if counts[k.value]},
        "checks": checks,
        "throughput": {"items_per_s": round(total.items / duration, 1)},
        **stewardship_fields(facts.stewardship),
        **facts.extra,
    }
