"""Scaling benchmark: objects/s where real migrations are bound — latency — measured
and predicted by the capacity model, side by side.

On 2 cores a CPU-bound copy cannot scale, so both emulators sit behind
``rig.proxy.LatencyProxy`` (a TCP relay delaying every byte by half of
``--rtt-ms`` each way: a request and its answer cost one round trip, a new
connection one more; moto answers each request on a new connection, so an
S3 request costs two), run in a child process. Through the same relays:

1. the capacity plan's probe (``capacity.planner.plan_capacity``, what
   ``crosswind inventory --plan`` runs) measures both endpoints once;
2. single-process ``crosswind sync objects`` (the CLI, a fresh bucket each
   time) at several concurrencies, and ``rclone copy --transfers C
   --checkers C`` on the same estate in the same run, alternating order;
3. ``crosswind sync objects --workers local:N`` for N = 1, 2, 4 — only when
   the CLI accepts ``--workers`` (``crosswind sync objects --help``);
   otherwise those rows are printed as not measured.

Every measured figure stands next to the model's prediction from the one
probe: ``count / (start-up + the model's copy duration)`` for the tool's
requests per object (crosswind: GET + PUT; rclone: GET + PUT + the HEAD it
sends after each upload), plus what a run of the same tool costs with
nothing to copy, measured through the same relays (start-up, imports, the
stores' checks, the first listing pages, the report; a LocalCluster's own
start is not in it and shows up in the workers rows).

    python bench/scaling.py [--rtt-ms 40] [--count 800] [--concurrency 4,16,64] [--rounds 2]
                            [--probe-seconds 16]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import load_now, machine, median, run_measured, table, write_json
from objects import (
    VENV_BIN,
    Case,
    Endpoints,
    boto3_client,
    bucket_contents,
    crosswind_config,
    run_crosswind,
    run_rclone,
    seed,
)

from crosswind.capacity.model import Endpoint, Settings, copy_estimate
from crosswind.capacity.planner import CapacityPlan, PlanRequest, plan_capacity
from crosswind.capacity.probe import ProbeOptions
from crosswind.config import load_config
from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Rig, running_rig
from crosswind.rig.rclone import AzureSasRemote, Rclone, S3Remote, container_sas_url
from crosswind.stores.factory import open_object_store


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def workers_supported() -> bool:
    out = subprocess.run([str(VENV_BIN / "crosswind"), "sync", "objects", "--help"],
                         capture_output=True, text=True, check=False)
    return "--workers" in out.stdout + out.stderr


async def probe(config: Path, workers: int, concurrency: int, seconds: float) -> CapacityPlan:
    cfg = load_config(config)
    src = await open_object_store(cfg, "azure")
    dst = await open_object_store(cfg, "aws")
    try:
        await src.check()
        await dst.check(write=True)
        req = PlanRequest(Settings(workers=workers, concurrency=concurrency),
                          ProbeOptions(seconds=seconds))
        return await plan_capacity(src, "azure", dst, "aws", req)
    finally:
        await src.close()
        await dst.close()


def with_rclone_head(dst: Endpoint) -> Endpoint:
    """rclone's per-object requests: its HEAD after each upload adds one round trip."""
    assert dst.put is not None
    return dataclasses.replace(dst, put=dataclasses.replace(
        dst.put, latency_s=dst.put.latency_s + dst.head.latency_s))


def predicted(plan: CapacityPlan, workers: int, concurrency: int, startup_s: float,
              rclone: bool = False) -> tuple[float, str]:
    dst = with_rclone_head(plan.destination) if rclone else plan.destination
    est = copy_estimate(plan.source, dst, plan.workload(),
                        Settings(workers=workers, concurrency=concurrency), plan.pair)
    return plan.inventory.count / (startup_s + est.seconds), est.bottleneck


_RELAYS = """
import sys, threading
from crosswind.rig.proxy import LatencyProxy
rtt = float(sys.argv[1])
proxies = [LatencyProxy("127.0.0.1", int(p), rtt).start() for p in sys.argv[2:]]
print(" ".join(p.url for p in proxies), flush=True)
threading.Event().wait()
"""


def start_relays(ports: list[int], rtt_s: float) -> tuple[subprocess.Popen[str], list[str]]:
    """``LatencyProxy`` relays in a child process of their own, so that their
    work is neither in the in-process probe's CPU figures nor competing with
    it for this interpreter's lock."""
    proc = subprocess.Popen([sys.executable, "-c", _RELAYS, str(rtt_s), *map(str, ports)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls = proc.stdout.readline().split()
    if len(urls) != len(ports):
        proc.kill()
        raise RuntimeError("the latency relays did not start")
    return proc, urls


def empty_run(rig: Rig, empty: Case, tool: str, via: Endpoints, workdir: Path,
              rnd: int) -> float:
    """Wall seconds of a copy of an empty container into an empty bucket."""
    bucket = f"sc-empty-{tool}-{rnd}"
    boto3_client(rig).create_bucket(Bucket=bucket)
    if tool == "rclone":
        sas = container_sas_url(via.blob_url, AZURITE_ACCOUNT, AZURITE_KEY, empty.container)
        m = run_rclone(Rclone(AzureSasRemote(sas), S3Remote("test", "test", via.s3_endpoint)),
                       empty, bucket, 4)
    else:
        m, _ = run_crosswind(crosswind_config(rig, empty, bucket, workdir, 4, via), 4)
    return m.wall_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    case = Case("scaling", args.count, args.size)
    concs = [int(c) for c in args.concurrency.split(",")]
    has_workers = workers_supported()
    out: dict[str, Any] = {"benchmark": "scaling", "machine": machine(), "rtt_ms": args.rtt_ms,
                           "case": {"count": case.count, "size": case.size},
                           "rounds": args.rounds, "load_start": load_now(),
                           "workers_supported": has_workers}
    with tempfile.TemporaryDirectory(prefix="crosswind-scaling-") as tmp, \
            running_rig(Path(tmp) / "rig", mongo=False) as rig:
        workdir = Path(tmp)
        asyncio.run(seed(rig, case))
        empty = Case("empty", 0, case.size)
        asyncio.run(seed(rig, empty))
        relays, (blob_url, s3_url) = start_relays(
            [rig.azurite.blob_port, rig.moto.port], args.rtt_ms / 1000)
        via = Endpoints(f"{blob_url}/{AZURITE_ACCOUNT}", s3_url)
        try:
            # What a run costs with nothing to copy, through the same relays: the
            # process's start, its imports, the stores' checks, the first listing
            # pages, the report. The model adds the copy to it.
            out["startup_s"] = {
                tool: round(median([empty_run(rig, empty, tool, via, workdir, r)
                                    for r in range(3)]), 3)
                for tool in ("crosswind", "rclone")}
            log(f"a run with nothing to copy: {out['startup_s']}")
            rig.moto.reset()
            boto3_client(rig).create_bucket(Bucket="scaling-probe")
            cfg = crosswind_config(rig, case, "scaling-probe", workdir, 32, via)
            plan = asyncio.run(probe(cfg, 1, 32, args.probe_seconds))
            out["probe"] = plan.to_json()["measured"]
            log(f"probe: {plan.evidence.figures}")
            out["rows"] = measure_rows(rig, case, concs, args, via, workdir, plan, out,
                                       has_workers)
        finally:
            relays.terminate()  # the child this benchmark started, by its pid
            relays.wait(10)
    out["load_end"] = load_now()
    return out


def _one(rig: Rig, case: Case, tool: str, conc: int, rnd: int, via: Endpoints,
         workdir: Path, workers: int | None = None) -> float:
    rig.moto.reset()
    bucket = f"sc-{tool}-c{conc}-w{workers or 0}-r{rnd}"
    boto3_client(rig).create_bucket(Bucket=bucket)
    if tool == "rclone":
        sas = container_sas_url(via.blob_url, AZURITE_ACCOUNT, AZURITE_KEY, case.container)
        m = run_rclone(Rclone(AzureSasRemote(sas), S3Remote("test", "test", via.s3_endpoint)),
                       case, bucket, conc)
    else:
        cfg = crosswind_config(rig, case, bucket, workdir, conc, via)
        if workers is None:
            m, _ = run_crosswind(cfg, conc)
        else:
            argv = [str(VENV_BIN / "crosswind"), "sync", "objects", "--config", str(cfg),
                    "--direction", "azure-to-aws", "--json", "--concurrency", str(conc),
                    "--workers", f"local:{workers}"]
            m = run_measured(argv)
            if m.returncode != 0:
                raise RuntimeError(f"crosswind --workers exited {m.returncode}: "
                                   f"{m.stderr[-2000:]}")
    n, _ = bucket_contents(rig, bucket)
    if n != case.count:
        raise RuntimeError(f"{tool} copied {n} of {case.count}")
    return case.count / m.wall_s


def measure_rows(rig: Rig, case: Case, concs: list[int], args: argparse.Namespace,
                 via: Endpoints, workdir: Path, plan: CapacityPlan, out: dict[str, Any],
                 has_workers: bool) -> list[dict[str, Any]]:
    up = out["startup_s"]
    rows: list[dict[str, Any]] = []
    for conc in concs:
        got: dict[str, list[float]] = {"crosswind": [], "rclone": []}
        for rnd in range(args.rounds):
            order = ("crosswind", "rclone") if rnd % 2 == 0 else ("rclone", "crosswind")
            for tool in order:
                got[tool].append(_one(rig, case, tool, conc, rnd, via, workdir))
        cw, rc = median(got["crosswind"]), median(got["rclone"])
        p_cw, b_cw = predicted(plan, 1, conc, up["crosswind"])
        p_rc, b_rc = predicted(plan, 1, conc, up["rclone"], rclone=True)
        rows.append({"what": f"crosswind, 1 process, concurrency {conc}", "workers": 1,
                     "concurrency": conc, "measured": round(cw, 1), "predicted": round(p_cw, 1),
                     "bound_by": b_cw, "rclone_ratio": round(cw / rc, 2)})
        rows.append({"what": f"rclone --transfers {conc}", "workers": 1, "concurrency": conc,
                     "measured": round(rc, 1), "predicted": round(p_rc, 1), "bound_by": b_rc})
        log(f"  concurrency {conc}: crosswind {cw:.1f} (model {p_cw:.1f}), "
            f"rclone {rc:.1f} (model {p_rc:.1f})")
    wc = args.workers_concurrency
    for n in (1, 2, 4):
        p_w, b_w = predicted(plan, n, wc, up["crosswind"])
        row = {"what": f"crosswind --workers local:{n}, concurrency {wc}", "workers": n,
               "concurrency": wc, "predicted": round(p_w, 1), "bound_by": b_w}
        if has_workers:
            row["measured"] = round(median([_one(rig, case, "crosswind", wc, r, via, workdir, n)
                                            for r in range(args.rounds)]), 1)
            log(f"  workers {n}: {row['measured']} (model {p_w:.1f})")
        else:
            row["measured"] = None
            row["note"] = "not measured: this crosswind's `sync objects` has no --workers yet"
        rows.append(row)
    if not has_workers:
        print("note: `crosswind sync objects --help` shows no --workers: the workers rows are "
              "predicted only (run this benchmark again once scale-out is merged)")
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtt-ms", type=float, default=40.0)
    p.add_argument("--count", type=int, default=800)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--concurrency", default="4,16,64")
    p.add_argument("--workers-concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    # longer than the CLI's default: on a shared 2-core host a ceiling moves
    p.add_argument("--probe-seconds", type=float, default=16.0)
    p.add_argument("--out", default="scaling.json")
    args = p.parse_args(argv)
    out = run(args)
    path = write_json(args.out, out)
    print(f"\n== {out['case']['count']} x {out['case']['size'] // 1024} KiB, Azurite -> moto, "
          f"{out['rtt_ms']:g} ms round trip to both, median of {out['rounds']} ==")
    print(table(["", "measured objects/s", "model objects/s", "measured/model", "model: bound by",
                 "crosswind/rclone"],
                [[r["what"], "not measured" if r["measured"] is None else r["measured"],
                  r["predicted"],
                  "" if r["measured"] is None else round(r["measured"] / r["predicted"], 2),
                  r["bound_by"], r.get("rclone_ratio", "")] for r in out["rows"]]))
    print(f"start-up: {out['startup_s']}; load {out['load_start']} -> {out['load_end']}; "
          f"results: {path}")
    return out


if __name__ == "__main__":
    main()
