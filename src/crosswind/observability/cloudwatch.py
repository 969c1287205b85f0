"""The CloudWatch exporter: catalogue samples as ``PutMetricData`` datums, in
batches within the API's limits, plus the dashboards and alarms ``--apply``
puts.

Limits (PutMetricData): at most 1,000 datums and 1 MB per request, at most 150
distinct values per datum (``Values``/``Counts``), at most 30 dimensions, no
NaN or infinity. What CloudWatch is sent:

* a gauge: its value;
* a counter: what it grew by since the last put (CloudWatch sums datums; a
  counter that went down restarted, so its whole value is the growth); the
  first sight of a counter only sets the base;
* a histogram: the observations since the last put, as ``Values`` (bucket
  midpoints) with ``Counts``, so CloudWatch computes percentiles itself;
* for a labelled metric also a roll-up datum without the label dimensions
  (max, min or sum as the catalogue says): CloudWatch alarms watch one series.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from crosswind.observability.catalogue import BY_NAME, Metric
from crosswind.observability.readers import AnySample, HistogramSample, Labels, Sample

MAX_DATA_PER_REQUEST = 1000
#: the API's 1 MB, less room for the request's own fields
MAX_REQUEST_BYTES = 1_000_000 - 16_384
MAX_VALUES_PER_DATUM = 150
MAX_DIMENSIONS = 30

_UNITS = {"seconds": "Seconds", "bytes": "Bytes", "count": "Count", "ratio": "None",
          "info": "None"}

Datum = dict[str, Any]


def _midpoint(lo: float, hi: float) -> float:
    if math.isinf(hi):
        return lo * 1.5 if lo > 0 else 1.0
    return (lo + hi) / 2


def query_size(datum: Datum, index: int = 1000) -> int:
    """The datum's size as the query protocol encodes it (the largest of the
    encodings botocore may use), for a conservative request size."""
    size = 0

    def add(key: str, value: Any) -> None:
        nonlocal size
        size += len(key) + len(quote(str(value), safe="")) + 2  # '=' and '&'

    prefix = f"MetricData.member.{index}."
    for k, v in datum.items():
        if k == "Dimensions":
            for i, d in enumerate(v, 1):
                add(f"{prefix}Dimensions.member.{i}.Name", d["Name"])
                add(f"{prefix}Dimensions.member.{i}.Value", d["Value"])
        elif k in ("Values", "Counts"):
            for i, x in enumerate(v, 1):
                add(f"{prefix}{k}.member.{i}", x)
        elif k == "Timestamp":
            add(prefix + k, v.isoformat() if isinstance(v, datetime) else v)
        else:
            add(prefix + k, v)
    return size


def batches(datums: Iterable[Datum]) -> list[list[Datum]]:
    """Datums packed into requests of at most 1,000 datums and 1 MB."""
    out: list[list[Datum]] = []
    current: list[Datum] = []
    size = 0
    for d in datums:
        n = query_size(d)
        if current and (len(current) >= MAX_DATA_PER_REQUEST or size + n > MAX_REQUEST_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(d)
        size += n
    if current:
        out.append(current)
    return out


class CloudWatchExporter:
    """Turns successive sample sets into datums (it remembers counters and
    histograms between puts) and puts them with ``client`` (a boto3 CloudWatch
    client)."""

    def __init__(self, client: Any, namespace: str, dimensions: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.namespace = namespace
        self.extra = [{"Name": k, "Value": v} for k, v in sorted((dimensions or {}).items())]
        self.clock = clock
        self._last: dict[tuple[str, Labels], float] = {}
        self._last_hist: dict[tuple[str, Labels], tuple[int, ...]] = {}
        self.puts = 0
        self.datums_sent = 0
        self.last_error: str | None = None

    def _dims(self, labels: Labels) -> list[dict[str, str]]:
        dims = [{"Name": k, "Value": v} for k, v in labels if v]
        return (dims + self.extra)[:MAX_DIMENSIONS]

    def datums(self, samples: Iterable[AnySample]) -> list[Datum]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        out: list[Datum] = []
        rollups: dict[str, list[float]] = {}
        for s in samples:
            m = BY_NAME.get(s.name)
            if m is None:
                continue
            if isinstance(s, HistogramSample):
                out.extend(self._histogram(m, s, now))
                continue
            value = self._counter_delta(m, s)
            if value is None or not math.isfinite(value):
                continue
            out.append({"MetricName": m.name, "Dimensions": self._dims(s.labels),
                        "Value": value, "Unit": _UNITS[m.unit], "Timestamp": now})
            if m.labels:
                rollups.setdefault(m.name, []).append(value)
        for name, values in rollups.items():
            m = BY_NAME[name]
            folded = (max(values) if m.rollup == "max" else min(values) if m.rollup == "min"
                      else sum(values))
            out.append({"MetricName": name, "Dimensions": list(self.extra),
                        "Value": float(folded), "Unit": _UNITS[m.unit], "Timestamp": now})
        return out

    def _counter_delta(self, m: Metric, s: Sample) -> float | None:
        if m.type != "counter":
            return s.value
        key = (s.name, s.labels)
        last = self._last.get(key)
        self._last[key] = s.value
        if last is None:
            return None
        return s.value - last if s.value >= last else s.value

    def _histogram(self, m: Metric, s: HistogramSample, now: datetime) -> list[Datum]:
        key = (s.name, s.labels)
        counts = tuple(c for _, c in s.buckets)
        last = self._last_hist.get(key)
        self._last_hist[key] = counts
        if last is None or len(last) != len(counts):
            return []
        if counts[-1] < last[-1]:
            last = tuple(0 for _ in counts)  # restarted
        values: list[float] = []
        weights: list[float] = []
        lo = 0.0
        prev_now = prev_then = 0
        for (edge, c_now), c_then in zip(s.buckets, last, strict=True):
            n = (c_now - prev_now) - (c_then - prev_then)
            prev_now, prev_then = c_now, c_then
            if n > 0:
                values.append(_midpoint(lo, edge))
                weights.append(float(n))
            lo = edge
        out: list[Datum] = []
        for i in range(0, len(values), MAX_VALUES_PER_DATUM):
            out.append({"MetricName": m.name, "Dimensions": self._dims(s.labels),
                        "Values": values[i:i + MAX_VALUES_PER_DATUM],
                        "Counts": weights[i:i + MAX_VALUES_PER_DATUM],
                        "Unit": _UNITS[m.unit], "Timestamp": now})
        return out

    def put(self, samples: Iterable[AnySample]) -> dict[str, int]:
        """One round: every datum, in as few requests as the limits allow."""
        data = self.datums(samples)
        requests = 0
        for batch in batches(data):
            self.client.put_metric_data(Namespace=self.namespace, MetricData=batch)
            requests += 1
        self.puts += requests
        self.datums_sent += len(data)
        return {"requests": requests, "datums": len(data)}

    def status(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "requests": self.puts,
                "datums": self.datums_sent, "last_error": self.last_error}


def put_dashboards_and_alarms(client: Any, dashboards: dict[str, dict[str, Any]],
                              alarms: list[dict[str, Any]]) -> dict[str, Any]:
    """``monitoring export --apply``: each dashboard (name → body) and alarm."""
    problems: list[str] = []
    for name, body in dashboards.items():
        resp = client.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
        problems += [str(m.get("Message")) for m in resp.get("DashboardValidationMessages", [])]
    for alarm in alarms:
        client.put_metric_alarm(**alarm)
    return {"dashboards": sorted(dashboards), "alarms": [a["AlarmName"] for a in alarms],
            "validation_messages": problems}
