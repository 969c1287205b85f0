"""The hook runner with real shell commands: environment, exit codes, timeouts
that kill the whole process group, bounded and redacted output, cancellation."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from crosswind.cutover.hooks import HookContext, HookResult, run_hook
from crosswind.secrets import REDACTOR

CTX = HookContext(phase="cutting_over", direction="azure-to-aws", plan_hash="ab" * 32,
                  step="freeze_azure")


def hook(command: str, timeout_s: float = 10.0, **kw: object) -> HookResult:
    return asyncio.run(run_hook("freeze_command", command, CTX, timeout_s=timeout_s,
                                **kw))  # type: ignore[arg-type]


def test_the_hook_sees_its_context_in_the_environment() -> None:
    r = hook('echo "$CROSSWIND_PHASE $CROSSWIND_DIRECTION $CROSSWIND_PLAN_HASH '
             '$CROSSWIND_STEP $CROSSWIND_HOOK"')
    assert r.ok and r.exit_code == 0 and not r.skipped
    assert r.output.strip() == f"cutting_over azure-to-aws {'ab' * 32} freeze_azure " \
                               "freeze_command"


def test_a_non_zero_exit_fails_with_a_one_line_reason() -> None:
    r = hook("echo starting; echo 'writers still connected' >&2; exit 3")
    assert not r.ok and r.exit_code == 3 and not r.timed_out
    assert r.reason == "freeze_command exited 3: writers still connected"
    assert "starting" in r.output  # stdout and stderr together


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    # The shell starts a background child that would outlive a plain kill of the shell.
    r = hook(f"sleep 60 & echo $! > {pidfile}; wait", timeout_s=0.5)
    assert time.monotonic() - started < 8
    assert not r.ok and r.timed_out
    assert r.reason == "freeze_command timed out after 0.5s; its process group was killed"
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the hook's child {child} survived the timeout")


def test_output_is_bounded_to_its_end_and_redacted() -> None:
    secret = "hook-secret-value-98765"
    REDACTOR.register(secret)
    r = hook(f"i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; echo {secret}",
             max_output=200)
    assert r.ok and r.output_bytes > 10_000
    assert secret not in r.output and "***" in r.output
    assert "line-1999" in r.output and "line-5\n" not in r.output
    assert r.output.startswith("[… ") and "bytes before this cut" in r.output


def test_no_command_is_a_skipped_step() -> None:
    r = hook("   ")
    assert r.ok and r.skipped and r.reason == "no freeze_command configured: skipped"


def test_a_killed_hook_says_so() -> None:
    r = hook("kill -TERM $$")
    assert not r.ok and r.reason.startswith("freeze_command killed by signal 15")


def test_cancelling_the_step_kills_the_hook(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def go() -> None:
        task = asyncio.create_task(run_hook("switch_command", f"echo $$ > {pidfile}; "
                                            "exec sleep 60", CTX, timeout_s=60))
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail("the hook outlived its cancelled step")


def test_a_background_daemon_holding_the_output_does_not_hang_the_step(tmp_path: Path
                                                                        ) -> None:
    pidfile = tmp_path / "daemon.pid"
    started = time.monotonic()
    r = hook(f"(sleep 30 & echo $! > {pidfile}); echo done", timeout_s=20)
    assert r.ok and time.monotonic() - started < 10
    os.kill(int(pidfile.read_text()), 15)  # our own child: end it
