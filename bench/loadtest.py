"""`crosswind loadtest` on the rig, as a migration engineer runs it against a
staging pair: an estate (bench/replicate.py's: Azurite with its Event Grid
queue, moto with real S3 → SQS notifications, SecantusDB), a starting estate of
flight events on the primary (so the load's sizes come from an inventory of
it), `crosswind replicate` running (the real CLI, a child process), then the
real `crosswind loadtest` CLI; its human-readable report on stderr and its
JSON in ``.bench/loadtest-<phase>.json``.

    python bench/loadtest.py [--rate 50] [--duration 60] [--only pre|post]
                             [--seed-objects 500] [--reconcile-interval 30]

Exit 0 when every run passed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import load_now, machine, write_json
from replicate import (
    POST,
    PRE,
    Fake,
    LoadGenerator,
    LoopThread,
    Model,
    Service,
    Sides,
    create_estate,
    enable_s3_notifications,
    log,
    seed_estate,
    wait_for,
)

from crosswind.rig.emulators import Rig, running_rig

VENV_BIN = Path(sys.executable).parent


def run_phase(rig: Rig, phase: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    est = create_estate(rig, phase, workdir, args.reconcile_interval, concurrency=32)
    with est.config_path.open("a") as f:
        f.write(f"\n[loadtest]\nallowed = true\nsettle_timeout_s = "
                f"{args.reconcile_interval + 120}\n")
    aio = LoopThread()
    sides = aio.run(Sides(est).__aenter__())
    svc: Service | None = None
    try:
        gen = LoadGenerator(sides, Model(), Fake(args.seed), rate=1, duration=1, mix={"new": 1},
                            probe_every=0, probe_timeout={}, seed=args.seed)
        aio.run(seed_estate(sides, gen, args.seed_objects))
        if phase == POST:
            enable_s3_notifications(est)
        svc = Service(est)
        wait_for(svc, lambda s: s["last_reconcile"] is not None and not s["pending"]["keys"],
                 timeout=300, what="the first reconcile")
        log(f"  {phase}: service up, {args.seed_objects} starting objects replicated; "
            f"crosswind loadtest --rate {args.rate:g} --duration {args.duration:g}")
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run(
            [str(VENV_BIN / "crosswind"), "loadtest", "-c", str(est.config_path),
             "--rate", str(args.rate), "--duration", str(args.duration), "--seed",
             str(args.seed), "--mix", args.mix, "--report",
             str(workdir / f"loadtest-{phase}.json")],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
            timeout=args.duration + args.reconcile_interval + 600)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # (the service is a child too, but counts only once waited for: this is the CLI's)
        cpu_s = round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 1)
        sys.stderr.write(p.stderr)
        log(f"  crosswind loadtest used {cpu_s} s of CPU; load average {os.getloadavg()}")
        report = json.loads((workdir / f"loadtest-{phase}.json").read_text())
        return {"exit_code": p.returncode, "loadtest_cpu_s": cpu_s,
                "human": p.stderr.splitlines(), "report": report,
                "service_exit_code": svc.stop()}
    finally:
        if svc is not None and svc.alive():
            svc.stop()
        aio.run(sides.__aexit__(None, None, None))
        aio.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--mix", default="new=60,overwrite=20,meta=10,delete=10")
    p.add_argument("--only", choices=(PRE, POST))
    p.add_argument("--seed-objects", type=int, default=500)
    p.add_argument("--reconcile-interval", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args()
    phases = [args.only] if args.only else [PRE, POST]
    result: dict[str, Any] = {"benchmark": "loadtest", "machine": machine(),
                              "load_start": load_now(), "options": vars(args), "runs": {}}
    workdir = Path(tempfile.mkdtemp(prefix="crosswind-bench-loadtest-"))
    ok = True
    try:
        with running_rig(workdir / "rig") as rig:
            for phase in phases:
                r = run_phase(rig, phase, args, workdir)
                result["runs"][phase] = r
                ok = ok and r["exit_code"] == 0
    finally:
        result["load_end"] = load_now()
        path = write_json("loadtest.json", result)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"results: {path}; load average at start {result['load_start']}, at end "
          f"{result['load_end']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
