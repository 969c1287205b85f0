"""The Prometheus exporter: a prometheus-client collector that reads the
monitoring document at scrape time (no state of its own, nothing duplicated),
and the text exposition ``/metrics`` and ``crosswind metrics --once`` serve."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.registry import Collector

from crosswind.observability.catalogue import Metric, collect
from crosswind.observability.readers import Doc, HistogramSample, Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _le(edge: float) -> str:
    return "+Inf" if math.isinf(edge) else repr(float(edge))


def family(m: Metric, samples: list[Sample | HistogramSample]) -> PromMetric:
    labels = list(m.labels)

    def values(s: Sample | HistogramSample) -> list[str]:
        return [dict(s.labels).get(k, "") for k in labels]

    if m.type == "histogram":
        hist = HistogramMetricFamily(m.name, m.help, labels=labels)
        for s in samples:
            if isinstance(s, HistogramSample):
                hist.add_metric(values(s), [(_le(e), float(c)) for e, c in s.buckets], s.sum)
        return hist
    fam = (CounterMetricFamily(m.name, m.help, labels=labels) if m.type == "counter"
           else GaugeMetricFamily(m.name, m.help, labels=labels))
    for s in samples:
        if isinstance(s, Sample) and math.isfinite(s.value):
            fam.add_metric(values(s), s.value)
    return fam


class CatalogueCollector(Collector):
    """Every catalogue metric, read from ``source()`` at each scrape."""

    def __init__(self, source: Callable[[], Doc]) -> None:
        self.source = source

    def collect(self) -> Iterator[PromMetric]:
        for m, samples in collect(self.source()):
            yield family(m, samples)


def exposition(source: Callable[[], Doc]) -> bytes:
    """The text format (0.0.4) of every metric, for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogueCollector(source))
    return generate_latest(registry)
