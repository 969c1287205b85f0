"""Rollback triggers: property tests of the hysteresis over random series."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crosswind.cutover.triggers import (
    Sample,
    TriggerEvent,
    TriggerSettings,
    evaluate,
    sample_from_status,
    step,
)

S = TriggerSettings(lag_slo_s=120, lag_for_s=300, error_rate=0.05, breaker_open_s=120,
                    clear_for_s=300, error_window_s=300, min_changes=20)


@st.composite
def series(draw: st.DrawFn) -> list[Sample]:
    """Samples every 5-60 s; stretches of good and bad lag, breakers, errors."""
    out, at, applied, failed = [], 0.0, 0, 0
    for _ in range(draw(st.integers(1, 120))):
        at += draw(st.sampled_from([5.0, 10.0, 30.0, 60.0]))
        applied += draw(st.integers(0, 50))
        failed += draw(st.sampled_from([0, 0, 0, 1, 10]))
        out.append(Sample(at, draw(st.sampled_from([1.0, 50.0, 200.0])), applied, failed,
                          draw(st.sampled_from([frozenset(), frozenset(), frozenset({"s3"})])),
                          1, draw(st.sampled_from(["pass", "pass", "fail", None]))))
    return out


def bad(name: str, s: Sample) -> bool:
    return {"lag": s.lag_p99_s > S.lag_slo_s, "breaker": bool(s.open_breakers),
            "validation": s.validation_verdict == "fail"}[name]


@given(series())
def test_fired_and_cleared_alternate_with_a_clear_stretch_between(samples: list[Sample]
                                                                  ) -> None:
    _, events = evaluate(samples, S)
    for name in ("lag", "error_rate", "breaker", "validation"):
        mine = [e for e in events if e.trigger == name]
        kinds = [e.kind for e in mine]
        # fired, cleared, fired, ... never two of a kind in a row: no flapping
        assert all(k == ("fired" if n % 2 == 0 else "cleared") for n, k in enumerate(kinds))
        for fired, cleared in zip(mine[::2], mine[1::2], strict=False):
            assert cleared.at - fired.at >= S.clear_for_s
        if name in ("lag", "breaker", "validation"):
            for e in mine:
                if e.kind == "cleared":
                    # the condition was clear for clear_for_s up to the re-arm
                    stretch = [s for s in samples if e.at - S.clear_for_s <= s.at <= e.at]
                    assert not any(bad(name, s) for s in stretch)


@given(series())
def test_lag_fires_only_after_holding_for_lag_for_s(samples: list[Sample]) -> None:
    _, events = evaluate(samples, S)
    for e in (e for e in events if e.trigger == "lag" and e.kind == "fired"):
        upto = [s for s in samples if s.at <= e.at]
        assert bad("lag", upto[-1])
        # the unbroken bad stretch that ends at the firing began lag_for_s or more before
        n = len(upto) - 1
        while n > 0 and bad("lag", upto[n - 1]):
            n -= 1
        assert e.at - upto[n].at >= S.lag_for_s


@given(series(), st.integers(0, 120))
def test_feeding_one_at_a_time_is_the_same_as_folding(samples: list[Sample], cut: int
                                                      ) -> None:
    whole_d, whole = evaluate(samples, S)
    d, first = evaluate(samples[:cut], S)
    rest: list[TriggerEvent] = []
    for s in samples[cut:]:
        d, ev = step(d, s)
        rest.extend(ev)
    assert first + rest == whole and d == whole_d


def test_one_bad_minute_neither_fires_nor_flaps() -> None:
    samples = [Sample(t, 500.0 if 600 <= t < 660 else 1.0, 100 * t // 10, 0)
               for t in range(0, 1800, 10)]
    assert [e for e in evaluate(samples, S)[1] if e.trigger == "lag"] == []


def test_sustained_lag_fires_once_then_rearms_after_a_clear_stretch() -> None:
    samples = [Sample(t, 500.0 if t < 400 else 1.0) for t in range(0, 1200, 10)]
    events = [e for e in evaluate(samples, S)[1] if e.trigger == "lag"]
    assert [(e.kind, e.at) for e in events] == [("fired", 300), ("cleared", 700)]
    assert "above the SLO of 120s" in events[0].reason


def test_error_rate_needs_enough_changes_and_counts_restarts() -> None:
    few = [Sample(t, 1.0, applied=0, failed=t // 60) for t in range(0, 300, 60)]
    assert evaluate(few, S)[1] == []  # 4 failures of 4 changes: too few to judge
    many = [Sample(0, 1.0, 0, 0), Sample(60, 1.0, 100, 20)]
    fired = evaluate(many, S)[1]
    assert [e.trigger for e in fired] == ["error_rate"]
    assert fired[0].evidence["failed"] == 20 and fired[0].evidence["changes"] == 120
    # A service restart sets the counters back to zero: counted from zero again.
    restart = [Sample(0, 1.0, 1000, 0), Sample(60, 1.0, 50, 0), Sample(120, 1.0, 100, 1)]
    assert evaluate(restart, S)[1] == []


def test_a_breaker_fires_when_open_longer_than_the_limit() -> None:
    s3 = frozenset({"s3"})
    flapping = [Sample(t, 1.0, open_breakers=s3 if (t // 60) % 2 else frozenset())
                for t in range(0, 900, 10)]
    assert evaluate(flapping, S)[1] == []
    stuck = [Sample(t, 1.0, open_breakers=s3) for t in range(0, 200, 10)]
    events = evaluate(stuck, S)[1]
    assert [(e.trigger, e.at) for e in events] == [("breaker", 130)]
    assert events[0].evidence["endpoint"] == "s3"


def test_a_failed_validation_fires_at_once_and_the_status_feeds_samples() -> None:
    doc = {"lag_p99_s": 3.5, "streams": [{"applied": 10, "failed": 1},
                                         {"applied": 5, "failed": 0}],
           "breakers": {"s3": "closed", "azure-blob": "half-open"},
           "validation": {"run_id": 9, "verdict": "fail"}}
    s = sample_from_status(doc, 42.0)
    assert s == Sample(42.0, 3.5, 15, 1, frozenset({"azure-blob"}), 9, "fail")
    events = evaluate([s], S)[1]
    assert [e.trigger for e in events] == ["validation"]
    assert events[0].reason == "scheduled validation 9 failed"
