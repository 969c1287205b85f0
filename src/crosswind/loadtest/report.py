"""The load test's report and its verdict, from what the run gathered. Pure.

Lag is the service's own measure (source event time to applied, per stream;
``live.lag``): the figures of its sliding window (``[replicate]
lag_window_s``) at the end of the run, and the worst window p99 seen in any
sample during it. The verdict compares them with the SLO the service itself
judges (``[replicate] lag_slo_pre_s`` before cutover, ``lag_slo_post_s``
after, published as ``slo.target_s``). Utilisation, like the service's
saturation alerts, is judged on the mean over the load (a one-second peak is
not saturation); peaks are reported.
"""

from __future__ import annotations

import statistics
from typing import Any

from crosswind.config import LoadtestConfig

Sample = dict[str, Any]


def _delta(a: Sample, b: Sample, stream: str, field: str) -> int:
    return int((b["streams"].get(stream) or {}).get(field) or 0) - int(
        (a["streams"].get(stream) or {}).get(field) or 0)


def stream_lag(before: Sample, run: list[Sample], final: Sample) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, s in final["streams"].items():
        lag = s.get("lag_s") or {}
        worst = max(((x["streams"].get(name) or {}).get("lag_s", {}).get("p99", 0.0)
                     for x in run), default=0.0)
        out[name] = {"applied": _delta(before, final, name, "applied"),
                     "failed": _delta(before, final, name, "failed"),
                     "held": _delta(before, final, name, "held"),
                     "count": lag.get("count", 0), "p50": lag.get("p50", 0.0),
                     "p95": lag.get("p95", 0.0), "p99": lag.get("p99", 0.0),
                     "max": lag.get("max", 0.0), "worst_p99_during_run": worst}
    return out


def utilisation(run: list[Sample]) -> dict[str, Any]:
    """Connection pools (requests in flight over pool size, per endpoint whose
    client has a known pool) and apply workers (busy over concurrency)."""
    pools: dict[str, dict[str, Any]] = {}
    for s in run:
        for ep, p in s["pools"].items():
            e = pools.setdefault(ep, {"pool_size": p.get("pool_size"), "in_flight": []})
            if p.get("in_flight") is not None:
                e["in_flight"].append(int(p["in_flight"]))
            e["pool_size"] = p.get("pool_size") or e["pool_size"]
    out_pools = {}
    for ep, e in sorted(pools.items()):
        busy, size = e["in_flight"], e["pool_size"]
        out_pools[ep] = {
            "pool_size": size, "peak_in_flight": max(busy, default=0),
            "mean_in_flight": round(statistics.fmean(busy), 2) if busy else 0.0,
            "peak_utilisation": round(max(busy, default=0) / size, 3) if size else None,
            "mean_utilisation": round(statistics.fmean(busy) / size, 3)
            if size and busy else (0.0 if size else None)}
    busy = [int(s["workers"].get("busy") or 0) for s in run if s["workers"]]
    conc = next((int(s["workers"]["concurrency"]) for s in run
                 if s["workers"].get("concurrency")), 0)
    workers = {"concurrency": conc, "peak_busy": max(busy, default=0),
               "mean_busy": round(statistics.fmean(busy), 2) if busy else 0.0,
               "peak_utilisation": round(max(busy, default=0) / conc, 3) if conc else None,
               "mean_utilisation": round(statistics.fmean(busy) / conc, 3)
               if conc and busy else (0.0 if conc else None)}
    return {"pools": out_pools, "workers": workers}


def _check(ok: bool, value: Any, limit: str) -> dict[str, Any]:
    return {"ok": bool(ok), "value": value, "limit": limit}


def judge(report: dict[str, Any], lt: LoadtestConfig) -> dict[str, dict[str, Any]]:
    g, slo = report["generator"], report["slo"]
    target = slo.get("target_s")
    planned = report["load"]["planned"]
    checks: dict[str, dict[str, Any]] = {}
    rate = g["achieved_rate_per_s"]
    want = report["load"]["rate"] * lt.min_rate_ratio
    checks["rate"] = _check(rate >= want, rate, f">= {want:g}/s ({lt.min_rate_ratio:g} of "
                            f"{report['load']['rate']:g}/s)")
    checks["on_schedule"] = _check(not g["fell_behind"], g["lateness_s"],
                                   "start lateness p99 <= 1 s and max <= 5 s")
    worst = {n: s["worst_p99_during_run"] for n, s in report["lag_s"].items()
             if s["applied"] or s["count"]}
    top = max(worst.values(), default=0.0)
    checks["lag"] = _check(target is not None and top <= target, worst,
                           f"every stream's window p99 <= {target} s (the service's SLO)")
    checks["service_slo"] = _check(slo["breached_samples"] == 0,
                                   f"breached in {slo['breached_samples']} of "
                                   f"{slo['samples']} samples",
                                   "never breached (lag p99 and oldest pending change)")
    lost = report["verification"]["lost"]
    checks["nothing_lost"] = _check(lost == 0, lost, "0 changes missing on the replica")
    errs = report["errors"]["primary_writes"]
    ratio = errs / planned if planned else 0.0
    checks["errors"] = _check(ratio <= lt.max_error_ratio, errs,
                              f"<= {lt.max_error_ratio:g} of {planned} changes")
    growth = report["dlq"]["growth"]
    checks["dlq"] = _check(growth <= lt.max_dlq_growth, growth,
                           f"<= {lt.max_dlq_growth} entries added")
    u = report["utilisation"]
    means = {ep: p["mean_utilisation"] for ep, p in u["pools"].items()
             if p["mean_utilisation"] is not None}
    if u["workers"]["mean_utilisation"] is not None:
        means["workers"] = u["workers"]["mean_utilisation"]
    checks["utilisation"] = _check(all(v < lt.max_utilisation for v in means.values()),
                                   means, f"mean < {lt.max_utilisation:g} (pools, workers)")
    checks["service_up"] = _check(report["service"]["stayed_up"], report["service"],
                                  "running in the same phase throughout")
    return checks
