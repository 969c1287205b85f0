"""How each metric of the catalogue is read from the monitoring document. Pure.

The monitoring document (``live.monitoring.monitoring_document`` builds it,
from the running service or from the state store alone) holds:

* ``status``: the status document (``crosswind status --json``);
* ``validation_history``: validation runs, newest first;
* ``switches``: ``{"cutover": report | None, "rollback": report | None}``, the
  last switch reports;
* ``dlq``: ``{"open": n, "by_kind": {kind: n}}``;
* ``oneshot``: totals of the one-shot runs: ``{"objects": [{direction,
  outcome, count, bytes}], "rows": [{direction, outcome, count}]}``;
  ``oneshot`` also has ``"schemas": [{direction, subject, outcome, count}]``
  (the validation before write: passed, warned, rejected) and
  ``"schemas_unchecked": [{direction, count}]``;
* ``quotas``: ``[{quota, used, limit, ratio}]`` when AWS quotas are watched;
* ``governance``: ``{enforce, lineage}``, the config's settings;
* ``version``.

A reader yields ``Sample``s (or ``HistogramSample``s); a figure the document
does not have yields nothing rather than a made-up zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crosswind.migration import Phase
from crosswind.model import Direction

Doc = Mapping[str, Any]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


@dataclass(frozen=True, slots=True)
class HistogramSample:
    name: str
    labels: Labels
    #: (upper edge, cumulative count) in ascending order, the last edge +Inf
    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


AnySample = Sample | HistogramSample
Reader = Callable[[Doc], Iterable[AnySample]]


def _labels(**kw: object) -> Labels:
    return tuple((k, str(v)) for k, v in kw.items())


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None


def _ts(iso: Any) -> float | None:
    if not iso or not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _status(doc: Doc) -> Mapping[str, Any]:
    return doc.get("status") or {}


def _streams(doc: Doc) -> list[Mapping[str, Any]]:
    return list(_status(doc).get("streams") or [])


def _running(doc: Doc) -> bool:
    return bool((_status(doc).get("service") or {}).get("running"))


# -- one reader per metric (named after it) ------------------------------------------------

def build_info(doc: Doc) -> Iterator[AnySample]:
    yield Sample("crosswind_build_info", _labels(version=doc.get("version") or "unknown"), 1)


def service_up(doc: Doc) -> Iterator[AnySample]:
    yield Sample("crosswind_service_up", (), 1.0 if _running(doc) else 0.0)


def heartbeat(doc: Doc) -> Iterator[AnySample]:
    at = _ts((_status(doc).get("service") or {}).get("heartbeat_at"))
    if at is None and _running(doc):
        at = _num(doc.get("at"))
    if at is not None:
        yield Sample("crosswind_service_heartbeat_timestamp_seconds", (), at)


def phase(doc: Doc) -> Iterator[AnySample]:
    now = _status(doc).get("phase")
    if now:
        for p in Phase:
            yield Sample("crosswind_migration_phase", _labels(phase=p.value),
                         1.0 if p.value == now else 0.0)


def direction(doc: Doc) -> Iterator[AnySample]:
    now = _status(doc).get("direction")
    if now:
        for d in Direction:
            yield Sample("crosswind_replication_direction", _labels(direction=d.value),
                         1.0 if d.value == now else 0.0)


def _object_tallies(doc: Doc) -> Iterator[tuple[str, str, str, float, float]]:
    """(mode, direction, outcome, count, bytes) of one-shot runs and the service."""
    for row in (doc.get("oneshot") or {}).get("objects") or []:
        yield ("oneshot", row["direction"], row["outcome"], float(row.get("count") or 0),
               float(row.get("bytes") or 0))
    svc = _status(doc).get("objects") or {}
    for d, outcomes in svc.items():
        for outcome, t in outcomes.items():
            yield "service", d, outcome, float(t.get("count") or 0), float(t.get("bytes") or 0)
    if svc or _streams(doc):
        failed = sum(int(s.get("failed") or 0) for s in _streams(doc) if s.get("kind") ==
                     "objects")
        d = str(_status(doc).get("direction") or "")
        if d:
            yield "service", d, "failed", float(failed), 0.0


def objects_total(doc: Doc) -> Iterator[AnySample]:
    for mode, d, outcome, count, _ in _object_tallies(doc):
        yield Sample("crosswind_objects_total", _labels(mode=mode, direction=d,
                                                        outcome=outcome), count)


def object_bytes_total(doc: Doc) -> Iterator[AnySample]:
    for mode, d, outcome, _, size in _object_tallies(doc):
        if outcome != "failed":
            yield Sample("crosswind_object_bytes_total",
                         _labels(mode=mode, direction=d, outcome=outcome), size)


def rows_total(doc: Doc) -> Iterator[AnySample]:
    for row in (doc.get("oneshot") or {}).get("rows") or []:
        yield Sample("crosswind_rows_total", _labels(mode="oneshot", direction=row["direction"],
                                                     outcome=row["outcome"]),
                     float(row.get("count") or 0))
    rows = [s for s in _streams(doc) if s.get("kind") == "rows"]
    d = _status(doc).get("direction")
    if rows and d:
        for outcome, field in (("written", "applied"), ("failed", "failed")):
            yield Sample("crosswind_rows_total", _labels(mode="service", direction=d,
                                                         outcome=outcome),
                         float(sum(int(s.get(field) or 0) for s in rows)))


def stream_field(field: str) -> Reader:
    name = {"applied": "crosswind_changes_applied_total",
            "failed": "crosswind_changes_failed_total",
            "held": "crosswind_changes_held_total"}[field]

    def read(doc: Doc) -> Iterator[AnySample]:
        for s in _streams(doc):
            v = _num(s.get(field))
            if v is not None:
                yield Sample(name, _labels(stream=s["name"], kind=s.get("kind", "")), v)

    read.__name__ = f"stream_{field}"
    return read


def _histogram(name: str, labels: Labels, h: Mapping[str, Any] | None
               ) -> HistogramSample | None:
    if not h:
        return None
    edges = [float(e) for e in h.get("le") or []]
    counts = [int(c) for c in h.get("counts") or []]
    if len(counts) != len(edges) + 1:
        return None
    buckets = (*zip(edges, counts[:-1], strict=True), (math.inf, counts[-1]))
    return HistogramSample(name, labels, tuple(buckets), float(h.get("sum") or 0.0),
                           int(h.get("count") or counts[-1]))


def lag_histogram(doc: Doc) -> Iterator[AnySample]:
    for s in _streams(doc):
        h = _histogram("crosswind_replication_lag_seconds",
                       _labels(stream=s["name"], kind=s.get("kind", "")), s.get("lag_histogram"))
        if h is not None:
            yield h


def lag_p99(doc: Doc) -> Iterator[AnySample]:
    for s in _streams(doc):
        v = _num((s.get("lag_s") or {}).get("p99"))
        if v is not None:
            yield Sample("crosswind_replication_lag_p99_seconds",
                         _labels(stream=s["name"], kind=s.get("kind", "")), v)


def slo_target(doc: Doc) -> Iterator[AnySample]:
    v = _num((_status(doc).get("slo") or {}).get("target_s"))
    if v is not None:
        yield Sample("crosswind_replication_lag_slo_seconds", (), v)


def slo_ratio(doc: Doc) -> Iterator[AnySample]:
    st = _status(doc)
    target = _num((st.get("slo") or {}).get("target_s"))
    if not target or not (_running(doc) or _streams(doc)):
        return
    worst = max(_num(st.get("lag_p99_s")) or 0.0,
                _num((st.get("pending") or {}).get("oldest_s")) or 0.0)
    yield Sample("crosswind_replication_lag_slo_ratio", (), worst / target)


def backlog(doc: Doc) -> Iterator[AnySample]:
    for s in _streams(doc):
        v = _num(s.get("backlog"))
        if v is not None:
            yield Sample("crosswind_backlog", _labels(stream=s["name"], kind=s.get("kind", "")),
                         v)


def pending_keys(doc: Doc) -> Iterator[AnySample]:
    v = _num((_status(doc).get("pending") or {}).get("keys"))
    if v is not None and (_running(doc) or _streams(doc)):
        yield Sample("crosswind_pending_keys", (), v)


def oldest_pending(doc: Doc) -> Iterator[AnySample]:
    v = _num((_status(doc).get("pending") or {}).get("oldest_s"))
    if v is not None and (_running(doc) or _streams(doc)):
        yield Sample("crosswind_oldest_pending_change_seconds", (), v)


def reconcile_drift(doc: Doc) -> Iterator[AnySample]:
    rec = _status(doc).get("last_reconcile") or {}
    parts = rec.get("parts") or {}
    for kind in ("objects", "rows"):
        part = parts.get(kind)
        if part:
            v = _num(part.get("drift"))
            if v is not None:
                yield Sample("crosswind_reconcile_drift", _labels(kind=kind), v)


def reconcile_at(doc: Doc) -> Iterator[AnySample]:
    at = _ts((_status(doc).get("last_reconcile") or {}).get("at"))
    if at is not None:
        yield Sample("crosswind_reconcile_last_timestamp_seconds", (), at)


def dlq_open(doc: Doc) -> Iterator[AnySample]:
    v = _num((doc.get("dlq") or {}).get("open"))
    if v is None:
        v = _num(_status(doc).get("dlq_open"))
    if v is not None:
        yield Sample("crosswind_dlq_open_entries", (), v)


def dlq_by_kind(doc: Doc) -> Iterator[AnySample]:
    for kind, n in sorted(((doc.get("dlq") or {}).get("by_kind") or {}).items()):
        yield Sample("crosswind_dlq_entries", _labels(kind=kind), float(n))


def breaker_open(doc: Doc) -> Iterator[AnySample]:
    for ep, state in sorted((_status(doc).get("breakers") or {}).items()):
        yield Sample("crosswind_breaker_open", _labels(endpoint=ep),
                     0.0 if state == "closed" else 1.0)


def breaker_opens(doc: Doc) -> Iterator[AnySample]:
    for ep, d in sorted((_status(doc).get("breaker_details") or {}).items()):
        v = _num((d or {}).get("opens"))
        if v is not None:
            yield Sample("crosswind_breaker_opens_total", _labels(endpoint=ep), v)


def _endpoints(doc: Doc) -> list[tuple[str, Mapping[str, Any]]]:
    eps = (_status(doc).get("requests") or {}).get("endpoints") or {}
    return sorted(eps.items())


def _operations(doc: Doc) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for ep, e in _endpoints(doc):
        for op, o in sorted((e.get("operations") or {}).items()):
            yield ep, op, o


def requests_total(doc: Doc) -> Iterator[AnySample]:
    for ep, op, o in _operations(doc):
        for outcome, n in sorted((o.get("outcomes") or {}).items()):
            yield Sample("crosswind_requests_total",
                         _labels(endpoint=ep, operation=op, outcome=outcome), float(n))


def request_histogram(doc: Doc) -> Iterator[AnySample]:
    for ep, op, o in _operations(doc):
        h = _histogram("crosswind_request_duration_seconds", _labels(endpoint=ep, operation=op),
                       o.get("histogram"))
        if h is not None:
            yield h


def request_latency(field: str) -> Reader:
    name = {"latency_s": "crosswind_request_latency_seconds",
            "baseline_s": "crosswind_request_latency_baseline_seconds",
            "ratio": "crosswind_request_latency_baseline_ratio"}[field]

    def read(doc: Doc) -> Iterator[AnySample]:
        for ep, op, o in _operations(doc):
            v = _num(o.get(field))
            if v is not None:
                yield Sample(name, _labels(endpoint=ep, operation=op), v)

    read.__name__ = f"request_{field}"
    return read


def auth_failures(doc: Doc) -> Iterator[AnySample]:
    # crosswind.secrets.AUTH_FAILURES: refusals of the stores' credentials (also
    # those a refresh then cured) and refused clients of crosswind's own endpoints
    for c in _status(doc).get("auth_failures") or []:
        n = _num(c.get("count"))
        if n is not None:
            yield Sample("crosswind_auth_failures_total",
                         _labels(endpoint=c.get("endpoint", ""),
                                 principal=c.get("principal", "")), n)


def endpoint_field(field: str) -> Reader:
    name = {"in_flight": "crosswind_endpoint_requests_in_flight",
            "pool_size": "crosswind_connection_pool_size"}[field]

    def read(doc: Doc) -> Iterator[AnySample]:
        for ep, e in _endpoints(doc):
            v = _num(e.get(field))
            if v is not None:
                yield Sample(name, _labels(endpoint=ep), v)

    read.__name__ = f"endpoint_{field}"
    return read


def pool_utilisation(doc: Doc) -> Iterator[AnySample]:
    for ep, e in _endpoints(doc):
        size, busy = _num(e.get("pool_size")), _num(e.get("in_flight"))
        if size and busy is not None:
            yield Sample("crosswind_connection_pool_utilisation_ratio", _labels(endpoint=ep),
                         busy / size)


def workers(field: str) -> Reader:
    name = {"concurrency": "crosswind_worker_concurrency", "busy": "crosswind_workers_busy"}[
        field]

    def read(doc: Doc) -> Iterator[AnySample]:
        v = _num((_status(doc).get("workers") or {}).get(field))
        if v is not None:
            yield Sample(name, (), v)

    read.__name__ = f"workers_{field}"
    return read


def worker_utilisation(doc: Doc) -> Iterator[AnySample]:
    w = _status(doc).get("workers") or {}
    size, busy = _num(w.get("concurrency")), _num(w.get("busy"))
    if size and busy is not None:
        yield Sample("crosswind_worker_utilisation_ratio", (), busy / size)


def _latest_validations(doc: Doc) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The newest finished validation run of each direction."""
    seen: set[str] = set()
    for run in doc.get("validation_history") or []:
        d = run.get("direction")
        if not d or d in seen or run.get("status") == "running":
            continue
        seen.add(d)
        yield d, run


def validation(field: str) -> Reader:
    name = {"completeness_pct": "crosswind_validation_completeness_ratio",
            "pass_rate_pct": "crosswind_validation_pass_rate_ratio"}[field]

    def read(doc: Doc) -> Iterator[AnySample]:
        for d, run in _latest_validations(doc):
            v = _num(run.get(field))
            if v is not None:
                yield Sample(name, _labels(direction=d), v / 100.0)

    read.__name__ = f"validation_{field}"
    return read


def validation_passed(doc: Doc) -> Iterator[AnySample]:
    for d, run in _latest_validations(doc):
        yield Sample("crosswind_validation_passed", _labels(direction=d),
                     1.0 if run.get("verdict") == "pass" else 0.0)


def validation_at(doc: Doc) -> Iterator[AnySample]:
    for d, run in _latest_validations(doc):
        at = _ts(run.get("finished_at"))
        if at is not None:
            yield Sample("crosswind_validation_last_timestamp_seconds", _labels(direction=d), at)


def switch_running(doc: Doc) -> Iterator[AnySample]:
    sw = _status(doc).get("switch")
    if _running(doc):
        yield Sample("crosswind_switch_running", (), 1.0 if (sw or {}).get("running") else 0.0)


def switch_field(kind: str, field: str) -> Reader:
    name = {"duration_s": "crosswind_cutover_duration_seconds",
            "rto_s": "crosswind_rollback_rto_seconds"}[field]

    def read(doc: Doc) -> Iterator[AnySample]:
        rep = (doc.get("switches") or {}).get(kind) or {}
        v = _num(rep.get(field))
        if v is not None:
            yield Sample(name, (), v)

    read.__name__ = f"switch_{kind}_{field}"
    return read


def switch_at(doc: Doc) -> Iterator[AnySample]:
    for kind, rep in sorted((doc.get("switches") or {}).items()):
        at = _ts((rep or {}).get("finished_at"))
        if at is not None:
            yield Sample("crosswind_switch_last_timestamp_seconds", _labels(kind=kind), at)


def triggers(doc: Doc) -> Iterator[AnySample]:
    fired = ((_status(doc).get("switch") or {}).get("triggers")) or {}
    for name, on in sorted(fired.items()):
        yield Sample("crosswind_rollback_trigger_firing", _labels(trigger=name),
                     1.0 if on else 0.0)


def quota_field(field: str) -> Reader:
    name = {"used": "crosswind_aws_quota_usage", "limit": "crosswind_aws_quota_limit",
            "ratio": "crosswind_aws_quota_usage_ratio"}[field]

    def read(doc: Doc) -> Iterator[AnySample]:
        for q in doc.get("quotas") or []:
            v = _num(q.get(field))
            if v is not None:
                yield Sample(name, _labels(quota=q["quota"]), v)

    read.__name__ = f"quota_{field}"
    return read


# -- governance ---------------------------------------------------------------------------
def governance_info(doc: Doc) -> Iterator[AnySample]:
    who = (_status(doc).get("governance") or {}).get("stewardship")
    if not who:
        return
    g = doc.get("governance") or {}
    labels = {k: str(who.get(k) or "") for k in ("domain", "steward", "owner", "flow_id")}
    yield Sample("crosswind_governance_info", _labels(
        **labels, enforce=str(g.get("enforce") or ""), lineage=str(g.get("lineage") or "")),
        1.0)


def _schema_tallies(doc: Doc) -> Iterator[tuple[str, str, str, str, float]]:
    """(mode, direction, subject, outcome, count) of the validation before write:
    the one-shot runs' reports and the running (or last) service's counts."""
    for row in (doc.get("oneshot") or {}).get("schemas") or []:
        yield ("oneshot", row["direction"], row["subject"], row["outcome"],
               float(row.get("count") or 0))
    sv = (_status(doc).get("governance") or {}).get("schema_validation") or {}
    d = str(_status(doc).get("direction") or "")
    if not d:
        return
    failed_as = "rejected" if sv.get("enforce") == "reject" else "warned"
    for subject, n in (sv.get("subjects") or {}).items():
        failed = float(n.get("failed") or 0)
        yield "service", d, subject, "passed", float(n.get("checked") or 0) - failed
        yield "service", d, subject, failed_as, failed


def schema_checks(doc: Doc) -> Iterator[AnySample]:
    for mode, d, subject, outcome, count in _schema_tallies(doc):
        yield Sample("crosswind_schema_checks_total", _labels(
            mode=mode, direction=d, subject=subject, outcome=outcome), count)


def schema_rejections(doc: Doc) -> Iterator[AnySample]:
    for mode, d, subject, outcome, count in _schema_tallies(doc):
        if outcome == "rejected":
            yield Sample("crosswind_schema_rejections_total", _labels(
                mode=mode, direction=d, subject=subject), count)


def schema_unchecked(doc: Doc) -> Iterator[AnySample]:
    for row in (doc.get("oneshot") or {}).get("schemas_unchecked") or []:
        yield Sample("crosswind_schema_unchecked_total", _labels(
            mode="oneshot", direction=row["direction"]), float(row.get("count") or 0))
    sv = (_status(doc).get("governance") or {}).get("schema_validation") or {}
    d = _status(doc).get("direction")
    if d and "unregistered" in sv:
        yield Sample("crosswind_schema_unchecked_total", _labels(mode="service", direction=d),
                     float(sv.get("unregistered") or 0))


def lineage_events(doc: Doc) -> Iterator[AnySample]:
    lin = (_status(doc).get("governance") or {}).get("lineage") or {}
    if lin.get("to") is None:
        return  # lineage off, or not the service's figures
    for outcome in ("sent", "failed", "dropped"):
        yield Sample("crosswind_lineage_events_total", _labels(outcome=outcome),
                     float(lin.get(outcome) or 0))
