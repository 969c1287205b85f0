"""Keys that trip up path-based libraries: every one is listed, copied and
verified, or reported as a failure naming it — never a crashed listing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crosswind.model import Direction
from crosswind.sync.objects import options_from_config, sync_objects
from crosswind.sync.report import sync_report

pytestmark = pytest.mark.integration

ODD = ["a//b", "dir/", "/lead", "x/./y", "x/../y", "sp ace", "pct%2Fx", "q?x=1", "hash#1",
       "tab\tx", "a\\b", "ünï/çødé ✈", "emoji/😀/x"]


def test_odd_s3_keys_reach_azure_and_come_back(make_env: Any) -> None:
    env = make_env()
    s3: Any = env.s3
    for i, key in enumerate(ODD):
        s3.put_object(Bucket=env.bucket, Key=key, Body=f"body {i}".encode())
    d = Direction.AWS_TO_AZURE
    opts = options_from_config(env.config, d)
    report = sync_report(asyncio.run(sync_objects(env.config, d, opts)))
    copied = {b.name: env.container.download_blob(b.name).readall()
              for b in env.container.list_blobs()}
    failed = {f["key"]: f["reason"] for f in report["failures"]}
    # Every key is accounted for: copied with its bytes, or failed with a reason.
    assert set(copied) | set(failed) == set(ODD), report
    # Azure would store "\\" as "/": refused, with a reason naming the key.
    assert "a\\b" in failed and "stores" in failed["a\\b"]
    for i, key in enumerate(ODD):
        if key in copied:
            assert copied[key] == f"body {i}".encode()
    assert report["listed"]["source"] == len(ODD)

    # And back into a fresh bucket: Azure listing -> S3 writes.
    back = make_env()
    for key, data in copied.items():
        back.container.upload_blob(key, data)
    d = Direction.AZURE_TO_AWS
    report = sync_report(asyncio.run(sync_objects(back.config, d,
                                                  options_from_config(back.config, d))))
    assert report["status"] == "succeeded", report["failures"]
    got = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=back.bucket):
        for o in page.get("Contents", []):
            got[o["Key"]] = s3.get_object(Bucket=back.bucket, Key=o["Key"])["Body"].read()
    assert got == copied
