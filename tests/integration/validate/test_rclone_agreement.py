"""crosswind validate agrees with rclone check, an independent tool.

On the same pair of sides (a crosswind copy, then objects deleted, added,
resized, corrupted and re-tagged behind crosswind's back) the sets must be
equal: rclone's "missing on destination" = our missing_on_destination, its
"missing on source" = our extra_on_destination, its "differ" = our size and
hash mismatches. rclone does not compare user metadata, so our metadata
mismatches are objects rclone calls identical. By listings (MD5) and by bytes
(rclone --download, our --deep), in both directions.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest

from crosswind.model import Direction
from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto
from crosswind.rig.rclone import AzureSasRemote, CheckResult, Rclone, S3Remote, container_sas_url
from crosswind.validate.findings import Kind
from tests.integration.validate.rig import (
    A2W,
    W2A,
    all_findings,
    inject,
    put_source,
    run_validate,
    sync,
)

pytestmark = pytest.mark.integration

PLAN = [None] * 14 + [Kind.MISSING] * 3 + [Kind.EXTRA] * 2 + [Kind.SIZE] * 2 + [Kind.HASH] * 3 \
    + [Kind.METADATA] * 2


def rclone_check(azurite: Azurite, moto: Moto, env: Any, direction: Direction,
                 download: bool) -> CheckResult:
    container = env.container.container_name
    sas = container_sas_url(azurite.blob_url, AZURITE_ACCOUNT, AZURITE_KEY, container)
    rc = Rclone(AzureSasRemote(sas), S3Remote("test", "test", moto.endpoint))
    az, s3 = f"az:{container}", f"s3:{env.bucket}"
    src, dst = (az, s3) if direction is A2W else (s3, az)
    return asyncio.run(rc.check(src, dst, download=download))


@pytest.mark.parametrize("direction", [A2W, W2A], ids=["azure-to-aws", "aws-to-azure"])
def test_same_missing_and_differ_sets_as_rclone(
    make_env: Callable[..., Any], azurite: Azurite, moto: Moto, direction: Direction
) -> None:
    env = make_env()
    names = [f"events/2026/11/{i % 3:02d}/flight-{i:03d}-ü.json" for i in range(len(PLAN))]
    for i, name in enumerate(names):
        put_source(env, direction, name, os.urandom(200 + 37 * i), {"seq": str(i)})
    sync(env, direction)
    for name, kind in zip(names, PLAN, strict=True):
        inject(env, direction, name, kind)

    def ours(kinds: set[Kind], found: set[tuple[str, str]]) -> set[str]:
        return {key for k, key in found if Kind(k) in kinds}

    for deep in (False, True):
        report = run_validate(env, direction=direction, full=True, deep=deep)
        found = all_findings(env, report["run_id"])
        theirs = rclone_check(azurite, moto, env, direction, download=deep)
        assert theirs.errors == () and theirs.hashes_unchecked == 0
        assert ours({Kind.MISSING}, found) == set(theirs.missing_on_dst)
        assert ours({Kind.EXTRA}, found) == set(theirs.missing_on_src)
        assert ours({Kind.SIZE, Kind.HASH}, found) == set(theirs.differ)
        # Metadata is ours alone: rclone sees those objects as identical.
        assert ours({Kind.METADATA}, found) <= set(theirs.matched)
        # And the sets are not trivially empty.
        assert len(theirs.missing_on_dst) == 3 and len(theirs.differ) == 5
        assert len(ours({Kind.METADATA}, found)) == 2
