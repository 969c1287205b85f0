"""Streamed copies on the rig: bytes flow from the source GET into one
destination request as they are read (sync/stream.py, put_stream).

What must hold whatever happens mid-stream: a corrupted byte is caught and
nothing is recorded or left visible; a source that changes (or breaks off)
mid-stream is read again and the new version copied; a process killed
mid-stream leaves no object and the next run converges; and memory is a
chunk per copy, not the object.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from crosswind.model import Direction
from crosswind.rig.proxy import FaultProxy, Faults
from crosswind.state import StateStore
from crosswind.stores.base import ObjectReader
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncResult, SyncRun
from crosswind.sync.objects import options_from_config
from tests.faults import CorruptingStore
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
A2W = Direction.AZURE_TO_AWS
W2A = Direction.AWS_TO_AZURE


def _put_source(env: Env, direction: Direction, key: str, body: bytes) -> None:
    if direction is A2W:
        env.container.upload_blob(key, body, overwrite=True)
    else:
        env.s3.put_object(Bucket=env.bucket, Key=key, Body=body)  # type: ignore[attr-defined]


def _destination(env: Env, direction: Direction, key: str) -> bytes | None:
    try:
        if direction is A2W:
            return bytes(env.s3.get_object(  # type: ignore[attr-defined]
                Bucket=env.bucket, Key=key)["Body"].read())
        return bytes(env.container.get_blob_client(key).download_blob().readall())
    except Exception:
        return None


def _recorded(env: Env, direction: Direction) -> dict[str, str]:
    state = StateStore(env.config.state_dir)
    try:
        return {v.key: v.md5 for v in state.iter_verified(direction.value, "")}
    finally:
        state.close()


def _run(env: Env, direction: Direction, wrap_src: Any = None, wrap_dst: Any = None
         ) -> tuple[SyncResult, SyncRun]:
    async def go() -> tuple[SyncResult, SyncRun]:
        src = await open_object_store(env.config, direction.source_side)
        dst = await open_object_store(env.config, direction.destination_side)
        state = StateStore(env.config.state_dir)
        try:
            run = SyncRun(wrap_src(src) if wrap_src else src,
                          wrap_dst(dst) if wrap_dst else dst,
                          state, options_from_config(env.config, direction))
            return await asyncio.wait_for(run.run(), 120), run
        finally:
            state.close()
            await src.close()
            await dst.close()

    return asyncio.run(go())


@pytest.mark.parametrize("direction", [A2W, W2A], ids=["azure-to-aws", "aws-to-azure"])
def test_corruption_mid_stream_is_caught_and_nothing_recorded(make_env: Any,
                                                              direction: Direction) -> None:
    """A byte flipped after hashing, near the end of a streamed body: S3's ETag
    (moto checks no Content-MD5) or Azure's Content-MD5 check catches it; the
    object is not recorded and no corrupt object stays at the destination."""
    env = make_env(attempts=2)
    body = os.urandom(3 * MiB + 5)
    _put_source(env, direction, "bad.bin", body)
    faulty: list[CorruptingStore] = []

    def corrupt(dst: Any) -> CorruptingStore:
        faulty.append(CorruptingStore(dst, {"bad.bin"}))
        return faulty[0]

    result, run = _run(env, direction, wrap_dst=corrupt)
    assert faulty[0].corrupted == ["bad.bin", "bad.bin"]  # streamed, then retried
    assert result.stats.failed.count == 1, result.failures
    assert result.failures[0]["kind"] == "IntegrityError"
    assert "bad.bin" not in _recorded(env, direction)
    assert _destination(env, direction, "bad.bin") is None
    assert run.budget.free == run.budget.total
    # Without the fault the next run copies it, verified.
    result, _ = _run(env, direction)
    assert result.stats.copied.count == 1
    assert _destination(env, direction, "bad.bin") == body
    assert _recorded(env, direction)["bad.bin"] == hashlib.md5(body).hexdigest()


@dataclass
class _ChangingReader:
    inner: ObjectReader
    on_first_chunk: Any

    @property
    def meta(self) -> Any:
        return self.inner.meta

    async def chunks(self) -> AsyncIterator[bytes]:
        n = 0
        async for chunk in self.inner.chunks():
            yield chunk
            n += 1
            if n == 1:
                # The source is overwritten mid-stream and the connection drops.
                self.on_first_chunk()
                return

    async def read_all(self) -> bytes:
        return await self.inner.read_all()


@dataclass
class _ChangingSource:
    inner: Any
    change: Any
    changed: bool = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, prefix: str = "") -> Any:
        return self.inner.list(prefix)

    async def get(self, key: str, **kw: Any) -> ObjectReader:
        reader = await self.inner.get(key, **kw)
        if self.changed:
            return reader  # type: ignore[no-any-return]

        def change() -> None:
            self.changed = True
            self.change()

        return _ChangingReader(reader, change)


@pytest.mark.parametrize("direction", [A2W, W2A], ids=["azure-to-aws", "aws-to-azure"])
def test_source_that_changes_mid_stream_is_read_again(make_env: Any,
                                                      direction: Direction) -> None:
    """The stream stops short after the source was overwritten: the write never
    completes (a short body is never stored), the pinned re-read finds a new
    version (412), and the new version is copied and recorded."""
    env = make_env()
    old, new = os.urandom(4 * MiB), os.urandom(5 * MiB)
    _put_source(env, direction, "moving.bin", old)
    result, _ = _run(env, direction, wrap_src=lambda src: _ChangingSource(
        src, lambda: _put_source(env, direction, "moving.bin", new)))
    assert result.status == "succeeded", result.failures
    assert result.stats.copied.count == 1 and result.stats.retries >= 1
    assert _destination(env, direction, "moving.bin") == new
    assert _recorded(env, direction)["moving.bin"] == hashlib.md5(new).hexdigest()


def test_sigkill_mid_stream_leaves_nothing_and_the_next_run_converges(make_env: Any) -> None:
    """The upload is slowed by a proxy so that the process dies with the body half
    sent: S3 stores no partial PutObject, nothing is recorded, and the next run
    copies the object whole and verified."""
    env = make_env()
    body = os.urandom(24 * MiB)
    env.container.upload_blob("big.bin", body)
    text = env.config_path.read_text()
    endpoint = text.split('endpoint_url = "', 1)[1].split('"', 1)[0]
    proxy = FaultProxy(endpoint, Faults(upload_bytes_per_s=4 * MiB)).start()
    try:
        slow = env.config_path.with_name("slow-" + env.config_path.name)
        slow.write_text(text.replace(endpoint, proxy.url))
        proc = subprocess.Popen(
            [sys.executable, "-m", "crosswind", "sync", "objects", "--config", str(slow),
             "--direction", "azure-to-aws"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=env.tmp)
        deadline = time.monotonic() + 60
        while proxy.faults.body_bytes < 6 * MiB and time.monotonic() < deadline:
            time.sleep(0.02)
        sent = proxy.faults.body_bytes
        assert 6 * MiB <= sent < 24 * MiB, f"{sent} bytes of the body sent when killed"
        assert proc.poll() is None, "the copy finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proxy.stop()
    s3: Any = env.s3
    assert s3.list_objects_v2(Bucket=env.bucket).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=env.bucket).get("Uploads", []) == []
    assert "big.bin" not in _recorded(env, A2W)
    result, _ = _run(env, A2W)
    assert result.stats.copied.count == 1, result.failures
    assert _destination(env, A2W, "big.bin") == body


# The CLI leaves through its exit handlers (see cli/app.py), so the probe is one.
# VmHWM is this process image's own peak (ru_maxrss would carry the forking
# test process's peak across exec).
MEMORY_PROBE = textwrap.dedent("""
    import atexit, sys
    from crosswind.cli.app import main

    def peak() -> None:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                print(int(line.split()[1]) // 1024, file=sys.stderr, flush=True)

    atexit.register(peak)
    sys.argv = ["crosswind", *sys.argv[1:]]
    main()
""")


@pytest.mark.timeout(240)
def test_streamed_copy_memory_is_a_chunk_not_the_object(make_env: Any) -> None:
    """A 96 MiB object (below the multipart threshold) copied by the CLI: its
    peak RSS stays far below the object's size, and the budget held at most two
    chunks (it used to hold the object whole: 96 MiB plus copies)."""
    env = make_env(memory_budget=512 * MiB)
    body = os.urandom(96 * MiB)
    env.container.upload_blob("huge.bin", body, max_concurrency=4)
    del body
    p = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, "sync", "objects", "--config",
         str(env.config_path), "--direction", "azure-to-aws", "--json"],
        capture_output=True, text=True, cwd=env.tmp, timeout=200)
    assert p.returncode == 0, p.stderr[-2000:]
    peak_mb = int(p.stderr.strip().splitlines()[-1])
    # The interpreter with every SDK imported is about 90 MB on its own.
    assert peak_mb < 150, f"peak RSS {peak_mb} MB for a 96 MiB object"
    s3: Any = env.s3
    assert s3.head_object(Bucket=env.bucket, Key="huge.bin")["ContentLength"] == 96 * MiB

    # The same copy in-process (the destination object gone): what the budget saw.
    s3.delete_object(Bucket=env.bucket, Key="huge.bin")
    result, run = _run(env, A2W)
    assert result.stats.copied.count == 1
    assert run.budget.peak_held <= 2 * MiB, run.budget.peak_held


@pytest.mark.parametrize("direction", [A2W, W2A], ids=["azure-to-aws", "aws-to-azure"])
def test_streamed_copies_keep_headers_and_metadata(make_env: Any, direction: Direction) -> None:
    """A streamed copy (2 MiB) carries the five headers and the user metadata,
    mapped as a whole-object copy maps them (the streamed Put Blob once sent no
    metadata at all)."""
    from azure.storage.blob import ContentSettings

    from crosswind.props_compare import props_differences

    env = make_env()
    body = os.urandom(2 * MiB)
    headers = {"content_type": "application/json", "cache_control": "max-age=60",
               "content_language": "en-GB", "content_disposition": "inline"}
    md = {"flightno": "BA0117", "origin": "LHR"}
    if direction is A2W:
        env.container.upload_blob("m.json", body, metadata=md,
                                  content_settings=ContentSettings(**headers))
    else:
        env.s3.put_object(  # type: ignore[attr-defined]
            Bucket=env.bucket, Key="m.json", Body=body, Metadata=md,
            ContentType=headers["content_type"], CacheControl=headers["cache_control"],
            ContentLanguage=headers["content_language"],
            ContentDisposition=headers["content_disposition"])
    result, _ = _run(env, direction)
    assert result.stats.copied.count == 1, result.failures

    async def heads() -> list[str]:
        src = await open_object_store(env.config, direction.source_side)
        dst = await open_object_store(env.config, direction.destination_side)
        try:
            s, d = await src.head("m.json"), await dst.head("m.json")
            assert s.props is not None and d.props is not None
            return props_differences(s.props, d.props, dst.capabilities.metadata_flavor,
                                     "rename")
        finally:
            await src.close()
            await dst.close()

    assert asyncio.run(heads()) == []
    assert _destination(env, direction, "m.json") == body
