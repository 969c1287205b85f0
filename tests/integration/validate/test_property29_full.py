"""Property 29 on the real rig, every class: objects, metadata rows and the
join on both sides.

Start from two equal sides (Azure Blob + Azure Table copied to S3 + DocumentDB
by crosswind's own engines), with one object per row and the row keys parsed
from the object names. Each object/row pair then gets one random fault,
applied with the native SDKs behind crosswind's back (or, for the three join
classes, seeded before the copy). Every fault has exact consequences, which
the test derives (a document deleted at the destination is a missing row
*and*, on the AWS side, an object without its row). ``crosswind validate
--full`` must report exactly those findings, nothing more, nothing less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from azure.storage.blob import ContentSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crosswind.entities import Edm, Entity, Prop, doc_id
from crosswind.keys import KeySpec
from crosswind.metasync.context import MetaOptions
from crosswind.metasync.runner import sync_metadata
from crosswind.rig.emulators import Moto
from crosswind.validate.findings import Check, Kind
from tests.integration.validate.rig import (
    A2W,
    Side,
    findings_by_check,
    run_validate,
    sync,
    with_bucket,
)

pytestmark = pytest.mark.integration

OBJ, M, JZ, JW = Check.OBJECTS, Check.METADATA, Check.JOIN_AZURE, Check.JOIN_AWS
FAULTS = ["none", "obj-missing", "obj-extra", "obj-size", "obj-hash", "obj-metadata",
          "row-missing", "row-extra", "row-metadata", "orphan-object", "orphan-row",
          "unparseable"]


def name_of(i: int) -> str:
    return f"events/2026/11/{10 + i % 3}/LH{400 + i}/FRA-JFK/dep-ev{i}.json"


def findings_of(fault: str, name: str, row: str) -> set[tuple[str, str, str]]:
    """What validation must report for one pair with this fault."""
    def f(check: Check, kind: Kind, key: str) -> tuple[str, str, str]:
        return (check.value, kind.value, key)

    return {
        "none": set(),
        "obj-missing": {f(OBJ, Kind.MISSING, name), f(JW, Kind.ORPHAN_ROW, row)},
        "obj-extra": {f(OBJ, Kind.EXTRA, name), f(JZ, Kind.ORPHAN_ROW, row)},
        "obj-size": {f(OBJ, Kind.SIZE, name)},
        "obj-hash": {f(OBJ, Kind.HASH, name)},
        "obj-metadata": {f(OBJ, Kind.METADATA, name)},
        "row-missing": {f(M, Kind.MISSING, row), f(JW, Kind.ORPHAN_OBJECT, name)},
        "row-extra": {f(M, Kind.EXTRA, row), f(JZ, Kind.ORPHAN_OBJECT, name)},
        "row-metadata": {f(M, Kind.METADATA, row)},
        "orphan-object": {f(JZ, Kind.ORPHAN_OBJECT, name), f(JW, Kind.ORPHAN_OBJECT, name)},
        "orphan-row": {f(JZ, Kind.ORPHAN_ROW, row), f(JW, Kind.ORPHAN_ROW, row)},
        "unparseable": {f(JZ, Kind.UNPARSEABLE, name), f(JW, Kind.UNPARSEABLE, name)},
    }[fault]


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(faults=st.lists(st.sampled_from(FAULTS), min_size=3, max_size=10))
def test_every_class_reported_exactly(make_meta_env: Callable[..., Any], s3_client: Any,
                                      moto: Moto, faults: list[str]) -> None:
    env = with_bucket(make_meta_env(), moto, s3_client)
    spec = KeySpec.from_config(env.config.keys)
    expected: set[tuple[str, str, str]] = set()
    pairs = []
    for i, fault in enumerate(faults):
        name = name_of(i) if fault != "unparseable" else f"manifests/batch-{i}.csv"
        keys = spec.keys(name_of(i))
        row = Entity(keys.partition_key, keys.row_key,
                     {"gate": Prop(Edm.STRING, f"B{i}"), "seats": Prop(Edm.INT32, 100 + i)})
        # Seeded faults: an object without a row, a row without an object, a bad name.
        if fault != "orphan-row":
            env.container.upload_blob(name, f'{{"event": {i}}}'.encode(), metadata={"seq": str(i)},
                                      content_settings=ContentSettings("application/json"))
        if fault not in ("orphan-object", "unparseable"):
            env.put_rows(row)
        pairs.append((fault, name, row))
        expected |= findings_of(fault, name, doc_id(*row.key))

    sync(env, A2W)
    meta = asyncio.run(sync_metadata(env.config, MetaOptions.from_config(env.config, A2W,
                                                                         full=True)))
    assert meta.ok, meta.report
    clean = run_validate(env, direction=A2W, checks=frozenset(Check), full=True)
    seeded = {x for (fault, name, row) in pairs
              if fault in ("orphan-object", "orphan-row", "unparseable")
              for x in findings_of(fault, name, doc_id(*row.key))}
    assert findings_by_check(env, clean["run_id"]) == seeded

    s3 = Side(env, azure=False)
    for fault, name, row in pairs:
        did = doc_id(*row.key)
        if fault == "obj-missing":
            s3.delete(name)
        elif fault == "obj-extra":
            env.container.delete_blob(name)
        elif fault == "obj-size":
            s3.rewrite(name, s3.read(name)[0] + b" ")
        elif fault == "obj-hash":
            body = s3.read(name)[0]
            s3.rewrite(name, body[:-1] + bytes([body[-1] ^ 1]))
        elif fault == "obj-metadata":
            s3.set_metadata(name, "seq", "tampered")
        elif fault == "row-missing":
            env.coll.delete_one({"_id": did})
        elif fault == "row-extra":
            env.table.delete_entity(row.partition_key, row.row_key)
        elif fault == "row-metadata":
            env.coll.update_one({"_id": did}, {"$set": {"gate": "tampered"}})

    report = run_validate(env, direction=A2W, checks=frozenset(Check), full=True)
    assert findings_by_check(env, report["run_id"]) == expected
    # The figures follow from the same faults.
    m = report["checks"]["metadata"]
    n_rows = sum(1 for f in faults if f not in ("orphan-object", "unparseable"))
    assert m["source_items"] == n_rows - faults.count("row-extra")
    assert m["failed"] == sum(faults.count(f) for f in ("row-missing", "row-extra",
                                                        "row-metadata"))
    jw = report["checks"]["join-aws"]
    assert jw["source_items"] == sum(1 for f in faults if f not in ("orphan-row", "obj-missing"))
