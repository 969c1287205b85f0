"""Helpers shared by the benchmarks: measured child processes, load, JSON output.

Peak RSS of a child is the kernel's own high-water mark of that one process
(``ru_maxrss``, reported by GNU ``/usr/bin/time``), not a sample, so short
spikes are not missed. Neither crosswind nor rclone starts children of its own.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / ".bench"
MiB = 1024 * 1024
TIME = "/usr/bin/time"


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float
    #: user + system CPU seconds of the process: less sensitive to load than wall time
    cpu_s: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(
    argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 1800.0,
    cwd: Path | None = None,
) -> Measured:
    """Run ``argv`` to the end; its wall time and the kernel's peak RSS for it.

    The child is started through ``/usr/bin/time``: Linux carries a process's
    RSS high-water mark across fork+exec, so ``wait4`` on a direct child of
    this (large) Python process would report our own RSS; the child of the
    tiny ``time`` process reports its own.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        cmd = [TIME, "-f", "%M %U %S", "-o", tf.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=dict(env or os.environ),
                                cwd=cwd)
        # Kill only this child, by its pid, if it overruns.
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        lines = tf.read().strip().splitlines()
        # "Command exited with non-zero status N" precedes the figures on failure.
        fields = lines[-1].split() if lines else []
        peak_kb, cpu = (int(fields[0]), float(fields[1]) + float(fields[2])) \
            if len(fields) == 3 else (0, 0.0)
        return Measured(wall, peak_kb / 1024, cpu, proc.returncode,
                        out.read().decode("utf-8", "replace"),
                        err.read().decode("utf-8", "replace"))


def self_peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_self_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def load_now() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2),
            "loadavg_15m": round(fifteen, 2), "cpus": os.cpu_count()}


def machine() -> dict[str, Any]:
    try:
        rclone = subprocess.run(["rclone", "version"], capture_output=True, text=True,
                                check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        rclone = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "rclone": rclone}


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write_json(name: str, data: Any) -> Path:
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_default) + "\n")
    tmp.replace(path)
    return path


def _default(o: Any) -> Any:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:,.2f}" if abs(c) < 100 else f"{c:,.0f}"
    return str(c)
