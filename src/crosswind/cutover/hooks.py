"""Runs the user's hook commands (freeze, unfreeze, switch, unswitch, ...).

A hook is a shell command string, run as ``/bin/sh -c COMMAND`` in a session
of its own (so the whole process group can be killed), with the environment
of crosswind plus ``CROSSWIND_PHASE``, ``CROSSWIND_DIRECTION``,
``CROSSWIND_PLAN_HASH``, ``CROSSWIND_STEP`` and ``CROSSWIND_HOOK``. Its
standard output and error are captured together, bounded (the last
``max_output`` bytes are kept: the end is where the error is) and redacted.
Exit status 0 is success; anything else, or running past the timeout (the
process group gets SIGTERM, then SIGKILL after a short grace), is a failed
step with a one-line reason. Cancelling the caller kills the hook too, so an
abandoned step never leaves a hook running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

from crosswind.secrets import redact

MAX_OUTPUT = 64 * 1024
#: after SIGTERM, the group has this long before SIGKILL
KILL_GRACE_S = 2.0
#: after the shell exits, output still open (a background child holds it) is
#: read for this long, then left
EOF_GRACE_S = 1.0


@dataclass(frozen=True, slots=True)
class HookContext:
    phase: str
    direction: str
    plan_hash: str
    step: str

    def env(self, hook: str) -> dict[str, str]:
        return {"CROSSWIND_PHASE": self.phase, "CROSSWIND_DIRECTION": self.direction,
                "CROSSWIND_PLAN_HASH": self.plan_hash, "CROSSWIND_STEP": self.step,
                "CROSSWIND_HOOK": hook}


@dataclass(frozen=True, slots=True)
class HookResult:
    hook: str
    ok: bool
    #: one line: what happened
    reason: str
    exit_code: int | None
    timed_out: bool
    duration_s: float
    #: the end of the combined output, redacted
    output: str
    output_bytes: int
    skipped: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"hook": self.hook, "ok": self.ok, "reason": self.reason,
                "exit_code": self.exit_code, "timed_out": self.timed_out,
                "duration_s": round(self.duration_s, 3), "output": self.output,
                "output_bytes": self.output_bytes, "skipped": self.skipped}


class _Tail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > self.limit:
            del self.buf[: len(self.buf) - self.limit]

    def text(self) -> str:
        shown = redact(self.buf.decode("utf-8", "replace"))
        if self.total > len(self.buf):
            shown = f"[… {self.total - len(self.buf)} bytes before this cut …]\n" + shown
        return shown


async def _pump(stream: asyncio.StreamReader, tail: _Tail) -> None:
    while chunk := await stream.read(65536):
        tail.add(chunk)


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _stop_group(proc: asyncio.subprocess.Process) -> None:
    _killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout=KILL_GRACE_S)
    # Children of the shell may outlive it: the group goes either way.
    _killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout=KILL_GRACE_S)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


async def run_hook(hook: str, command: str, ctx: HookContext, *, timeout_s: float,
                   max_output: int = MAX_OUTPUT,
                   extra_env: Mapping[str, str] | None = None) -> HookResult:
    """Run one hook and say how it went (never raises for the hook's failure)."""
    if not command.strip():
        return HookResult(hook, True, f"no {hook} configured: skipped", None, False, 0.0,
                          "", 0, skipped=True)
    env = {**os.environ, **(extra_env or {}), **ctx.env(hook)}
    started = time.monotonic()
    tail = _Tail(max_output)
    # Our own pipe rather than PIPE: a background child of the hook may hold the
    # output open after the shell exits, and the pipe's transport is then ours to
    # close (asyncio's would keep proc.wait() waiting for it).
    r, w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, stdin=asyncio.subprocess.DEVNULL, stdout=w,
            stderr=w, env=env, start_new_session=True)
    except OSError as exc:
        os.close(r)
        return HookResult(hook, False, f"{hook} could not start: {exc.strerror}", None, False,
                          time.monotonic() - started, "", 0)
    finally:
        os.close(w)
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(r, "rb", buffering=0))
    pump = asyncio.create_task(_pump(reader, tail))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout=timeout_s)
        except TimeoutError:
            timed_out = True
            await _stop_group(proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), timeout=EOF_GRACE_S)
    except BaseException:
        # Cancelled (the step was abandoned): the hook must not run on unseen.
        await asyncio.shield(_stop_group(proc))
        raise
    finally:
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump
        transport.close()
    took = time.monotonic() - started
    output = tail.text()
    code = proc.returncode
    if timed_out:
        reason = (f"{hook} timed out after {timeout_s:g}s; its process group was killed")
        return HookResult(hook, False, reason, code, True, took, output, tail.total)
    if code == 0:
        return HookResult(hook, True, f"{hook} succeeded in {took:.1f}s", 0, False, took,
                          output, tail.total)
    last = _last_line(output)
    what = f"killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
    reason = f"{hook} {what}" + (f": {last}" if last else "")
    return HookResult(hook, False, " ".join(reason.split()), code, False, took, output,
                      tail.total)
