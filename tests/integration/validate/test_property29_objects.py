"""Property 29 on the real rig (objects): start from two equal sides made by a
crosswind copy, inject a random set of discrepancies of every object class
behind crosswind's back with the native SDKs, validate: the findings are
exactly the injected set, in both directions, with and without --deep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crosswind.validate.findings import Check, Kind
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

# Letters that exercise ordering: ASCII, Latin-1, CJK, a character above
# U+FFFF (Azure lists it in UTF-16 order) and one in U+E000-U+FFFF.
SEGMENT = st.text(st.sampled_from("ab-Z09é東✈\U0001d11e\ufb01"), min_size=1, max_size=4)
NAMES = st.lists(st.lists(SEGMENT, min_size=1, max_size=3).map(lambda s: "/".join(s) + ".json"),
                 min_size=2, max_size=9, unique=True)
KINDS = st.sampled_from([None, Kind.MISSING, Kind.EXTRA, Kind.SIZE, Kind.HASH, Kind.METADATA])


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=NAMES, data=st.data(), a2w=st.booleans(), deep=st.booleans())
def test_validate_reports_exactly_the_injected_set(
    make_env: Callable[..., Any], names: list[str], data: st.DataObject, a2w: bool, deep: bool
) -> None:
    direction = A2W if a2w else W2A
    env = make_env()
    for i, name in enumerate(names):
        put_source(env, direction, name, f'{{"seq": {i}, "pad": "{"x" * i}"}}'.encode(),
                   {"seq": str(i), "carrier": "LH"})
    sync(env, direction)
    clean = run_validate(env, direction=direction, full=True)
    assert clean["verdict"] == "pass" and clean["discrepancy_counts"] == {}, clean

    kinds = data.draw(st.lists(KINDS, min_size=len(names), max_size=len(names)), label="kinds")
    expected: set[tuple[str, str]] = set()
    for name, kind in zip(names, kinds, strict=True):
        inject(env, direction, name, kind)
        if kind is not None:
            expected.add((kind.value, name))

    report = run_validate(env, direction=direction, full=True, deep=deep)
    assert all_findings(env, report["run_id"]) == expected
    objects = report["checks"][Check.OBJECTS.value]
    assert objects["failed"] == len(expected)
    n_src = len(names) - sum(1 for k in kinds if k is Kind.EXTRA)
    n_missing = sum(1 for k in kinds if k is Kind.MISSING)
    assert objects["source_items"] == n_src
    assert objects["present_on_destination"] == n_src - n_missing
    assert objects["coverage"].get("hash_unknown", 0) == 0
    assert objects["coverage"].get("metadata_unknown", 0) == 0
