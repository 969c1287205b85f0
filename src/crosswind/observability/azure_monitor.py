"""The Azure Monitor exporter: the catalogue's gauges and counters as
OpenTelemetry observable instruments, exported by Microsoft's
``azure-monitor-opentelemetry-exporter`` to Application Insights (its
``customMetrics`` table, each label a ``customDimensions`` entry).

The instruments' callbacks read the latest samples the service handed over
(``update``); nothing is counted twice. Counters are observed cumulatively and
sent as deltas (the exporter's preferred temporality), gauges as their value.
Histograms are not sent: Application Insights has no bucketed metrics; the lag
and latency gauges (p99, recent, baseline) carry what the alerts need.

The connection string's ``IngestionEndpoint`` says where the data goes (a
local receiver in tests).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

from crosswind.observability.catalogue import METRICS, Metric
from crosswind.observability.readers import AnySample, Sample


class AzureMonitorExporter:
    def __init__(self, connection_string: str, *, interval_s: float = 60.0,
                 resource: dict[str, str] | None = None) -> None:
        from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        self._lock = threading.Lock()
        self._latest: dict[str, list[Sample]] = {}
        exporter = AzureMonitorMetricExporter(connection_string=connection_string,
                                              disable_offline_storage=True)
        self.reader = PeriodicExportingMetricReader(
            exporter, export_interval_millis=max(1000.0, interval_s * 1000))
        self.provider = MeterProvider(
            metric_readers=[self.reader],
            resource=Resource.create({"service.name": "crosswind", **(resource or {})}))
        meter = self.provider.get_meter("crosswind")
        for m in METRICS:
            if m.type == "histogram":
                continue
            callback = self._callback(m)
            if m.type == "counter":
                meter.create_observable_counter(m.name, [callback], unit=m.unit,
                                                description=m.help)
            else:
                meter.create_observable_gauge(m.name, [callback], unit=m.unit,
                                              description=m.help)
        self.updates = 0

    def _callback(self, m: Metric) -> Any:
        from opentelemetry.metrics import CallbackOptions, Observation

        def observe(_: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                samples = list(self._latest.get(m.name, []))
            return [Observation(s.value, dict(s.labels)) for s in samples
                    if math.isfinite(s.value)]

        return observe

    def update(self, samples: Iterable[AnySample]) -> None:
        """The figures the next export sends."""
        latest: dict[str, list[Sample]] = {}
        for s in samples:
            if isinstance(s, Sample):
                latest.setdefault(s.name, []).append(s)
        with self._lock:
            self._latest = latest
        self.updates += 1

    def flush(self, timeout_s: float = 10.0) -> bool:
        return bool(self.provider.force_flush(int(timeout_s * 1000)))

    def shutdown(self) -> None:
        self.provider.shutdown()

    def status(self) -> dict[str, Any]:
        return {"updates": self.updates}
