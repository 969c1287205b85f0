"""Cutover and rollback end to end on the rig (Property 30, once on real
servers): the service replicating, a passing validation, a plan approved by
two teams, the cutover run with its hooks, writes on AWS arriving on Azure,
then the rollback with its RTO — and Azure holds exactly what AWS held,
objects and rows; the audit chain verifies. Plus the refusals and a failing
hook that is undone."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from crosswind.entities import Edm, Entity, Prop
from tests.integration.live.conftest import LiveEnv, Service, stream
from tests.lineage_model import check_event
from tests.unit.cutover_fixtures import make_key

pytestmark = pytest.mark.integration


def cli(live: LiveEnv, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args, "-c", str(live.path)],
                          capture_output=True, text=True, timeout=timeout)


def setup(make_live_env: Callable[..., LiveEnv], tmp_path: Path, hooks: dict[str, str],
          extra: str = "") -> tuple[LiveEnv, Any, Any, Path]:
    live = make_live_env(rows=True, replicate="max_delete_percent = 100\n"
                                              "validate_interval_s = 0")
    log = tmp_path / "hooks.log"
    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    lines = [f'{k} = "echo {k} $CROSSWIND_PHASE >> {log}{v}"' for k, v in hooks.items()]
    with live.path.open("a") as f:
        f.write("\n[cutover]\nmax_lag_s = 30\nquiet_period_s = 1\ndrain_timeout_s = 90\n"
                "probe_timeout_s = 60\nrollback_preapproved = true\n" + extra + "\n"
                + "\n".join(lines) + "\n"
                f'[cutover.approvers.alice]\npublic_key = "{alice.public}"\nrole = "platform"\n'
                f'[cutover.approvers.bob]\npublic_key = "{bob.public}"\nrole = "security"\n')
    return live, alice, bob, log


#: every hook appends its name and the phase to the log (the value: what follows)
HOOKS = {k: "" for k in ("freeze_command", "unfreeze_command", "switch_command",
                         "unswitch_command", "aws_freeze_command", "aws_unfreeze_command")}


STEWARDSHIP = {"domain": "ADL", "steward": "ana@example.com", "owner": "flight-ops",
               "flow_id": "26"}


def with_stewardship(live: LiveEnv) -> None:
    with live.path.open("a") as f:
        f.write("\n[governance]\n" + "".join(f'{k} = "{v}"\n' for k, v in STEWARDSHIP.items()))


def switch_events(live: LiveEnv) -> list[dict[str, Any]]:
    """The lineage of the switches (each event checked against the spec)."""
    path = live.config.state_dir / "lineage" / "events.jsonl"
    out = [json.loads(line) for line in path.read_text().splitlines()]
    switches = [e for e in out if e["job"]["name"] in ("cutover", "rollback")]
    for e in switches:
        check_event(e)
    return switches


def plan_and_approve(live: LiveEnv, kind: str, *keys: Any) -> str:
    r = cli(live, kind, "plan", "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    h = str(json.loads(r.stdout)["plan_hash"])
    for k in keys:
        a = cli(live, kind, "approve", "--plan", h, "--key", str(k.private))
        assert a.returncode == 0, a.stderr
    return h


def rows_of(live: LiveEnv) -> tuple[dict[Any, Entity], dict[Any, Entity]]:
    return live.azure_rows(), live.documents()


def test_cutover_then_rollback_end_to_end(make_live_env: Callable[..., LiveEnv],
                                          services: Callable[..., Service],
                                          tmp_path: Path) -> None:
    live, alice, bob, _log = setup(make_live_env, tmp_path, HOOKS)
    with_stewardship(live)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    for i in range(8):
        live.put_blob(f"flights/FX{i}.json", json.dumps({"i": i}).encode(),
                      metadata={"Carrier": "FX"})
        live.put_rows(Entity("FX", f"r{i}", MappingProxyType({"n": Prop(Edm.INT64, i)})))
    svc.wait_until(lambda s: stream(s, "azure-blob-events")["applied"] >= 8
                   and len(live.documents()) == 8, what="replicated before cutover")
    v = cli(live, "validate", "--objects", "--metadata")
    assert v.returncode == 0, v.stdout[-2000:] + v.stderr

    # An unapproved plan may not start.
    h = plan_and_approve(live, "cutover", alice)
    r = cli(live, "cutover", "start", "--plan", h)
    assert r.returncode == 2 and "not approved" in r.stderr, r.stderr
    b = cli(live, "cutover", "approve", "--plan", h, "--key", str(bob.private))
    assert b.returncode == 0, b.stderr

    r = cli(live, "cutover", "start", "--plan", h, "--json", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["status"] == "succeeded" and report["phase_after"] == "post_cutover"
    names = [s["name"] for s in report["steps"]]
    assert names[:3] == ["check_gates", "begin", "freeze_azure"]
    assert "point_of_no_return" in names and names[-1] == "complete"
    probe = next(s for s in report["steps"] if s["name"] == "prove_reverse")["evidence"]
    assert probe["object_arrived_s"] > 0 and probe["row_arrived_s"] > 0
    assert "wait_drained" in r.stderr and "point of no return passed" in r.stderr
    # the same plan cannot run twice
    again = cli(live, "cutover", "start", "--plan", h)
    assert again.returncode == 2 and "already run" in again.stderr

    st = svc.wait_until(lambda s: s["direction"] == "aws-to-azure"
                        and s["phase"] == "post_cutover", what="the service flipped")
    assert st["service"]["running"]
    # writes on AWS arrive on Azure (real S3 -> SQS notifications, the change stream)
    live.s3.put_object(Bucket=live.bucket, Key="flights/FX100.json", Body=b'{"new": 1}',
                       ContentType="application/json")
    live.s3.delete_object(Bucket=live.bucket, Key="flights/FX0.json")
    live.coll.insert_one({"_id": "FX/r100", "PartitionKey": "FX", "RowKey": "r100", "n": 100})
    live.coll.delete_one({"_id": "FX/r1"})
    svc.wait_until(lambda s: "flights/FX100.json" in live.blob_keys()
                   and "flights/FX0.json" not in live.blob_keys()
                   and ("FX", "r100") in live.azure_rows()
                   and ("FX", "r1") not in live.azure_rows(), what="AWS writes on Azure")

    # Roll back (pre-approved by the cutover's approvals), measured.
    r = cli(live, "rollback", "plan", "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    rh = json.loads(r.stdout)["plan_hash"]
    r = cli(live, "rollback", "start", "--plan", rh, "--json", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rb = json.loads(r.stdout)
    assert rb["status"] == "succeeded" and rb["phase_after"] == "pre_cutover"
    assert rb["rto_s"] is not None and rb["rto_s"] < 60
    assert "pre-approved" in rb["authorization"]

    # Azure holds exactly what AWS held; the direction is azure-to-aws again.
    assert live.blob_keys() == live.s3_keys()
    azure_rows, docs = rows_of(live)
    assert azure_rows.keys() == docs.keys()
    assert all(azure_rows[k].same_content(docs[k]) for k in azure_rows)
    svc.wait_until(lambda s: s["direction"] == "azure-to-aws", what="forward again")

    status = json.loads(cli(live, "cutover", "status", "--json").stdout)
    assert status["phase"] == "pre_cutover"
    assert status["last_rollback"]["rto_s"] == rb["rto_s"]
    assert status["last_rollback"]["steps"] and status["last_cutover"]["status"] == "succeeded"
    assert Path(rb["report_files"]["html"]).read_text().startswith("<!doctype html>")
    # stewardship on both reports and the timeline; one lineage run per switch
    assert report["stewardship"] == rb["stewardship"] == STEWARDSHIP
    assert "ana@example.com" in Path(rb["report_files"]["html"]).read_text()
    runs = switch_events(live)
    assert [(e["job"]["name"], e["eventType"]) for e in runs] == [
        ("cutover", "START"), ("cutover", "COMPLETE"), ("rollback", "START"),
        ("rollback", "COMPLETE")]
    assert runs[0]["run"]["runId"] == runs[1]["run"]["runId"] != runs[2]["run"]["runId"]
    s3, blob = f"s3://{live.bucket}", "wasbs://"
    cut_in = {d["namespace"] for d in runs[1]["inputs"]}
    cut_out = {d["namespace"] for d in runs[1]["outputs"]}
    assert any(n.startswith(blob) for n in cut_in) and s3 in cut_out
    back_in = {d["namespace"] for d in runs[3]["inputs"]}
    back_out = {d["namespace"] for d in runs[3]["outputs"]}
    assert s3 in back_in and any(n.startswith(blob) for n in back_out)
    tags = {t["key"]: t["value"] for t in runs[3]["job"]["facets"]["tags"]["tags"]}
    assert tags == STEWARDSHIP
    audit = cli(live, "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    repair = cli(live, "cutover", "repair")
    assert repair.returncode == 0, repair.stderr
    assert svc.terminate() == 0


def test_a_failing_hook_before_the_point_of_no_return_is_undone(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service],
        tmp_path: Path) -> None:
    live, alice, bob, log = setup(make_live_env, tmp_path, HOOKS)
    # the freeze hook fails after it acted: the undo must still unfreeze
    text = live.path.read_text()
    text = text.replace(f'freeze_command = "echo freeze_command $CROSSWIND_PHASE >> {log}"',
                        f'freeze_command = "echo freeze >> {log}; exit 3"', 1)
    live.path.write_text(text)
    with_stewardship(live)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    assert cli(live, "validate", "--objects").returncode == 0
    h = plan_and_approve(live, "cutover", alice, bob)
    r = cli(live, "cutover", "start", "--plan", h, "--json")
    assert r.returncode == 1, r.stderr
    assert "freeze_azure failed" in r.stderr and "undoing" in r.stderr
    # an undone cutover is a failed run in lineage, with the reason
    runs = switch_events(live)
    assert [(e["job"]["name"], e["eventType"]) for e in runs] == [
        ("cutover", "START"), ("cutover", "FAIL")]
    assert "freeze_azure" in runs[1]["run"]["facets"]["errorMessage"]["message"]
    assert {t["key"]: t["value"] for t in runs[1]["job"]["facets"]["tags"]["tags"]} == \
        STEWARDSHIP
    hooks_run = log.read_text().split()
    assert hooks_run[0] == "freeze" and "unfreeze_command" in hooks_run
    status = json.loads(cli(live, "cutover", "status", "--json").stdout)
    assert status["phase"] == "pre_cutover" and status["direction"] == "azure-to-aws"
    outcomes = {s["name"]: s["outcome"] for s in status["steps"]}
    assert outcomes["freeze_azure"] == "failed" and outcomes["abort_cutover"] == "ok"
    assert svc.proc.poll() is None
    assert svc.terminate() == 0


def test_start_without_the_service_is_a_clear_error(make_live_env: Callable[..., LiveEnv],
                                                    tmp_path: Path) -> None:
    live, *_ = setup(make_live_env, tmp_path, HOOKS)
    r = cli(live, "cutover", "start", "--plan", "0" * 64)
    assert r.returncode == 3
    assert "the replication service is not running" in r.stderr
    bad = cli(live, "cutover", "start", "--plan", "not-a-hash")
    assert bad.returncode == 2 and "is not a plan hash" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_drain_that_times_out_is_undone(make_live_env: Callable[..., LiveEnv],
                                          services: Callable[..., Service],
                                          tmp_path: Path) -> None:
    live, alice, bob, log = setup(make_live_env, tmp_path, HOOKS)
    live.path.write_text(live.path.read_text().replace(
        "quiet_period_s = 1\ndrain_timeout_s = 90", "quiet_period_s = 30\ndrain_timeout_s = 2"))
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    assert cli(live, "validate", "--objects").returncode == 0
    h = plan_and_approve(live, "cutover", alice, bob)
    r = cli(live, "cutover", "start", "--plan", h, "--json")
    assert r.returncode == 1
    assert "wait_drained failed: not quiet and drained within 2s" in r.stderr
    assert "unfreeze_command cutting_over" in log.read_text()
    assert json.loads(cli(live, "cutover", "status", "--json").stdout)["phase"] == "pre_cutover"
    assert svc.terminate() == 0


def test_a_fired_trigger_rolls_back_by_itself(make_live_env: Callable[..., LiveEnv],
                                              services: Callable[..., Service],
                                              tmp_path: Path) -> None:
    live, alice, bob, log = setup(make_live_env, tmp_path, HOOKS,
                                  extra="auto_rollback = true\ntrigger_lag_for_s = 1\n"
                                        "trigger_clear_for_s = 0")
    # an SLO after cutover that any real lag breaks
    live.path.write_text(live.path.read_text().replace(
        "[replicate]\n", "[replicate]\nlag_slo_post_s = 0.05\n", 1))
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    assert cli(live, "validate", "--objects", "--metadata").returncode == 0
    h = plan_and_approve(live, "cutover", alice, bob)
    r = cli(live, "cutover", "start", "--plan", h, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for i in range(5):  # changes on AWS: their lag breaks the tiny SLO
        live.s3.put_object(Bucket=live.bucket, Key=f"late/{i}.json", Body=b"x")
    st = svc.wait_until(lambda s: s["phase"] == "pre_cutover" and s["direction"]
                        == "azure-to-aws", timeout=180, what="the automatic rollback")
    alerts = st["switch"]["alerts"]
    assert any(a["trigger"] == "lag" and a["kind"] == "fired" for a in alerts), alerts
    st = svc.wait_until(lambda s: not s["switch"]["running"], what="the rollback to finish")
    assert "rollback succeeded" in st["switch"]["auto_rollback"], st["switch"]
    status = json.loads(cli(live, "cutover", "status", "--json").stdout)
    assert status["last_rollback"]["status"] == "succeeded"
    assert status["last_rollback"]["rto_s"] is not None
    assert "unswitch_command pre_cutover" in log.read_text()
    audit = cli(live, "audit", "export", "--out", str(tmp_path / "audit.jsonl"))
    assert audit.returncode == 0
    actions = [json.loads(line)["action"] for line in
               (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "trigger" in actions
    assert svc.terminate() == 0
