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
