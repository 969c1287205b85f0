"""``validate objects --full --workers``: the closer looks on the Dask cluster give
the same figures and the same findings as one process, on the same estate."""

from __future__ import annotations

import asyncio
import difflib
import functools
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from distributed import Client

from crosswind.scaleout.spec import parse_workers
from crosswind.scaleout.validation import check_objects_distributed
from crosswind.validate.findings import Check, Kind
from crosswind.validate.run import ValidateOptions, validate
from tests.integration.conftest import Env
from tests.integration.validate.rig import A2W, all_findings, inject, put_source, sync

pytestmark = pytest.mark.integration

#: what differs between two validations of the same estate
_VOLATILE = {"run_id", "started_at", "finished_at", "duration_s", "crosswind_version",
             "examples", "seed", "throughput", "items_per_s"}


def strip(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: strip(v) for k, v in doc.items() if k not in _VOLATILE}
    if isinstance(doc, list):
        return [strip(v) for v in doc]
    return doc


def test_full_validation_on_workers_matches_one_process(
        scaled_env: Callable[..., Env], dask_cluster: Client) -> None:
    env = scaled_env("shard_objects = 6\n")
    for i in range(45):
        put_source(env, A2W, f"events/{i:03d}.json", b"{}" * (i + 1), {"seq": str(i)})
    sync(env, A2W)
    inject(env, A2W, "events/003.json", Kind.MISSING)
    inject(env, A2W, "events/007.json", Kind.HASH)
    inject(env, A2W, "events/011.json", Kind.METADATA)
    inject(env, A2W, "events/019.json", Kind.SIZE)
    env.s3.put_object(Bucket=env.bucket, Key="zz-extra.json", Body=b"{}")  # type: ignore[attr-defined]

    base = dict(direction=A2W, checks=frozenset({Check.OBJECTS}), full=True, seed=1)
    one = asyncio.run(validate(env.config, ValidateOptions(**base)))
    checker = functools.partial(check_objects_distributed, env.config, A2W,
                                parse_workers(dask_cluster.scheduler.address))
    many = asyncio.run(validate(env.config, ValidateOptions(**base, objects_checker=checker)))
    assert one["verdict"] == "fail"
    a, b = (json.dumps(strip(r), indent=1, sort_keys=True).splitlines() for r in (one, many))
    assert a == b, "\n".join(difflib.unified_diff(a, b, lineterm=""))
    cov = one["checks"]["objects"]["coverage"]
    assert cov["closer_look"] > 0  # S3 listings carry no metadata: every pair was HEADed
    assert all_findings(env, many["run_id"]) == all_findings(env, one["run_id"])
    kinds = {k for k, _ in all_findings(env, many["run_id"])}
    assert {"missing_on_destination", "hash_mismatch", "metadata_mismatch",
            "size_mismatch", "extra_on_destination"} <= kinds


def test_workers_without_full_is_refused(scaled_env: Callable[..., Env]) -> None:
    env = scaled_env()
    p = subprocess.run([sys.executable, "-m", "crosswind", "validate", "--config",
                        str(env.config_path), "--objects", "--workers", "local:2"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "--workers needs --full" in p.stderr


def test_full_validation_cli_on_local_workers(scaled_env: Callable[..., Env]) -> None:
    env = scaled_env()
    for i in range(12):
        put_source(env, A2W, f"v/{i:02d}", b"x" * i, {"seq": str(i)})
    sync(env, A2W)
    p = subprocess.run([sys.executable, "-m", "crosswind", "validate", "--config",
                        str(env.config_path), "--objects", "--full", "--workers", "local:2",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["verdict"] == "pass" and r["checks"]["objects"]["coverage"]["closer_look"] == 12
