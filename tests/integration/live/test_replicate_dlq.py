"""Objects and rows share the DLQ commands: `crosswind dlq list` shows the
service's entries, and `dlq replay` works with the service stopped (here) and
while it runs (as a request the service executes, between live changes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from crosswind.metasync.context import scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.state import StateStore
from tests.integration.live.conftest import LiveEnv, Service, stream

pytestmark = pytest.mark.integration


def cli(live: LiveEnv, *args: str) -> tuple[int, Any, str]:
    p = subprocess.run([sys.executable, "-m", "crosswind", *args, "-c", str(live.path)],
                       capture_output=True, text=True, timeout=300)
    out: Any = None
    if p.stdout.strip().startswith("{"):
        out = json.loads(p.stdout)
    return p.returncode, out, p.stderr


def file_entry(live: LiveEnv, key: str) -> None:
    """An object-key entry as the service files one (e.g. a key whose copy kept
    failing until its source was fixed)."""
    state = StateStore(live.config.state_dir)
    try:
        Ledger(state, scope_of(live.config)).dlq_put(
            "azure-to-aws", "object-key", key, pk=None, rk=None, kind="IntegrityError",
            reason="test: bytes failed verification", payload=None, run_id=None)
    finally:
        state.close()


def test_held_deletes_are_listed_and_replayed_when_the_service_is_stopped(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env(replicate="max_delete_count = 1\nmax_delete_percent = 100")
    for i in range(4):
        live.put_blob(f"d/{i}", b"x", event=False)
    svc = services(live)
    svc.wait_until(lambda s: stream(s, "reconcile")["applied"] >= 4, what="first reconcile")
    for i in range(4):
        live.delete_blob(f"d/{i}")
    svc.wait_until(lambda s: stream(s, "azure-blob-events")["held"] >= 3, what="held deletes")
    assert svc.terminate() == 0
    assert len(live.s3_keys()) == 3
    code, listed, _ = cli(live, "dlq", "list", "--json")
    assert code == 0
    held = [i for i in listed["items"] if i["kind"] == "delete-held"]
    assert len(held) == 3 and all(i["item_kind"] == "object-key" for i in held)
    # one at a time is within the limit of one delete per replay
    code, report, err = cli(live, "dlq", "replay", str(held[0]["id"]), "--json")
    assert code == 0, err
    assert report["resolved"] == 1
    assert len(live.s3_keys()) == 2
    # all the rest at once is not: held again, exit 4, nothing lost
    code, report, err = cli(live, "dlq", "replay", "--all", "--json")
    assert code == 4, err
    assert report["deletes_blocked"] and len(live.s3_keys()) == 1


def test_dlq_replay_while_the_service_runs_is_done_by_the_service(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env()
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    live.put_blob("fixed/at-source.json", b"good bytes", event=False)
    file_entry(live, "fixed/at-source.json")
    code, report, err = cli(live, "dlq", "replay", "--all", "--json")
    assert code == 0, err
    assert "the replication service holds the state" in err
    assert report["resolved"] == 1 and report["still_failing"] == []
    assert live.s3_keys() == {"fixed/at-source.json": b"good bytes"}
    code, listed, _ = cli(live, "dlq", "list", "--json")
    assert listed["counts"].get("open", 0) == 0
    assert svc.proc.poll() is None
    assert svc.terminate() == 0


def test_after_cutover_a_write_on_azure_is_a_conflict_never_overwritten(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    from crosswind.migration import Phase

    live = make_live_env()
    live.set_phase(Phase.CUTTING_OVER)
    live.set_phase(Phase.POST_CUTOVER)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    live.s3.put_object(Bucket=live.bucket, Key="k.json", Body=b"v1 from aws")
    svc.wait_until(lambda s: live.blob_keys().get("k.json") == b"v1 from aws", what="copied")
    # someone still writes to Azure after the flip ...
    live.container.get_blob_client("k.json").upload_blob(b"written on azure", overwrite=True)
    # ... and AWS changes the same object
    live.s3.put_object(Bucket=live.bucket, Key="k.json", Body=b"v2 from aws")
    st = svc.wait_until(lambda s: s["dlq_open"] >= 1, what="the conflict")
    assert live.blob_keys()["k.json"] == b"written on azure"  # not lost
    code, listed, _ = cli(live, "dlq", "list", "--kind", "conflict", "--json")
    [entry] = listed["items"]
    assert entry["item"] == "k.json" and "written on the replica side" in entry["reason"]
    code, shown, _ = cli(live, "dlq", "show", str(entry["id"]), "--json")
    assert shown["payload"]["replica"]["size"] == len(b"written on azure")
    assert shown["payload"]["primary"]["size"] == len(b"v2 from aws")
    # an operator decides: replay lets the primary's version win
    code, report, err = cli(live, "dlq", "replay", str(entry["id"]), "--json")
    assert code == 0, err
    assert report["resolved"] == 1
    assert live.blob_keys()["k.json"] == b"v2 from aws"
    assert st["service"]["running"] and svc.terminate() == 0
