"""Property 31 on the rig: under a fixed modest load with `crosswind replicate`
running, lag stays under the SLO and nothing is lost.

`crosswind loadtest` (the real CLI) drives 15 changes/s for 20 s (new objects
with their rows, overwrites, metadata-row changes, deletes) into the primary
while the service (the real CLI, a child process) replicates; its verdict is
asserted, and then both sides are read independently with the SDKs (every
object's bytes, every row's version) rather than trusting the tool's check."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from crosswind.loadtest.flights import KEY_PATTERN, PARTITION_KEY, ROW_KEY
from crosswind.migration import Phase
from tests.integration.live.conftest import LiveEnv, Service

pytestmark = pytest.mark.integration

RATE, DURATION = 15, 20


def loadtest_env(make_live_env: Callable[..., LiveEnv], slo_s: float = 60) -> LiveEnv:
    live = make_live_env(
        # the row reconcile carries row deletes before cutover (no change feed)
        "reconcile_interval_s = 10\nmax_delete_count = 100000\nmax_delete_percent = 100\n"
        f"lag_slo_pre_s = {slo_s}\nlag_slo_post_s = {slo_s}",
        rows=True, metadata="propagate_deletes = true")
    live.path.write_text(live.path.read_text() + f"""
[keys]
pattern = "{KEY_PATTERN}"
partition_key = "{PARTITION_KEY}"
row_key = "{ROW_KEY}"

[loadtest]
allowed = true
settle_timeout_s = 60
""")
    return live


def run_loadtest(live: LiveEnv, rate: float = RATE, duration: float = DURATION
                 ) -> tuple[int, dict[str, Any], str]:
    p = subprocess.run(
        [sys.executable, "-m", "crosswind", "loadtest", "-c", str(live.path), "--rate",
         str(rate), "--duration", str(duration), "--seed", "31", "--json"],
        capture_output=True, text=True, timeout=240)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else {}, p.stderr


@pytest.mark.parametrize("phase", ["pre", "post"])
def test_property31_lag_under_slo_and_nothing_lost(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service],
        phase: str) -> None:
    live = loadtest_env(make_live_env)
    if phase == "post":
        live.set_phase(Phase.CUTTING_OVER)
        live.set_phase(Phase.POST_CUTOVER)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    code, r, stderr = run_loadtest(live)
    assert r, stderr
    checks = r["checks"]
    assert code == 0 and r["passed"], json.dumps(checks, indent=1) + stderr
    # the load as asked: 300 changes, all four kinds, none failed on the primary
    assert r["load"]["planned"] == RATE * DURATION
    g = r["generator"]
    assert g["completed"] == RATE * DURATION and not g["errors"]
    assert set(g["by_kind"]) == {"new", "overwrite", "meta", "delete"}
    # lag under the SLO on the streams that carried the load
    target = r["slo"]["target_s"]
    assert target == 60
    events = "azure-blob-events" if phase == "pre" else "s3-events"
    rows = "table-poll" if phase == "pre" else "docdb-changes"
    for name in (events, rows):
        s = r["lag_s"][name]
        assert s["applied"] > 100 and 0 < s["p99"] <= target, (name, s)
    v = r["verification"]
    assert v["lost"] == 0 and v["objects_checked"] > 150 and v["rows_checked"] > 150
    assert r["dlq"]["growth"] == 0
    assert "workers" in json.dumps(r["utilisation"])
    # independently: the replica holds exactly the primary's objects and rows
    if phase == "pre":
        prim_objs, repl_objs = live.blob_keys(), live.s3_keys()
        prim_rows, repl_rows = live.azure_rows(), live.documents()
    else:
        prim_objs, repl_objs = live.s3_keys(), live.blob_keys()
        prim_rows, repl_rows = live.documents(), live.azure_rows()
    assert len(prim_objs) == r["generator"]["by_kind"]["new"] - r["generator"]["by_kind"][
        "delete"]
    assert prim_objs == repl_objs
    assert {k: e.properties["Version"] for k, e in prim_rows.items()} == {
        k: e.properties["Version"] for k, e in repl_rows.items()}
    assert svc.terminate() == 0


def test_a_lag_over_the_slo_fails_the_run(make_live_env: Callable[..., LiveEnv],
                                          services: Callable[..., Service]) -> None:
    """The same tool, an SLO no replica can meet (50 ms): the run fails on lag and
    the service's own verdict, and still finds nothing lost."""
    live = loadtest_env(make_live_env, slo_s=0.05)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    code, r, stderr = run_loadtest(live, rate=5, duration=4)
    assert code == 1 and r and not r["passed"], stderr
    failed = {name for name, c in r["checks"].items() if not c["ok"]}
    assert {"lag", "service_slo"} <= failed <= {"lag", "service_slo", "on_schedule", "rate"}
    assert r["slo"]["breached_samples"] > 0 and r["verification"]["lost"] == 0
    assert svc.terminate() == 0
