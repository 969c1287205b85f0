"""Cutover duration and rollback RTO on the demo estate (medians of N rounds),
with the time of every step.

Starts the rig, seeds the `make demo` estate (flight-event objects with their
metadata rows, a 70 MiB archive), loads AWS with one-shot syncs, starts
`crosswind replicate`, then N times: a cutover (plan, two approvals, start),
writes on AWS, a rollback (pre-approved, start). The RTO is the tool's own
measure (from `rollback start` until Azure is primary again with every AWS
change applied and the unswitch hook done). Azurite emits no Event Grid
events, so each rollback's probe waits `probe_event_wait_s` (2 s here) before
handing its object to the service; the figure includes that wait.

    python bench/cutover.py [--rounds 3] [--objects 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
from pymongo import MongoClient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))

from benchlib import OUT_DIR, load_now, write_json  # noqa: E402
from demo import BUCKET, estate, seed, write_config  # noqa: E402
from demo_live import add_live_config, stream, wait_for  # noqa: E402

from crosswind.config import load_config  # noqa: E402
from crosswind.rig.demo_rows import seed_demo_rows  # noqa: E402
from crosswind.rig.emulators import running_rig  # noqa: E402


def cw(cfg: str, env: dict[str, str], *args: str, timeout: float = 900) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "crosswind", *args, "--config", cfg, "--json"],
                       env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"crosswind {' '.join(args)} exited {p.returncode}:\n"
                           f"{p.stderr[-3000:]}")
    return json.loads(p.stdout) if p.stdout.strip() else {}


def steps_of(report: dict[str, Any]) -> dict[str, float]:
    return {s["name"]: float(s["duration_s"] or 0.0) for s in report["steps"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--objects", type=int, default=3000)
    args = ap.parse_args()
    work = OUT_DIR / "cutover-work"
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    rounds: list[dict[str, Any]] = []
    with running_rig(work / "rig") as rig:
        boto3.client("s3", endpoint_url=rig.moto.endpoint, aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1",
                     ).create_bucket(Bucket=BUCKET)
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": rig.azurite.connection_string,
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "DOCDB_URI": rig.secantus.uri}
        os.environ.update({k: env[k] for k in ("AZURE_STORAGE_CONNECTION_STRING",
                                               "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                               "DOCDB_URI")})
        import demo

        demo.WORK = work
        items = estate(args.objects)
        asyncio.run(seed(rig, items))
        cfg_path = write_config(rig)
        cfg = str(cfg_path)
        asyncio.run(seed_demo_rows(load_config(cfg), [k for k, _, _ in items]))
        for a in (("sync", "objects", "-d", "azure-to-aws"),
                  ("sync", "metadata", "-d", "azure-to-aws")):
            subprocess.run([sys.executable, "-m", "crosswind", *a, "--config", cfg], env=env,
                           capture_output=True, check=False)
        alice, bob = add_live_config(cfg_path, rig, work, BUCKET)
        service = subprocess.Popen([sys.executable, "-m", "crosswind", "replicate",
                                    "--config", cfg], env=env,
                                   stderr=(work / "replicate.log").open("wb"),
                                   stdout=subprocess.DEVNULL)
        try:
            wait_for(cfg_path, lambda d: d["last_reconcile"] is not None, "first reconcile",
                     timeout=600)
            subprocess.run([sys.executable, "-m", "crosswind", "validate", "--objects",
                            "--metadata", "--config", cfg], env=env, capture_output=True)
            s3 = boto3.client("s3", endpoint_url=rig.moto.endpoint,
                              aws_access_key_id="test", aws_secret_access_key="test",
                              region_name="us-east-1")
            coll = MongoClient(rig.secantus.uri)["nxop"]["flight_event_metadata"]
            for n in range(args.rounds):
                plan = cw(cfg, env, "cutover", "plan", "--ack-dlq",
                          str(cw(cfg, env, "status")["dlq_open"]))["plan_hash"]
                for key in (alice, bob):
                    cw(cfg, env, "cutover", "approve", "--plan", plan, "--key", str(key))
                cut = cw(cfg, env, "cutover", "start", "--plan", plan)
                wait_for(cfg_path, lambda d: d["direction"] == "aws-to-azure", "the flip")
                before = stream(cw(cfg, env, "status"), "s3-events")["applied"]
                for i in range(20):
                    s3.put_object(Bucket=BUCKET, Key=f"bench/round{n}/aws-{i}.json",
                                  Body=b'{"on": "aws"}', ContentType="application/json")
                    coll.insert_one({"_id": f"BENCH{n}/aws-{i}", "PartitionKey": f"BENCH{n}",
                                     "RowKey": f"aws-{i}"})
                wait_for(cfg_path, lambda d, b=before: stream(d, "s3-events")["applied"]
                         >= b + 20, "AWS writes replicated")
                rplan = cw(cfg, env, "rollback", "plan")["plan_hash"]
                rb = cw(cfg, env, "rollback", "start", "--plan", rplan)
                wait_for(cfg_path, lambda d: d["direction"] == "azure-to-aws", "forward again")
                rounds.append({"cutover_s": cut["duration_s"], "rto_s": rb["rto_s"],
                               "cutover_steps": steps_of(cut),
                               "rollback_steps": steps_of(rb), "load": load_now()})
                print(f"round {n + 1}: cutover {cut['duration_s']:.1f}s, rollback RTO "
                      f"{rb['rto_s']:.1f}s", flush=True)
        finally:
            service.terminate()
            service.wait(60)

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 2)

    summary = {
        "objects": args.objects + 4, "rounds": len(rounds),
        "cutover_s": {"median": med([r["cutover_s"] for r in rounds]),
                      "all": [r["cutover_s"] for r in rounds]},
        "rto_s": {"median": med([r["rto_s"] for r in rounds]),
                  "all": [r["rto_s"] for r in rounds], "target": 60},
        "cutover_steps_median_s": {k: med([r["cutover_steps"][k] for r in rounds])
                                   for k in rounds[0]["cutover_steps"]},
        "rollback_steps_median_s": {k: med([r["rollback_steps"][k] for r in rounds])
                                    for k in rounds[0]["rollback_steps"]},
        "rounds_detail": rounds, "load_end": load_now(),
    }
    write_json("cutover.json", summary)
    print(f"\ncutover median {summary['cutover_s']['median']}s, rollback RTO median "
          f"{summary['rto_s']['median']}s (target < 60 s) over {len(rounds)} rounds")
    for kind in ("cutover_steps_median_s", "rollback_steps_median_s"):
        print(kind.replace("_median_s", ""), ":",
              ", ".join(f"{k} {v:.1f}s" for k, v in summary[kind].items()))
    return 0 if summary["rto_s"]["median"] < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
