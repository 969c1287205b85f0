"""Completeness and pass rate: hand-computed cases, exact target comparison, sums."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from crosswind.validate.findings import Check, Finding, Kind
from crosswind.validate.report import verdict
from crosswind.validate.tally import CheckTally, Targets, meets, overall, percent


def _f(kind: Kind, key: str = "k") -> Finding:
    return Finding(Check.OBJECTS, kind, key, "")


def tally_of(same: int, missing: int = 0, extra: int = 0, differ: int = 0) -> CheckTally:
    t = CheckTally(Check.OBJECTS)
    for _ in range(same):
        t.record(at_source=True, at_destination=True)
    for i in range(missing):
        t.record(at_source=True, at_destination=False, findings=[_f(Kind.MISSING, f"m{i}")])
    for i in range(extra):
        t.record(at_source=False, at_destination=True, findings=[_f(Kind.EXTRA, f"e{i}")])
    for i in range(differ):
        t.record(at_source=True, at_destination=True, findings=[_f(Kind.HASH, f"d{i}")])
    return t


def test_hand_computed_case() -> None:
    # 1000 at the source: 990 equal, 2 missing, 8 with other content; 3 extra.
    t = tally_of(990, missing=2, extra=3, differ=8)
    assert t.items == 1003 and t.source_items == 1000
    assert t.completeness == Fraction(998, 1000)          # 99.8 %
    assert t.pass_rate == Fraction(990, 1003)             # 98.7038... %
    d = t.as_dict(Targets())
    assert d["completeness_pct"] == 99.8
    assert d["pass_rate_pct"] == 98.7038
    assert d["meets_completeness"] is False and d["meets_pass_rate"] is False
    assert d["discrepancies"]["missing_on_destination"]["count"] == 2
    assert d["discrepancies"]["hash_mismatch"]["count"] == 8


def test_targets_are_met_at_exactly_the_target() -> None:
    at = tally_of(999, missing=1)                         # exactly 99.9 % complete
    assert at.verdict(Targets(99.9, 99.9)) == {"completeness": True, "pass_rate": True}
    below = tally_of(998, missing=2)                      # 99.8 %
    assert below.verdict(Targets(99.9, 0)) == {"completeness": False, "pass_rate": True}
    # 995 of 1000 pass: exactly the 99.5 % default pass-rate target.
    five = tally_of(995, differ=5)
    assert five.verdict(Targets()) == {"completeness": True, "pass_rate": True}
    six = tally_of(994, differ=6)
    assert six.verdict(Targets()) == {"completeness": True, "pass_rate": False}


def test_verdict_needs_every_check_to_meet_both_targets() -> None:
    good, bad = tally_of(1000), tally_of(990, differ=10)
    assert verdict({Check.OBJECTS: good}, Targets(), None) == "pass"
    assert verdict({Check.OBJECTS: good, Check.METADATA: bad}, Targets(), None) == "fail"
    assert verdict({Check.OBJECTS: good}, Targets(), "boom") == "error"
    # Overall figures could hide the bad check: 1990/2000 = 99.5 % passes alone.
    assert overall([good, bad]).verdict(Targets()) == {"completeness": True, "pass_rate": True}


def test_empty_sides_are_complete() -> None:
    t = CheckTally(Check.OBJECTS)
    assert t.completeness == 1 and t.pass_rate == 1
    assert t.as_dict(Targets())["completeness_pct"] == 100.0


def test_percent_truncates_never_rounds_up() -> None:
    assert percent(Fraction(9_999_999, 10_000_000)) == 99.9999
    assert percent(Fraction(2, 3)) == 66.6666
    assert percent(Fraction(1)) == 100.0
    assert meets(Fraction(999, 1000), 99.9) and not meets(Fraction(998, 1000), 99.9)


def test_examples_are_capped_counts_are_not() -> None:
    t = CheckTally(Check.OBJECTS, max_examples=3)
    for i in range(10):
        t.record(at_source=True, at_destination=False, findings=[_f(Kind.MISSING, str(i))])
    d = t.as_dict(Targets())["discrepancies"]["missing_on_destination"]
    assert d["count"] == 10 and [e["key"] for e in d["examples"]] == ["0", "1", "2"]


@given(st.lists(st.tuples(st.booleans(), st.booleans(),
                          st.lists(st.sampled_from(list(Kind)), max_size=3)), max_size=60))
def test_figures_follow_the_counts(items: list[tuple[bool, bool, list[Kind]]]) -> None:
    items = [(s, d if s else True, ks) for s, d, ks in items]  # every item is somewhere
    t = CheckTally(Check.OBJECTS)
    for s, d, ks in items:
        t.record(at_source=s, at_destination=d, findings=[_f(k) for k in ks])
    src = sum(1 for s, _, _ in items if s)
    present = sum(1 for s, d, _ in items if s and d)
    failed = sum(1 for *_, ks in items if ks)
    assert t.completeness == (Fraction(present, src) if src else 1)
    assert t.pass_rate == (Fraction(len(items) - failed, len(items)) if items else 1)
    assert sum(t.kinds.values()) == sum(len(ks) for *_, ks in items)
    assert 0 <= percent(t.pass_rate) <= 100
    both = overall([t, t])
    assert both.completeness == t.completeness and both.pass_rate == t.pass_rate
