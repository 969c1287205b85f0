"""Counting what one check saw, and the two headline figures. Pure.

Every item (an object key, a row key, a join key) is counted once:

* **completeness** = items the source side holds that the destination also
  holds ÷ items the source side holds (for the join: objects that have their
  row ÷ objects). 100 % when the source holds nothing.
* **consistency pass rate** = items with no discrepancy ÷ all items seen on
  either side. An item with several discrepancies fails once. 100 % when
  nothing was seen.

A target is met when the figure is at least the target, compared exactly
(fractions, not rounded floats); reports show percentages truncated, never
rounded up, so 99.99996 % is shown as 99.9999 %, not 100 %.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from crosswind.validate.findings import Check, Finding, Kind


@dataclass(frozen=True)
class Targets:
    completeness: float = 99.9
    pass_rate: float = 99.5


def meets(value: Fraction, target_pct: float) -> bool:
    return value * 100 >= Fraction(str(target_pct))


def percent(value: Fraction, places: int = 4) -> float:
    """``value`` as a percentage, truncated to ``places`` decimals."""
    scale = int(10**places)
    scaled = value * 100 * scale
    return (scaled.numerator // scaled.denominator) / scale


@dataclass
class CheckTally:
    #: None for the sum over all checks
    check: Check | None
    max_examples: int = 20
    source_items: int = 0
    present: int = 0
    items: int = 0
    failed: int = 0
    kinds: Counter[Kind] = field(default_factory=Counter)
    examples: dict[Kind, list[Finding]] = field(default_factory=dict)
    #: how many items each attribute was compared for, and what could not be
    coverage: Counter[str] = field(default_factory=Counter)
    #: entries listed per side
    listed: Counter[str] = field(default_factory=Counter)

    def record(self, *, at_source: bool, at_destination: bool,
               findings: Sequence[Finding] = ()) -> None:
        """Count one item: where it was found and what was wrong with it."""
        self.items += 1
        if at_source:
            self.source_items += 1
            if at_destination:
                self.present += 1
        if findings:
            self.failed += 1
            for f in findings:
                self.kinds[f.kind] += 1
                ex = self.examples.setdefault(f.kind, [])
                if len(ex) < self.max_examples:
                    ex.append(f)

    @property
    def passed(self) -> int:
        return self.items - self.failed

    @property
    def completeness(self) -> Fraction:
        return Fraction(self.present, self.source_items) if self.source_items else Fraction(1)

    @property
    def pass_rate(self) -> Fraction:
        return Fraction(self.passed, self.items) if self.items else Fraction(1)

    def verdict(self, targets: Targets) -> dict[str, bool]:
        return {"completeness": meets(self.completeness, targets.completeness),
                "pass_rate": meets(self.pass_rate, targets.pass_rate)}

    def as_dict(self, targets: Targets) -> dict[str, Any]:
        v = self.verdict(targets)
        return {
            "items": self.items,
            "source_items": self.source_items,
            "present_on_destination": self.present,
            "passed": self.passed,
            "failed": self.failed,
            "completeness_pct": percent(self.completeness),
            "pass_rate_pct": percent(self.pass_rate),
            "meets_completeness": v["completeness"],
            "meets_pass_rate": v["pass_rate"],
            "listed": dict(self.listed),
            "coverage": dict(sorted(self.coverage.items())),
            "discrepancies": {
                k.value: {
                    "count": self.kinds[k],
                    "examples": [{"key": f.key, "detail": f.detail}
                                 for f in self.examples.get(k, [])],
                }
                for k in Kind if self.kinds[k]
            },
        }


def overall(tallies: Iterable[CheckTally]) -> CheckTally:
    """All checks added together (counts only), for the headline figures."""
    total = CheckTally(None, max_examples=0)
    for t in tallies:
        total.source_items += t.source_items
        total.present += t.present
        total.items += t.items
        total.failed += t.failed
        total.kinds.update(t.kinds)
    return total
