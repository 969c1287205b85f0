"""The demo's row seeding, followed by the syncs the demo runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from crosswind.metasync.context import MetaOptions
from crosswind.metasync.runner import sync_metadata
from crosswind.model import Direction
from crosswind.rig.demo_rows import BAD_OBJECT_NAMES, seed_demo_rows
from tests.integration.metadata.conftest import MetaEnv, arun

pytestmark = pytest.mark.integration


def test_seeded_rows_sync_and_report_the_odd_ones(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    # The demo writes zero-padded flight numbers (AA0042): {flight:int:4} reads them.
    text = env.config_path.read_text().replace("{flight:int}", "{flight:int:4}")
    env.config_path.write_text(text)
    env.reload()
    names = [f"events/2026/11/{d:02d}/AA{n:04d}/DFW-LAX/departure-{uuid.uuid4()}.json"
             for d, n in [(1, 42), (2, 1234), (3, 7), (26, 9999)]]
    names += ["events/2026/11/26/LH0400/FRA-JFK/arrivée-Zürich-Ü.json"]
    summary = arun(seed_demo_rows(env.config, names + list(BAD_OBJECT_NAMES), orphans=3))
    assert summary.rows == len(names) + 3
    assert summary.names_without_keys == list(BAD_OBJECT_NAMES)
    rows = env.azure_rows()
    assert ("AA0042_20261101", names[0].rsplit("departure-", 1)[1][:-5]) in rows
    sample = next(iter(rows.values())).properties
    assert {p.edm for p in sample.values()} == {
        "Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Boolean", "Edm.DateTime",
        "Edm.Guid", "Edm.Binary"}
    for n in names + list(BAD_OBJECT_NAMES):
        env.container.upload_blob(n, b"{}")
    opts = MetaOptions.from_config(env.config, Direction.AZURE_TO_AWS)
    by_objects = arun(sync_metadata(env.config, opts, mode="objects", objects_from="listing"))
    assert by_objects.report["objects"] == {"read": len(names) + len(BAD_OBJECT_NAMES),
                                            "bad_names": len(BAD_OBJECT_NAMES),
                                            "missing_rows": 0}
    assert by_objects.report["written"] == len(names)
    by_scan = arun(sync_metadata(env.config, opts))
    assert by_scan.report["written"] == 3  # the rows without objects
    assert len(env.documents()) == len(names) + 3
