"""The alerts the service evaluates: every alert of the catalogue fires at its
threshold (held for its ``for_s``) and not just short of it, with the same
semantics as the generated Prometheus rules."""

from __future__ import annotations

import pytest

from crosswind.observability.alerts import AlertEngine
from crosswind.observability.catalogue import ResolvedAlert, resolved_alerts
from crosswind.observability.readers import Sample

ALERTS = resolved_alerts()


def _labels(a: ResolvedAlert) -> tuple[tuple[str, str], ...]:
    return tuple((k, "x") for k in a.metric.labels)


def run(a: ResolvedAlert, series: list[float], step_s: float = 60.0) -> list[str]:
    """Feed ``series`` (one value a step) to an engine holding only ``a``; the
    transitions, as 'firing@i' / 'resolved@i'."""
    engine = AlertEngine([a])
    out = []
    for i, v in enumerate(series):
        for t in engine.step([Sample(a.metric.name, _labels(a), v)], i * step_s):
            out.append(f"{t.status}@{i}")
    return out


def held(a: ResolvedAlert) -> int:
    """Steps of one minute to hold a value for the alert's for_s (and one more)."""
    return int(a.for_s // 60) + 2


@pytest.mark.parametrize("a", [a for a in ALERTS if a.kind == "value"], ids=lambda a: a.name)
def test_a_value_alert_fires_at_its_threshold_and_not_short_of_it(a: ResolvedAlert) -> None:
    at = a.threshold if a.op == ">=" else a.threshold - 1e-9
    short = a.threshold - 1e-9 if a.op == ">=" else a.threshold
    fired = run(a, [at] * held(a))
    assert fired == [f"firing@{int(a.for_s // 60)}"], fired
    assert run(a, [short] * 30) == []


@pytest.mark.parametrize("a", [a for a in ALERTS if a.kind == "value" and a.for_s],
                         ids=lambda a: a.name)
def test_for_s_needs_the_condition_without_a_break(a: ResolvedAlert) -> None:
    at = a.threshold if a.op == ">=" else a.threshold - 1e-9
    good = a.threshold - 1 if a.op == ">=" else a.threshold + 1
    steps = int(a.for_s // 60)
    # bad for one step less than needed, one good sample, then bad again from scratch
    series = [at] * steps + [good] + [at] * (steps + 1)
    assert run(a, series) == [f"firing@{2 * steps + 1}"]


@pytest.mark.parametrize("a", [a for a in ALERTS if a.kind == "increase"],
                         ids=lambda a: a.name)
def test_an_increase_alert_fires_when_the_counter_grew_by_its_threshold(
        a: ResolvedAlert) -> None:
    n = int(a.threshold)
    # one sample a minute; the counter steps up by n at minute 3
    assert run(a, [5, 5, 5, 5 + n, 5 + n]) == ["firing@3"]
    assert run(a, [5, 5, 5, 5 + n - 1, 5 + n - 1]) == []  # short of it
    # once the rise is older than the window it resolves
    window_steps = int(a.window_s // 60)
    got = run(a, [5, 5 + n] + [5 + n] * (window_steps + 1))
    assert got == ["firing@1", f"resolved@{window_steps + 1}"]
    # a counter that restarted (a service restart) counts from zero again
    assert run(a, [7, 7, 0, n]) == ["firing@3"]


@pytest.mark.parametrize("a", [a for a in ALERTS if a.kind == "growth"], ids=lambda a: a.name)
def test_a_growth_alert_fires_when_the_gauge_rose_by_its_threshold(a: ResolvedAlert) -> None:
    n = a.threshold
    assert run(a, [2, 2, 2 + n]) == ["firing@2"]
    assert run(a, [2, 2, 2 + n - 1]) == []
    # a DLQ that shrinks then grows back by less than the threshold: no alert
    assert run(a, [5, 3, 3 + n - 1]) == []
    # no longer higher than its lowest point in the window: resolved
    steps = int(a.window_s // 60)
    got = run(a, [2, 2 + n] + [2 + n] * (steps + 1))
    assert got == ["firing@1", f"resolved@{steps + 1}"]


def test_status_shows_firing_and_pending_then_resolution() -> None:
    rule = next(a for a in ALERTS if a.name == "CrosswindWorkersSaturated")
    engine = AlertEngine([rule])
    assert engine.step([Sample(rule.metric.name, (), 0.9)], 0.0) == []
    st = engine.status()
    assert st["firing"] == [] and st["pending"][0]["alert"] == rule.name
    [t] = engine.step([Sample(rule.metric.name, (), 0.8)], rule.for_s)
    assert t.status == "firing" and t.value == 0.8
    assert engine.status()["firing"][0]["value"] == 0.8
    [t] = engine.step([Sample(rule.metric.name, (), 0.1)], rule.for_s + 15)
    assert t.status == "resolved"
    st = engine.status()
    assert st["firing"] == [] and st["pending"] == []
    assert [r["status"] for r in st["recent"]] == ["resolved", "firing"]


def test_one_series_per_label_set_and_a_vanished_series_resolves() -> None:
    rule = next(a for a in ALERTS if a.name == "CrosswindBreakerOpen")
    engine = AlertEngine([rule])
    s3 = Sample(rule.metric.name, (("endpoint", "s3"),), 1.0)
    blob = Sample(rule.metric.name, (("endpoint", "azure-blob"),), 1.0)
    got = engine.step([s3, blob], 0)
    assert sorted(dict(t.labels)["endpoint"] for t in got) == ["azure-blob", "s3"]
    got = engine.step([Sample(rule.metric.name, (("endpoint", "s3"),), 0.0)], 10)
    assert sorted((t.status, dict(t.labels)["endpoint"]) for t in got) == [
        ("resolved", "azure-blob"), ("resolved", "s3")]
