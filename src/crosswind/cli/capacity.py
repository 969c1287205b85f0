"""`crosswind inventory --plan`: the capacity plan (parse, call the planner, render)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from crosswind.cli.app import err, load, print_json, run
from crosswind.governance.stewardship import stewardship_fields
from crosswind.inventory import human_bytes

MAX_WORKERS = 4096
MAX_PROBE_SECONDS = 600.0
#: the Lambda stack's default MaximumConcurrency (serverless/templates/aws)
LAMBDA_MAX_CONCURRENCY = 50


def _count(option: str, value: str | None, default: int, hi: int, local: bool = False) -> int:
    if value is None:
        return default
    text = value.strip()
    if local and text.startswith("local:"):
        text = text[len("local:"):]
    if not text.isdigit() or not 1 <= int(text) <= hi:
        want = "N or local:N" if local else "a whole number"
        raise typer.BadParameter(f"{option} must be {want} from 1 to {hi}, not {value!r}")
    return int(text)


def _seconds(value: str | None) -> float:
    if value is None:
        return 6.0
    try:
        s = float(value)
    except ValueError:
        s = math.nan
    if not 0.5 <= s <= MAX_PROBE_SECONDS:  # also refuses nan and inf
        raise typer.BadParameter(
            f"--probe-seconds must be a number of seconds from 0.5 to {MAX_PROBE_SECONDS:g}, "
            f"not {value!r}")
    return s


def plan_cmd(config: Path, side: str, prefix: str, depth: int, top: int,
             workers_opt: str | None, concurrency_opt: str | None,
             probe_seconds_opt: str | None, serverless: bool, as_json: bool,
             plan: bool) -> None:
    if not plan:
        raise typer.BadParameter("--workers, --concurrency, --probe-seconds and --serverless "
                                 "go with --plan")
    workers = _count("--workers", workers_opt, 1, MAX_WORKERS, local=True)
    cfg = load(config)
    concurrency = _count("--concurrency", concurrency_opt, cfg.sync.concurrency, 1024)
    seconds = _seconds(probe_seconds_opt)
    if serverless and not (cfg.azure.table and cfg.aws.documentdb_uri):
        raise typer.BadParameter("--serverless needs [azure] table and [aws] documentdb_uri "
                                 "(the metadata handler reads the row and writes the document)")

    from crosswind.capacity.model import Settings
    from crosswind.capacity.planner import CapacityPlan, PlanRequest, plan_capacity
    from crosswind.capacity.probe import Evidence, ProbeOptions, record_seconds
    from crosswind.stores.factory import open_object_store

    other = "aws" if side == "azure" else "azure"
    s = cfg.sync
    settings = Settings(workers=workers, concurrency=concurrency, sample=cfg.validation.sample_size,
                        multipart_threshold=s.multipart_threshold, part_size=s.part_size,
                        part_concurrency=s.part_concurrency, memory_budget=s.memory_budget)
    burst = min(max(64, workers * concurrency), 256)
    req = PlanRequest(settings, ProbeOptions(seconds=seconds, burst_concurrency=burst),
                      prefix, depth)

    async def rows(ev: Evidence) -> float:
        return await record_seconds(cfg, 5, ev)

    async def go() -> CapacityPlan:
        src = await open_object_store(cfg, side)  # type: ignore[arg-type]
        try:
            dst = await open_object_store(cfg, other)  # type: ignore[arg-type]
            try:
                await src.check()
                await dst.check(write=True)
                return await plan_capacity(src, side, dst, other,  # type: ignore[arg-type]
                                           req, rows if serverless else None)
            finally:
                await dst.close()
        finally:
            await src.close()

    p = run(go())
    body = p.to_json()
    copy = body["copy"]
    lam = body["resources"]["lambda_concurrency"]
    quota = cfg.monitoring.lambda_concurrency_quota
    warnings = body.setdefault("warnings", [])
    if lam is not None and lam > quota:
        warnings.append(f"the metadata handler needs {lam} concurrent Lambda invocations at "
                        f"this copy rate, over the account quota of {quota} ([monitoring] "
                        "lambda_concurrency_quota): raise the quota or plan fewer in flight")
    elif lam is not None and lam > LAMBDA_MAX_CONCURRENCY:
        warnings.append(f"the metadata handler needs {lam} concurrent Lambda invocations: set "
                        f"the stack's MaximumConcurrency to at least {lam} (its default is "
                        f"{LAMBDA_MAX_CONCURRENCY}), or the queue backs up during the copy")
    report = {**p.inventory.report(p.source.name, (copy["objects_per_s"],
                                                    max(copy["bytes_per_s"], 1.0),
                                                    "measured by the probe (--plan)"), top),
              "plan": body, **stewardship_fields(cfg)}
    if as_json:
        print_json(report)
        return
    _render(report, body)


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _render(report: dict[str, Any], plan: dict[str, Any]) -> None:
    err.print(f"[bold]{escape(plan['source'])}[/]: {report['objects']:,} objects, "
              f"{human_bytes(report['bytes'])} → {escape(plan['destination'])}, "
              f"{plan['workers']} worker(s) × {plan['concurrency']} in flight", markup=True)
    t = Table(title="capacity plan (measured)")
    for col in ("", "duration", "objects/s", "bytes/s", "bound by"):
        t.add_column(col, justify="left" if col in ("", "bound by") else "right")
    rows = [("full copy", plan["copy"])] + [
        (f"validation ({m})", v) for m, v in plan["validation"].items()]
    for name, e in rows:
        t.add_row(name, _dur(e["duration_s"]), f"{e['objects_per_s']:,.1f}",
                  f"{human_bytes(e['bytes_per_s'])}/s", escape(e["bottleneck"]))
    err.print(t)
    r = plan["resources"]
    q = Table(title="resources")
    q.add_column("")
    q.add_column("needed", justify="right")
    q.add_row("connections per endpoint", f"{r['connections_per_endpoint']:,}")
    q.add_row("connections per worker (pool)", f"{r['connections_per_worker']:,}")
    q.add_row("memory per worker", f"{r['memory_per_worker_mb']:.0f} MB")
    q.add_row("memory, all workers", f"{r['memory_total_mb']:.0f} MB")
    if r["lambda_concurrency"] is not None:
        q.add_row("Lambda concurrency (metadata handler)", f"{r['lambda_concurrency']:,}")
    err.print(q)
    err.print(f"memory: {escape(r['memory_basis'])}", markup=True, soft_wrap=True)
    m = Table(title="measured requests")
    for col in ("request", "alone ms", "in flight", "burst req/s", "loaded ms", "ceiling"):
        m.add_column(col, justify="left" if col == "request" else "right")
    for name, f in plan["measured"]["requests"].items():
        if "burst_in_flight" not in f:
            m.add_row(escape(name), f"{f['latency_alone_ms']:.1f}", "", "", "", "")
            continue
        m.add_row(escape(name), f"{f['latency_alone_ms']:.1f}", str(f["burst_in_flight"]),
                  f"{f['burst_requests_per_s']:,.0f}", f"{f['latency_under_load_ms']:.1f}",
                  "reached" if f["saturated"] else "not reached (≥)")
    err.print(m)
    for w in plan.get("warnings", []):
        err.print(f"[yellow]warning[/] {escape(w)}", markup=True, soft_wrap=True)
    ms = plan["measured"]
    err.print(f"listing: {report['objects']:,} names in {ms['listing_s']:.1f} s; probe objects "
              f"written {ms['probe_objects_written']}, removed {ms['probe_objects_removed']}; "
              f"plan took {plan['plan_wall_s']:.1f} s")
