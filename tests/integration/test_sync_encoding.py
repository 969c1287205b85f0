"""Objects stored with ``Content-Encoding: gzip`` are copied as stored (issue 15 #5).

The Azure SDK gunzips such a blob unless told not to, so its size check failed
on every run ("read 1200 bytes from the source, its listing says 43") for
every key obstore cannot address (``a//b``) and, with ``credential =
"default"``, for every blob. Both directions, whole and in parts (ranged
reads), through the fast path and the SDK path, and ``validate --deep``.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from typing import Any

import pytest
from azure.storage.blob import ContentSettings

from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncResult, SyncRun
from crosswind.sync.objects import options_from_config
from crosswind.validate.objects import ObjectCheckOptions, check_objects
from crosswind.validate.tally import CheckTally
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
A2W = Direction.AZURE_TO_AWS
W2A = Direction.AWS_TO_AZURE


def gz(text: bytes, size: int | None = None) -> bytes:
    """gzip of ``text``; with ``size``, incompressible filler makes it that long-ish."""
    body = text if size is None else text + os.urandom(size)
    return gzip.compress(body, compresslevel=1, mtime=0)


# A small one under a key obstore cannot hold, a small one under a normal key,
# and one above the (lowered) multipart threshold, read in ranges.
ESTATE = {
    "gz//odd-key.json": gz(b'{"leg": 1}' * 300),
    "gz/event.json": gz(b'{"leg": 2}' * 300),
    "gz/archive.json.gz": gz(b"archive", 6 * MiB),
}


def run(env: Env, direction: Direction, *, sdk_reads: bool = False) -> tuple[SyncResult,
                                                                            CheckTally]:
    """A sync, then a full deep validation of the same pair.
    ``sdk_reads``: the Azure store reads through the SDK only (credential = "default")."""

    async def go() -> tuple[SyncResult, CheckTally]:
        src = await open_object_store(env.config, direction.source_side)
        dst = await open_object_store(env.config, direction.destination_side)
        for store in (src, dst):
            if sdk_reads and hasattr(store, "fast_listing"):
                store.fast = None  # type: ignore[attr-defined]
        state = StateStore(env.config.state_dir)
        try:
            result = await SyncRun(src, dst, state,
                                   options_from_config(env.config, direction)).run()
            tally = await check_objects(src, dst, ObjectCheckOptions(sample=None, deep=True),
                                        lambda findings: None)
            return result, tally
        finally:
            state.close()
            await src.close()
            await dst.close()

    return asyncio.run(go())


def blob_bytes(env: Env, key: str) -> bytes:
    # The test's own reads must not decode either.
    return env.container.download_blob(key, decompress=False).readall()  # type: ignore[no-any-return]


def assert_clean(result: SyncResult, tally: CheckTally, copied: int) -> None:
    assert result.status == "succeeded", result.failures
    assert result.stats.copied.count == copied
    assert tally.failed == 0 and not tally.kinds, tally.examples
    assert tally.coverage["deep_read"] == len(ESTATE)


@pytest.mark.parametrize("sdk_reads", [False, True], ids=["fast-reads", "sdk-reads"])
def test_gzip_blobs_reach_s3_as_stored(make_env: Any, sdk_reads: bool) -> None:
    env = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=32 * MiB)
    for key, body in ESTATE.items():
        env.container.upload_blob(key, body, content_settings=ContentSettings(
            content_type="application/json", content_encoding="gzip"))
    result, tally = run(env, A2W, sdk_reads=sdk_reads)
    assert_clean(result, tally, len(ESTATE))
    s3: Any = env.s3
    for key, body in ESTATE.items():
        got = s3.get_object(Bucket=env.bucket, Key=key)
        assert got["ContentEncoding"] == "gzip", key
        assert got["Body"].read() == body, key
    assert s3.head_object(Bucket=env.bucket, Key="gz/archive.json.gz")["ETag"].endswith('-2"')


@pytest.mark.parametrize("sdk_reads", [False, True], ids=["fast-reads", "sdk-reads"])
def test_gzip_objects_reach_azure_as_stored(make_env: Any, sdk_reads: bool) -> None:
    env = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=32 * MiB)
    s3: Any = env.s3
    for key, body in ESTATE.items():
        s3.put_object(Bucket=env.bucket, Key=key, Body=body, ContentEncoding="gzip",
                      ContentType="application/json")
    result, tally = run(env, W2A, sdk_reads=sdk_reads)
    assert_clean(result, tally, len(ESTATE))
    for key, body in ESTATE.items():
        assert blob_bytes(env, key) == body, key
        p = env.container.get_blob_client(key).get_blob_properties()
        assert p.content_settings.content_encoding == "gzip", key
