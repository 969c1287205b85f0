"""CloudWatch datums and batches (pure; the put itself runs against moto in the
integration tests): within 1,000 datums and 1 MB per request, at most 150 values
a datum, no NaN or infinity, counters as their growth, histograms as values
with counts, a roll-up for each labelled metric."""

from __future__ import annotations

import math
from typing import Any

import pytest

from crosswind.observability.catalogue import samples
from crosswind.observability.cloudwatch import (
    MAX_DATA_PER_REQUEST,
    MAX_REQUEST_BYTES,
    MAX_VALUES_PER_DATUM,
    CloudWatchExporter,
    batches,
    query_size,
)
from crosswind.observability.readers import HistogramSample, Sample
from tests.unit.monitoring_fixtures import known_document


def exporter(extra: dict[str, str] | None = None) -> CloudWatchExporter:
    return CloudWatchExporter(None, "Crosswind", extra, clock=lambda: 1_767_225_600.0)


def by(data: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in data if d["MetricName"] == name]


def test_batches_stay_within_the_request_limits() -> None:
    # 2,500 series with long label values: the count limit and the size limit both bite
    many = [Sample("crosswind_backlog", (("stream", f"s{i:05d}-" + "x" * 400),
                                          ("kind", "objects")), float(i)) for i in range(2500)]
    data = exporter({"Estate": "flights"}).datums(many)
    assert len(data) == 2501  # and the roll-up
    out = batches(data)
    assert sum(len(b) for b in out) == len(data)
    assert len(out) >= 3
    for b in out:
        assert len(b) <= MAX_DATA_PER_REQUEST
        assert sum(query_size(d) for d in b) <= MAX_REQUEST_BYTES
    small = batches(exporter().datums(many[:10]))
    assert len(small) == 1


def test_counters_are_sent_as_their_growth() -> None:
    ex = exporter()
    s = [Sample("crosswind_changes_applied_total", (("stream", "a"), ("kind", "objects")), 10)]
    assert by(ex.datums(s), "crosswind_changes_applied_total") == []  # the base
    s = [Sample("crosswind_changes_applied_total", (("stream", "a"), ("kind", "objects")), 25)]
    got = by(ex.datums(s), "crosswind_changes_applied_total")
    labelled = [d for d in got if d["Dimensions"]]
    assert [d["Value"] for d in labelled] == [15]
    assert labelled[0]["Unit"] == "Count"
    rollup = [d for d in got if not d["Dimensions"]]
    assert [d["Value"] for d in rollup] == [15]  # summed across streams
    s = [Sample("crosswind_changes_applied_total", (("stream", "a"), ("kind", "objects")), 4)]
    assert [d["Value"] for d in by(ex.datums(s), "crosswind_changes_applied_total")
            if d["Dimensions"]] == [4]  # restarted: all of it is new


def test_histograms_become_values_and_counts() -> None:
    ex = exporter()
    edges = [float(i) for i in range(1, 400)]

    def hist(per_bucket: int) -> HistogramSample:
        buckets = tuple((e, per_bucket * (i + 1)) for i, e in enumerate(edges))
        return HistogramSample("crosswind_replication_lag_seconds",
                               (("stream", "a"), ("kind", "objects")),
                               (*buckets, (math.inf, per_bucket * len(edges))), 0.0,
                               per_bucket * len(edges))

    assert ex.datums([hist(1)]) == []
    got = ex.datums([hist(3)])
    assert all(len(d["Values"]) <= MAX_VALUES_PER_DATUM for d in got)
    assert sum(len(d["Values"]) for d in got) == len(edges)
    assert all(c == 2 for d in got for c in d["Counts"])  # 3 - 1 new per bucket
    assert got[0]["Values"][0] == 0.5 and got[0]["Unit"] == "Seconds"


def test_the_known_document_as_datums() -> None:
    ex = exporter({"Estate": "flights"})
    first = ex.datums(samples(known_document()))
    for d in first:
        dims = d["Dimensions"]
        assert len(dims) <= 30 and {"Name": "Estate", "Value": "flights"} in dims
        for v in d.get("Values", [d.get("Value")]):
            assert math.isfinite(v)
    names = {d["MetricName"] for d in first}
    assert "crosswind_worker_utilisation_ratio" in names
    assert "crosswind_objects_total" not in names  # counters: the first sight is the base
    util = by(first, "crosswind_worker_utilisation_ratio")
    assert [d["Value"] for d in util] == [0.75] and util[0]["Unit"] == "None"
    breakers = by(first, "crosswind_breaker_open")
    assert max(d["Value"] for d in breakers) == 1
    assert [d["Value"] for d in breakers if len(d["Dimensions"]) == 1] == [1]  # roll-up: max
    completeness = [d for d in by(first, "crosswind_validation_completeness_ratio")
                    if len(d["Dimensions"]) == 1]
    assert completeness[0]["Value"] == pytest.approx(0.9985)  # roll-up of a "below" alert: min


def test_nan_and_infinite_values_are_never_sent() -> None:
    ex = exporter()
    got = ex.datums([Sample("crosswind_backlog", (("stream", "a"), ("kind", "x")), math.nan),
                     Sample("crosswind_pending_keys", (), math.inf),
                     Sample("crosswind_pending_keys", (), 3.0)])
    assert [d["Value"] for d in got] == [3.0]
