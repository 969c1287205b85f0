"""Ctrl-C stops a sync at once (issue 15 #8): no queued copy starts after the
signal, the copies in flight are stopped, and the next run resumes.

Before the fix the engine's ``finally`` queued the workers' stop sentinels
behind the queued copies, so with 1 s per put, concurrency 2 and 60 objects,
a SIGINT at 1.5 s still started 8 more copies and the run took 6 s to end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crosswind.model import Direction, ObjectProps, PutMode, WriteReceipt
from crosswind.state import StateStore
from crosswind.stores.base import ObjectStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncRun
from crosswind.sync.objects import options_from_config
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

A2W = Direction.AZURE_TO_AWS
REPO = Path(__file__).resolve().parents[2]


@dataclass
class SlowPuts:
    """A destination whose every put takes ``delay`` seconds more; records when
    each put started (monotonic clock)."""

    inner: ObjectStore
    delay: float = 1.0
    started: list[float] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key: str, data: bytes, props: ObjectProps, *, md5: str,
                  mode: PutMode = PutMode.OVERWRITE, if_match: str | None = None
                  ) -> WriteReceipt:
        self.started.append(time.monotonic())
        await asyncio.sleep(self.delay)
        return await self.inner.put(key, data, props, md5=md5, mode=mode, if_match=if_match)


def seed(env: Env, n: int = 60) -> None:
    for i in range(n):
        env.container.upload_blob(f"ev/{i:03d}.json", b'{"i": %d}' % i)


def verified_count(env: Env) -> int:
    state = StateStore(env.config.state_dir)
    try:
        return len(list(state.iter_verified(A2W.value)))
    finally:
        state.close()


@pytest.mark.timeout(60)
def test_cancel_starts_no_queued_copy(make_env: Any) -> None:
    env = make_env(concurrency=2)
    seed(env)

    async def go() -> tuple[list[float], float, float, int, str]:
        src = await open_object_store(env.config, "azure")
        dst = SlowPuts(await open_object_store(env.config, "aws"))
        state = StateStore(env.config.state_dir)
        try:
            run = SyncRun(src, dst, state, options_from_config(env.config, A2W))  # type: ignore[arg-type]
            task = asyncio.create_task(run.run())
            await asyncio.sleep(1.5)
            in_flight = len(run._in_flight)
            cancelled_at = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            ended_at = time.monotonic()
            status = state.runs(limit=1)[0]["status"]
            return dst.started, cancelled_at, ended_at, in_flight, status
        finally:
            state.close()
            await src.close()
            await dst.inner.close()

    started, cancelled_at, ended_at, in_flight, status = asyncio.run(go())
    after = [t for t in started if t >= cancelled_at]
    assert in_flight == 2
    assert after == [], f"{len(after)} copies started after the cancel"
    assert ended_at - cancelled_at < 0.5, "the copies in flight were not stopped"
    assert status == "interrupted"
    done_before = verified_count(env)
    assert done_before <= 4  # 1.5 s at 2 × 1 s per put

    # The next run resumes: it copies the rest and nothing twice.
    opts = options_from_config(env.config, A2W)
    from crosswind.sync.objects import sync_objects

    result = asyncio.run(sync_objects(env.config, A2W, opts))
    assert result.status == "succeeded"
    assert result.stats.copied.count == 60 - done_before


CHILD = """
import asyncio, sys, time
from crosswind.config import load_config
from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncRun
from crosswind.sync.objects import options_from_config
from tests.integration.test_sync_interrupt import SlowPuts

async def main() -> None:
    cfg = load_config(sys.argv[1])
    src = await open_object_store(cfg, "azure")
    dst = SlowPuts(await open_object_store(cfg, "aws"))
    state = StateStore(cfg.state_dir)
    try:
        print("ready", flush=True)
        await SyncRun(src, dst, state, options_from_config(cfg, Direction.AZURE_TO_AWS)).run()
    finally:
        # Wall-clock times: comparable with the parent's.
        offset = time.time() - time.monotonic()
        print("started", *(t + offset for t in dst.started), flush=True)
        state.close()
        await src.close()
        await dst.inner.close()

asyncio.run(main())
"""


@pytest.mark.timeout(60)
def test_sigint_starts_no_queued_copy(make_env: Any) -> None:
    """The same with a real SIGINT to a process (asyncio.run turns it into a cancel)."""
    env = make_env(concurrency=2)
    seed(env)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(env.config_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    signalled = time.time()
    proc.send_signal(signal.SIGINT)
    out, errs = proc.communicate(timeout=30)
    ended = time.time()
    assert proc.returncode != 0 and "KeyboardInterrupt" in errs
    line = next(ln for ln in out.splitlines() if ln.startswith("started"))
    starts = [float(t) for t in line.split()[1:]]
    assert 1 <= len(starts) <= 4
    assert [t for t in starts if t > signalled + 0.05] == []
    assert ended - signalled < 3, "the run went on after the signal"
