"""rclone, an independent tool, agrees that crosswind's copy is complete and exact.

A mixed estate (small objects, objects large enough to go in parts, user
metadata, non-ASCII names) is synced with crosswind, then ``rclone check``
compares container and bucket by MD5 from the listings and, with
``--download``, byte by byte. The negative control corrupts and deletes
objects on the replica behind crosswind's back and requires rclone to name
exactly those, so a check that always passes would fail here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from azure.storage.blob import BlobBlock, ContentSettings

from crosswind.model import Direction
from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto
from crosswind.rig.rclone import AzureSasRemote, CheckResult, Rclone, S3Remote, container_sas_url
from crosswind.sync.objects import options_from_config, sync_objects

pytestmark = pytest.mark.integration

MiB = 1024 * 1024

SMALL = {
    "events/2024/01/01/LH400-0001.json": b'{"flight":"LH400","seq":1}',
    "events/2024/01/01/LH400-0002.json": b'{"flight":"LH400","seq":2}' * 40,
    "events/2024/01/02/AF1234-0001.json": os.urandom(4096),
    "vols/été/départ-Zürich.json": "{\"ville\": \"Zürich\"}".encode(),
    "航班/东京-羽田.json": os.urandom(1000),
    "with space/and+plus=equals.bin": os.urandom(3000),
    "empty.txt": b"",
}
#: single-shot upload: Azure computed its Content-MD5; goes in parts to S3
LARGE_WITH_MD5 = "large/flight-recorder-21MiB.bin"
#: committed from blocks: no Content-MD5 at the source, as on Azure
LARGE_FROM_BLOCKS = "large/ré-assembled-20MiB.bin"


def _rclone(azurite: Azurite, moto: Moto, container: str) -> Rclone:
    sas = container_sas_url(azurite.blob_url, AZURITE_ACCOUNT, AZURITE_KEY, container)
    return Rclone(AzureSasRemote(sas), S3Remote("test", "test", moto.endpoint))


def _seed(env: Any) -> dict[str, bytes]:
    data = dict(SMALL)
    for i, (key, body) in enumerate(SMALL.items()):
        env.container.upload_blob(
            key, body, metadata={"flightid": f"F{i}", "origin": "FRA"},
            content_settings=ContentSettings(content_type="application/json"),
        )
    big = os.urandom(21 * MiB)
    env.container.upload_blob(LARGE_WITH_MD5, big, metadata={"kind": "recorder"})
    data[LARGE_WITH_MD5] = big
    blocks = os.urandom(20 * MiB)
    bc = env.container.get_blob_client(LARGE_FROM_BLOCKS)
    ids = []
    for n in range(4):
        block_id = f"block-{n:04d}"
        bc.stage_block(block_id, blocks[n * 5 * MiB:(n + 1) * 5 * MiB])
        ids.append(BlobBlock(block_id))
    bc.commit_block_list(ids, metadata={"kind": "blocks"})
    data[LARGE_FROM_BLOCKS] = blocks
    return data


def _sync(env: Any, direction: Direction = Direction.AZURE_TO_AWS) -> None:
    result = asyncio.run(
        sync_objects(env.config, direction, options_from_config(env.config, direction))
    )
    assert result.ok, (result.status, result.error, result.failures)


def _check(rc: Rclone, src: str, dst: str, download: bool = False) -> CheckResult:
    return asyncio.run(rc.check(src, dst, download=download))


def test_rclone_check_finds_no_difference_after_a_sync(
    make_env: Callable[..., Any], azurite: Azurite, moto: Moto
) -> None:
    env = make_env(multipart_threshold=16 * MiB, part_size=8 * MiB)
    data = _seed(env)
    _sync(env)
    rc = _rclone(azurite, moto, env.bucket)
    az, s3 = f"az:{env.bucket}", f"s3:{env.bucket}"

    by_hash = _check(rc, az, s3)
    assert by_hash.ok, by_hash
    assert sorted(by_hash.matched) == sorted(data)
    # Both large objects went in parts: S3's ETag is no MD5 and rclone reads
    # no MD5 from crosswind's metadata, so it compares them by size only.
    # The byte-for-byte check below is the one that covers them.
    assert by_hash.hashes_unchecked == 2

    by_bytes = _check(rc, az, s3, download=True)
    assert by_bytes.ok, by_bytes
    assert sorted(by_bytes.matched) == sorted(data)

    # Negative control: change the replica behind crosswind's back.
    corrupt = "events/2024/01/02/AF1234-0001.json"
    gone = "vols/été/départ-Zürich.json"
    stray = "not-at-source.txt"
    flipped = bytes([data[corrupt][0] ^ 0xFF]) + data[corrupt][1:]  # same size, other bytes
    env.s3.put_object(Bucket=env.bucket, Key=corrupt, Body=flipped)
    env.s3.delete_object(Bucket=env.bucket, Key=gone)
    env.s3.put_object(Bucket=env.bucket, Key=stray, Body=b"x")

    for download in (False, True):
        found = _check(rc, az, s3, download=download)
        assert found.differ == (corrupt,), found
        assert found.missing_on_dst == (gone,), found
        assert found.missing_on_src == (stray,), found
        assert found.errors == ()
        assert len(found.matched) == len(data) - 2

    # crosswind repairs what it owns (the stray object is left: no --delete).
    _sync(env)
    repaired = _check(rc, az, s3, download=True)
    assert repaired.missing_on_src == (stray,)
    assert repaired.differ == () and repaired.missing_on_dst == ()


def test_rclone_check_after_reverse_sync_aws_to_azure(
    make_env: Callable[..., Any], azurite: Azurite, moto: Moto
) -> None:
    env = make_env(multipart_threshold=16 * MiB, part_size=8 * MiB)
    objects = dict(SMALL)
    objects["large/after-cutover-18MiB.bin"] = os.urandom(18 * MiB)
    for key, body in objects.items():
        env.s3.put_object(Bucket=env.bucket, Key=key, Body=body,
                          Metadata={"origin": "aws", "flightid": "F1"})
    _sync(env, Direction.AWS_TO_AZURE)
    rc = _rclone(azurite, moto, env.bucket)
    s3, az = f"s3:{env.bucket}", f"az:{env.bucket}"

    by_hash = _check(rc, s3, az)
    assert by_hash.ok and sorted(by_hash.matched) == sorted(objects), by_hash
    # crosswind sets Content-MD5 on blobs it commits from blocks, so every
    # object here is compared by hash.
    assert by_hash.hashes_unchecked == 0
    by_bytes = _check(rc, s3, az, download=True)
    assert by_bytes.ok and sorted(by_bytes.matched) == sorted(objects), by_bytes

    victim = "航班/东京-羽田.json"
    body = objects[victim]
    env.container.upload_blob(victim, bytes([body[0] ^ 1]) + body[1:], overwrite=True)
    found = _check(rc, s3, az, download=True)
    assert found.differ == (victim,) and found.missing_on_dst == () and found.missing_on_src == ()
