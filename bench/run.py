"""`make bench`: every benchmark, one after the other, results in .bench/.

1. ``plan.py``: 1,000,000 synthetic keys through the engine's planner (its
   own process, so its peak RSS is its own);
2. ``objects.py``: crosswind vs rclone on 2,000 x 4 KiB, 5 x 50 MiB and
   2 x 300 MiB objects, with the servers' ceilings, then the latency-bound
   mode (both tools through proxies adding 40 ms per request, at several
   concurrencies);
3. ``bench_metadata.py`` and ``bench_validate.py``, when present (owned by the
   metadata and validation work);
4. ``cutover.py``: cutover duration and rollback RTO on the demo estate;
5. ``replicate.py``: ``crosswind replicate`` under 50 changes/s for 5 minutes
   before cutover and 1 minute after (about 10 minutes in all); lag per stream,
   RSS, CPU, and lost changes by an independent comparison;
6. ``capacity_plan.py`` (after ``plan.py``): ``inventory --plan``'s planner over
   10,000,000 synthetic keys; ``scaling.py`` (last): latency-bound objects/s,
   measured and predicted by the capacity model (see README "Scaling").

Options after ``--`` go to ``objects.py`` (e.g. ``--rounds 5``). ``--replicate-quick``
runs ``replicate.py --quick`` (30 s + 20 s); ``BENCH_REPLICATE_ARGS`` passes any of
its options (``BENCH_REPLICATE_ARGS="--rate 80" make bench``). Figures are
medians of a few rounds on a 2-core machine shared with the servers: noisy.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from benchlib import OUT_DIR, load_now, write_json

HERE = Path(__file__).resolve().parent


def run_script(name: str, args: list[str]) -> int:
    path = HERE / name
    if not path.exists():
        print(f"-- {name}: not present, skipped", flush=True)
        return 0
    print(f"\n-- {name} {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, str(path), *args])


def main() -> int:
    args = sys.argv[1:]
    objects_args = args[args.index("--") + 1:] if "--" in args else []
    own = args[:args.index("--")] if "--" in args else args
    replicate_args = (["--quick"] if "--replicate-quick" in own else []) + shlex.split(
        os.environ.get("BENCH_REPLICATE_ARGS", ""))
    codes = {
        "plan.py": run_script("plan.py", []),
        "capacity_plan.py": run_script("capacity_plan.py", []),
        "objects.py": run_script("objects.py", objects_args),
        "bench_metadata.py": run_script("bench_metadata.py", []),
        "bench_validate.py": run_script("bench_validate.py", []),
        "cutover.py": run_script("cutover.py", []),
        "replicate.py": run_script("replicate.py", replicate_args),
        "scaling.py": run_script("scaling.py", []),
    }
    summary: dict[str, object] = {"exit_codes": codes, "load_end": load_now()}
    for name in ("plan.json", "capacity_plan.json", "objects.json", "cutover.json",
                 "replicate.json", "scaling.json"):
        p = OUT_DIR / name
        if p.exists():
            summary[name] = json.loads(p.read_text())
    write_json("summary.json", summary)
    failed = [n for n, c in codes.items() if c]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
