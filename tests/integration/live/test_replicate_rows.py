"""`crosswind replicate` for metadata rows on the rig: the table poll before
cutover, the DocumentDB change stream after, lag from the sources' own times,
reconcile drift, and deletes under the service's guard."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pytest

from crosswind.entities import Edm, Entity, Prop
from crosswind.migration import Phase
from tests.integration.live.conftest import LiveEnv, Service, stream

pytestmark = pytest.mark.integration


def row(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, MappingProxyType(props))


def test_table_rows_follow_the_poll_with_lag(make_live_env: Callable[..., LiveEnv],
                                             services: Callable[..., Service]) -> None:
    live = make_live_env(rows=True)
    live.put_rows(row("p", "before", v=Prop(Edm.INT32, 0)))
    svc = services(live)
    svc.wait_until(lambda s: stream(s, "row-reconcile")["applied"] >= 1, what="first reconcile")
    for i in range(30):
        live.put_rows(row(f"FX{i % 3}", f"r{i}", n=Prop(Edm.INT64, i),
                          s=Prop(Edm.STRING, "é😀")))
    st = svc.wait_until(lambda s: stream(s, "table-poll")["applied"] >= 30, what="rows polled")
    poll = stream(st, "table-poll")
    assert poll["lag_s"]["count"] >= 30 and poll["lag_s"]["p99"] < 30
    docs = live.documents()
    assert len(docs) == 31
    assert docs[("FX1", "r4")].properties["n"] == Prop(Edm.INT64, 4)
    # an update is a change too
    live.put_rows(row("FX1", "r4", n=Prop(Edm.INT64, 44)))
    svc.wait_until(lambda s: live.documents()[("FX1", "r4")].properties["n"]
                   == Prop(Edm.INT64, 44), what="update polled")
    assert svc.terminate() == 0


def test_after_cutover_changes_follow_the_stream_and_deletes_keep_the_guard(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env(rows=True, replicate="max_delete_count = 3\nmax_delete_percent = 100")
    live.set_phase(Phase.CUTTING_OVER)
    live.set_phase(Phase.POST_CUTOVER)
    svc = services(live)
    svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
    for i in range(12):
        live.coll.insert_one({"_id": f"q/{i}", "PartitionKey": "q", "RowKey": str(i),
                              "n": i})
    st = svc.wait_until(lambda s: stream(s, "docdb-changes")["applied"] >= 12,
                        what="changes applied")
    ch = stream(st, "docdb-changes")
    assert ch["lag_s"]["count"] >= 12 and ch["lag_s"]["p99"] < 30
    assert len(live.azure_rows()) == 12
    # one careless delete_many on the primary: only max_delete_count rows go
    live.coll.delete_many({})
    st = svc.wait_until(lambda s: stream(s, "docdb-changes").get("deletes_held"),
                        what="deletes held")
    assert "max_delete_count = 3" in stream(st, "docdb-changes")["deletes_held"]
    assert len(live.azure_rows()) >= 12 - 3
    assert "row deletes held" in " ".join(svc_problems(st))
    assert svc.terminate() == 0


def svc_problems(st: dict[str, object]) -> list[str]:
    import json
    import urllib.request

    url = st["service"]["http"]  # type: ignore[index]
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:  # noqa: S310
            return list(json.load(r).get("reasons", []))
    except urllib.error.HTTPError as exc:
        return list(json.load(exc).get("reasons", []))
