"""The transfer's limits on the rig: the memory budget survives failures, and the
single-request / parts boundary is crosswind's own decision on every backend.

Objects are as small as each boundary allows; thresholds are lowered through
the config where the boundary is crosswind's. The Azure SDK's own 64 MiB
single-put boundary is crossed once with a real object just above it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest

from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncResult, SyncRun
from crosswind.sync.objects import options_from_config
from crosswind.sync.report import sync_report
from tests.faults import CorruptingStore
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
A2W = Direction.AZURE_TO_AWS
W2A = Direction.AWS_TO_AZURE


def _run(env: Env, direction: Direction, corrupt: set[str] | None = None,
         timeout: float = 45) -> tuple[SyncResult, int, int]:
    """One run through the engine; (result, budget free after, budget total).
    ``corrupt``: destination writes of these keys get a byte flipped."""

    async def go() -> tuple[SyncResult, int, int]:
        src = await open_object_store(env.config, direction.source_side)
        dst = await open_object_store(env.config, direction.destination_side)
        faulty: Any = CorruptingStore(dst, corrupt) if corrupt is not None else dst
        state = StateStore(env.config.state_dir)
        try:
            run = SyncRun(src, faulty, state, options_from_config(env.config, direction))
            # A leak shows as a hang: fail with a clear message instead.
            try:
                result = await asyncio.wait_for(run.run(), timeout)
            except TimeoutError:
                pytest.fail(f"the run hung; budget free {run.budget.free} of "
                            f"{run.budget.total}")
            return result, run.budget.free, run.budget.total
        finally:
            state.close()
            await src.close()
            await dst.close()

    return asyncio.run(go())


@pytest.mark.timeout(120)
def test_failed_parts_release_the_memory_budget(make_env: Any) -> None:
    """Issue 15 #4: parts whose upload fails verification leaked their budget;
    after the retries the run waited forever for bytes nobody would give back."""
    env = make_env(concurrency=1, multipart_threshold=5 * MiB, part_size=5 * MiB,
                   part_concurrency=2, memory_budget=16 * MiB)
    env.container.upload_blob("a-bad.bin", os.urandom(30 * MiB))
    good = os.urandom(12 * MiB)
    env.container.upload_blob("b-good.bin", good)

    result, free, total = _run(env, A2W, corrupt={"a-bad.bin"})
    report = sync_report(result)
    assert free == total, f"budget leaked: {free} of {total} free"
    assert report["failed"]["count"] == 1, report
    assert report["failures"][0]["key"] == "a-bad.bin"
    assert report["failures"][0]["kind"] == "IntegrityError"
    assert report["copied"]["count"] == 1
    s3: Any = env.s3
    body = s3.get_object(Bucket=env.bucket, Key="b-good.bin")["Body"].read()
    assert hashlib.md5(body).digest() == hashlib.md5(good).digest()
    assert s3.list_multipart_uploads(Bucket=env.bucket).get("Uploads", []) == []


def _put_source(env: Env, direction: Direction, key: str, body: bytes) -> None:
    if direction is A2W:
        env.container.upload_blob(key, body, overwrite=True)
    else:
        env.s3.put_object(Bucket=env.bucket, Key=key, Body=body)  # type: ignore[attr-defined]


def _written_whole(env: Env, direction: Direction, key: str) -> tuple[bool, str]:
    """(written in one request?, MD5 of the destination's bytes)."""
    if direction is A2W:
        s3: Any = env.s3
        etag = s3.head_object(Bucket=env.bucket, Key=key)["ETag"].strip('"')
        body = s3.get_object(Bucket=env.bucket, Key=key)["Body"].read()
        return "-" not in etag, hashlib.md5(body).hexdigest()
    bc = env.container.get_blob_client(key)
    committed, _ = bc.get_block_list("committed")
    return not committed, hashlib.md5(bc.download_blob().readall()).hexdigest()


def _check_boundary(env: Env, direction: Direction, sizes: dict[int, bool]) -> None:
    """Objects of each size (size -> expected 'one request') copy verified, the way expected."""
    bodies = {f"b/{size:012d}": os.urandom(size) for size in sizes}
    for key, body in bodies.items():
        _put_source(env, direction, key, body)
    result, free, total = _run(env, direction)
    assert result.status == "succeeded", result.failures
    assert result.stats.copied.count == len(bodies) and free == total
    for size, whole in sizes.items():
        key = f"b/{size:012d}"
        assert _written_whole(env, direction, key) == (
            whole, hashlib.md5(bodies[key]).hexdigest()), (size, whole)


@pytest.mark.parametrize("direction", [A2W, W2A], ids=["azure-to-aws", "aws-to-azure"])
def test_threshold_boundary_is_crosswinds(make_env: Any, direction: Direction) -> None:
    """Below ``multipart_threshold``: one request; at and above it: parts."""
    t = 5 * MiB
    env = make_env(multipart_threshold=t, part_size=5 * MiB, memory_budget=32 * MiB)
    _check_boundary(env, direction, {t - 1: True, t: False, t + 1: False})


@pytest.mark.parametrize("direction", [A2W, W2A], ids=["azure-to-aws", "aws-to-azure"])
def test_objects_larger_than_the_budget_stream_in_one_request(make_env: Any,
                                                              direction: Direction) -> None:
    """Below the threshold an object streams in one request: only a chunk is held,
    so the budget no longer decides one request or parts (it did while objects
    were held whole). Into Azure the source's MD5 is known (single-part S3
    objects), so Put Blob verifies the stream by Content-MD5."""
    b = 16 * MiB
    env = make_env(memory_budget=b, part_size=5 * MiB, part_concurrency=2)
    _check_boundary(env, direction, {b - 1: True, b: True, 2 * b + 1: True})


def test_source_without_md5_goes_to_azure_in_blocks(make_env: Any) -> None:
    """A multipart S3 object has no MD5 before it is read, and Put Blob verifies
    only a Content-MD5 sent first: such objects go as verified blocks instead
    (each block's MD5 checked by Azure, the whole MD5 computed on the way)."""
    env = make_env(part_size=5 * MiB)
    s3: Any = env.s3
    body = os.urandom(11 * MiB)
    up = s3.create_multipart_upload(Bucket=env.bucket, Key="mp.bin")
    parts = []
    for n, start in enumerate(range(0, len(body), 6 * MiB), 1):
        r = s3.upload_part(Bucket=env.bucket, Key="mp.bin", UploadId=up["UploadId"],
                           PartNumber=n, Body=body[start:start + 6 * MiB])
        parts.append({"ETag": r["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket=env.bucket, Key="mp.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    result, free, total = _run(env, W2A)
    assert result.status == "succeeded", result.failures
    assert free == total
    assert _written_whole(env, W2A, "mp.bin") == (False, hashlib.md5(body).hexdigest())


@pytest.mark.timeout(240)
@pytest.mark.parametrize("direction", [W2A, A2W], ids=["aws-to-azure", "azure-to-aws"])
def test_just_above_the_azure_sdks_single_put_size(make_env: Any, direction: Direction) -> None:
    """Issue 15 #7: the Azure SDK's upload_blob switches to staged blocks above its
    max_single_put_size (64 MiB) while crosswind sent the whole object's MD5, so
    every S3 object between 64 MiB and the multipart threshold failed. With the
    default threshold (512 MiB), 64 MiB + 1 byte is one request either way."""
    env = make_env()
    _check_boundary(env, direction, {64 * MiB + 1: True})
