"""A switch whose service is SIGKILLed in the middle of a step: the journal shows
the interrupted step; before the point of no return `cutover abort` undoes it
(the writers are unfrozen), after it `cutover resume` finishes it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.live.conftest import LiveEnv, Service
from tests.integration.live.test_cutover_run import HOOKS, cli, plan_and_approve, setup

pytestmark = pytest.mark.integration


def _start_in_background(live: LiveEnv, h: str) -> object:
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "crosswind", "cutover", "start", "--plan",
                             h, "-c", str(live.path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {path}")


@pytest.mark.parametrize("where", ["freeze", "switch"])
def test_sigkill_mid_switch_then_abort_or_resume(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service],
        tmp_path: Path, where: str) -> None:
    hooks = dict(HOOKS)
    slow = "freeze_command" if where == "freeze" else "switch_command"
    hooks[slow] = "; sleep 30"
    live, alice, bob, log = setup(make_live_env, tmp_path, hooks)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    assert cli(live, "validate", "--objects", "--metadata").returncode == 0
    h = plan_and_approve(live, "cutover", alice, bob)
    starter = _start_in_background(live, h)
    _wait_for(log, slow)  # the slow hook has begun
    svc.kill()  # SIGKILL the service mid-step
    starter.wait(60)  # type: ignore[attr-defined]
    assert starter.returncode != 0  # type: ignore[attr-defined]
    status = json.loads(cli(live, "cutover", "status", "--json").stdout)
    assert status["interrupted_step"] == ("freeze_azure" if where == "freeze" else "switch")
    svc2 = services(live)
    if where == "freeze":
        # before the point of no return: the phase is cutting_over, Azure still primary
        assert status["phase"] == "cutting_over" and not status["committed_switch"]
        svc2.wait_until(lambda s: s["direction"] == "azure-to-aws", what="service back")
        r = cli(live, "cutover", "abort", "--json", timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        assert "unfreeze_command" in log.read_text()
        after = json.loads(cli(live, "cutover", "status", "--json").stdout)
        assert after["phase"] == "pre_cutover"
    else:
        # after it: AWS is primary; resume finishes the switch from the interrupted step
        assert status["phase"] == "post_cutover" and status["committed_switch"]
        svc2.wait_until(lambda s: s["direction"] == "aws-to-azure", what="service flipped")
        text = live.path.read_text().replace("; sleep 30", "")
        live.path.write_text(text)
        r = cli(live, "cutover", "resume", "--json", timeout=300)
        # the config changed (the hook): resume runs the plan's own runbook as started
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        after = json.loads(cli(live, "cutover", "status", "--json").stdout)
        assert after["phase"] == "post_cutover" and not after["committed_switch"]
        assert {s["name"]: s["outcome"] for s in after["steps"]}["complete"] == "ok"
    assert cli(live, "cutover", "repair").returncode == 0
    assert svc2.terminate() == 0
