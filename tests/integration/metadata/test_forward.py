"""Azure Table → DocumentDB on the real servers (Azurite, SecantusDB)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from crosswind.entities import Edm, EdmDateTime, Entity, Prop
from crosswind.metasync.context import MetaOptions, scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.metasync.repair import replay
from crosswind.metasync.result import MetaResult
from crosswind.metasync.runner import sync_metadata
from crosswind.model import Direction
from crosswind.state import StateStore, VerifiedCopy
from crosswind.stores.base import BadRecord
from tests.integration.metadata.conftest import MetaEnv, arun
from tests.unit.test_entities import PROPS, names

pytestmark = pytest.mark.integration
FLIGHT = "events/2026/11/26/AA1234/DFW-LAX/departure-{}.json"


def forward(env: MetaEnv, mode: str = "scan", objects_from: str = "listing",
            **overrides: Any) -> MetaResult:
    opts = MetaOptions.from_config(env.config, Direction.AZURE_TO_AWS, **overrides)
    return arun(sync_metadata(env.config, opts, mode=mode,  # type: ignore[arg-type]
                              objects_from=objects_from))  # type: ignore[arg-type]


def row(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, MappingProxyType(props))


def contents(rows: dict[tuple[str, str], Entity]) -> dict[tuple[str, str], Any]:
    return {k: dict(e.properties) for k, e in rows.items()}


def ledger_of(env: MetaEnv) -> tuple[StateStore, Ledger]:
    state = StateStore(env.config.state_dir)
    return state, Ledger(state, scope_of(env.config))


# -- Property 28: after a sync, the collection equals the mapped table -----------------

no_neg_zero = st.sampled_from(list(Edm)).flatmap(lambda e: PROPS[e].map(
    lambda v, e=e: Prop(e, v))).filter(lambda p: not (p.edm is Edm.DOUBLE
                                                      and str(p.value) == "-0.0"))
keys = st.tuples(st.sampled_from(["A", "B", "\U0001f600", "é"]),
                 st.sampled_from(["1", "2", "10", "\uffee", "x y"]))
op = st.one_of(
    st.tuples(st.just("put"), keys, st.dictionaries(names, no_neg_zero, max_size=6)),
    st.tuples(st.just("delete"), keys, st.just({})),
)


# Each example syncs against real servers: few examples, and no shrinking (it
# would replay slow examples for minutes; a failure is reported as found).
SLOW = settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse,
                                                       Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@SLOW
@given(ops=st.lists(op, min_size=1, max_size=20), with_deletes=st.booleans())
def test_collection_equals_the_mapped_table_after_sync(
    make_meta_env: Callable[..., MetaEnv], ops: list[tuple[str, tuple[str, str], Any]],
    with_deletes: bool,
) -> None:
    env = make_meta_env("watermark_overlap_s = 0\nmax_delete_percent = 100\n")
    model: dict[tuple[str, str], Entity] = {}
    for round_ in range(2):  # a second round checks incremental runs after earlier ones
        for kind, (pk, rk), props in ops[round_::2]:
            if kind == "put":
                e = row(pk, rk, **props)
                env.put_rows(e)
                model[(pk, rk)] = e
            elif (pk, rk) in model:
                env.delete_rows((pk, rk))
                del model[(pk, rk)]
        result = forward(env, propagate_deletes=with_deletes)
        assert result.status == "succeeded", result.report
        table, docs = env.azure_rows(), env.documents()
        assert contents(table) == contents(model)
        if with_deletes:
            assert contents(docs) == contents(table)
        else:  # an incremental scan never deletes: every row is there, and equal
            assert {k: contents(docs)[k] for k in table} == contents(table)
        for k, d in docs.items():  # sync fields: the source etag and Timestamp
            if k in table:
                assert d.etag == table[k].etag and d.timestamp == table[k].timestamp


def test_incremental_scan_moves_the_watermark(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env("watermark_overlap_s = 0\n")
    env.put_many([row(f"p{i % 4}", f"r{i}", n=Prop(Edm.INT32, i)) for i in range(230)])
    # The watermark is when a scan started, by the server's clock in whole seconds
    # (its Date header): let that second pass, so the rows are all before it.
    time.sleep(1.1)
    first = forward(env)
    assert first.report["written"] == 230 and first.report["scan"]["since"] is None
    mark = first.report["scan"]["watermark_after"]
    newest = max(e.timestamp for e in env.azure_rows().values())  # type: ignore[type-var]
    assert newest < EdmDateTime.from_iso(mark) <= EdmDateTime.from_datetime(datetime.now(UTC))
    second = forward(env)
    assert second.report["written"] == 0 and second.report["listed"]["source"] == 0
    assert second.report["scan"]["since"] == mark
    env.put_rows(row("p1", "r1", n=Prop(Edm.INT32, -1)), row("new", "x"))
    third = forward(env)
    assert third.report["written"] == 2 and third.report["listed"]["source"] == 2
    assert forward(env).report["listed"]["source"] <= 2  # the watermark moved past them
    assert env.documents()[("p1", "r1")].properties["n"].value == -1
    # --since overrides the watermark; --full rewrites everything
    assert forward(env, since=EdmDateTime.from_iso("2000-01-01T00:00:00Z")).report[
        "listed"]["source"] == 231
    assert forward(env, full=True).report["written"] == 231


def test_dry_run_changes_nothing(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    env.put_many([row("p", f"r{i}") for i in range(12)])
    result = forward(env, dry_run=True)
    assert result.report["would_write"]["count"] == 12
    assert len(result.report["would_write"]["examples"]) == 12
    assert env.documents() == {}
    state, ledger = ledger_of(env)
    try:
        assert ledger.watermark("scan") is None and ledger.row_count() == 0
    finally:
        state.close()


def test_deletes_when_asked_and_guarded(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env("max_delete_percent = 30\n")
    env.put_many([row("p", f"r{i:02d}") for i in range(20)])
    assert forward(env).report["written"] == 20
    env.delete_rows(("p", "r00"), ("p", "r01"), ("p", "r02"))
    plain = forward(env)
    assert plain.report["deleted"] == 0 and len(env.documents()) == 20
    pruned = forward(env, propagate_deletes=True)
    assert pruned.status == "succeeded" and pruned.report["deleted"] == 3
    assert set(env.documents()) == set(env.azure_rows())
    env.delete_rows(*[("p", f"r{i:02d}") for i in range(3, 12)])
    guarded = forward(env, propagate_deletes=True)
    assert guarded.status == "aborted" and "max_delete_percent" in (guarded.error or "")
    assert guarded.report["delete_candidates"] == 9 and guarded.report["deleted"] == 0
    assert len(env.documents()) == 17


def test_poison_rows_go_to_the_dlq_and_replay_after_the_fix(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env()
    good = [row("p", f"ok{i}", v=Prop(Edm.INT32, i)) for i in range(5)]
    env.put_many(good)
    # Names Azurite accepts but a document cannot hold (real Azure refuses them too).
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "bad-id", "_id": "x"})
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "bad-dollar", "$where": "1"})
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "bad-dot", "a.b": 2})
    result = forward(env)
    assert result.status == "failed"
    assert result.report["written"] == 5 and result.report["failed"] == 3
    assert result.report["failed_by_kind"] == {"unmappable": 3}
    assert {f["item"] for f in result.report["failures"]} == {"p/bad-id", "p/bad-dollar",
                                                               "p/bad-dot"}
    state, ledger = ledger_of(env)
    try:
        items = {i.item: i for i in ledger.dlq_list()}
        assert set(items) == {"p/bad-id", "p/bad-dollar", "p/bad-dot"}
        assert "'_id'" in items["p/bad-id"].reason and "'$where'" in items["p/bad-dollar"].reason
        assert items["p/bad-dot"].payload and "a.b" in items["p/bad-dot"].payload
    finally:
        state.close()
    # replay before the fix: still failing, one more attempt counted
    again = arun(replay(env.config, every=True))
    assert again.resolved == [] and len(again.still_open) == 3
    assert {s["attempts"] for s in again.still_open} == {2}
    # fix two rows at the source, replay
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "bad-id", "legacy_id": "x"},
                            mode="replace")
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "bad-dot", "a_b": 2}, mode="replace")
    fixed = arun(replay(env.config, every=True))
    assert len(fixed.resolved) == 2 and [s["item"] for s in fixed.still_open] == ["p/bad-dollar"]
    docs = env.documents()
    assert docs[("p", "bad-id")].properties["legacy_id"].value == "x"
    assert ("p", "bad-dollar") not in docs
    # a row deleted at the source resolves its entry on replay
    env.delete_rows(("p", "bad-dollar"))
    assert len(arun(replay(env.config, every=True)).resolved) == 1


def _upload(env: MetaEnv, names: list[str]) -> None:
    for n in names:
        env.container.upload_blob(n, b"{}", overwrite=True)


def test_object_driven_ingestion(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    good = [FLIGHT.format(i) for i in ids]
    bad = ["events/2026/13/26/AA1234/DFW-LAX/departure-x.json", "notes/readme.txt"]
    _upload(env, good + bad)
    env.put_many([row("AA1234_20261126", i, status=Prop(Edm.STRING, "ok")) for i in ids[:3]])
    env.put_rows(row("ZZ9_20261126", "row-without-object"))
    result = forward(env, mode="objects", objects_from="listing")
    r = result.report
    assert r["objects"] == {"read": 6, "bad_names": 2, "missing_rows": 1}
    assert r["written"] == 3 and r["failed_by_kind"] == {"bad-name": 2, "missing-row": 1}
    docs = env.documents()
    assert set(docs) == {("AA1234_20261126", i) for i in ids[:3]}  # only rows of objects
    reasons = {f["item"]: f["reason"] for f in r["failures"]}
    assert "month (%m) is '13'" in reasons[bad[0]]
    assert "has no row ('AA1234_20261126'" in reasons[good[3]]
    # the row arrives later: replaying the object resolves it
    env.put_rows(row("AA1234_20261126", ids[3]))
    state, ledger = ledger_of(env)
    try:
        missing = [i.id for i in ledger.dlq_list(kind="missing-row")]
    finally:
        state.close()
    assert arun(replay(env.config, missing)).resolved == missing
    assert ("AA1234_20261126", ids[3]) in env.documents()
    # the table scan catches the row without an object
    assert forward(env).report["written"] == 1
    assert ("ZZ9_20261126", "row-without-object") in env.documents()


def test_object_driven_from_synced_objects(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    env.put_many([row("AA1234_20261126", i) for i in ids])
    state = StateStore(env.config.state_dir)
    try:
        for i in ids[:2]:  # what `sync objects` records for each verified copy
            state.record_verified("azure-to-aws", VerifiedCopy(FLIGHT.format(i), "e", 2, "m", "d"))
    finally:
        state.close()
    first = forward(env, mode="objects", objects_from="synced")
    assert first.report["objects"]["read"] == 2 and first.report["written"] == 2
    assert first.report["objects_from"] == "synced"
    second = forward(env, mode="objects", objects_from="synced")
    assert second.report["written"] == 0  # nothing new was synced


def test_a_killed_run_loses_nothing(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env("batch_size = 100\nconcurrency = 1\n")
    env.put_many([row(f"p{i % 10}", f"r{i:05d}", v=Prop(Edm.INT64, i)) for i in range(3000)])
    cmd = [sys.executable, "-m", "crosswind", "sync", "metadata", "--config",
           str(env.config_path), "--direction", "azure-to-aws", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=env.tmp, start_new_session=True)
    deadline = time.monotonic() + 60
    while env.coll.estimated_document_count() < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    partial = env.coll.estimated_document_count()
    assert 0 < partial < 3000, "the kill should land mid-run"
    state, ledger = ledger_of(env)
    try:
        assert ledger.watermark("scan") is None  # only a finished scan moves it
    finally:
        state.close()
    again = forward(env)
    assert again.status == "succeeded"
    assert contents(env.documents()) == contents(env.azure_rows())
    assert again.report["unchanged"] >= partial - 100  # what was recorded is not redone


def test_since_after_the_watermark_does_not_skip_the_gap(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """--since later than the saved watermark scans only part of the table: the
    watermark must not jump past rows changed in between, which no scan read."""
    env = make_meta_env("watermark_overlap_s = 0\n")
    env.put_rows(row("p", "a"))
    assert forward(env).report["written"] == 1
    time.sleep(0.05)
    env.put_rows(row("p", "gap", n=Prop(Edm.INT32, 1)))  # changed after the watermark
    time.sleep(0.05)
    since = EdmDateTime.from_datetime(datetime.now(UTC))
    time.sleep(0.05)
    env.put_rows(row("p", "late"))
    partial = forward(env, since=since)
    assert partial.report["written"] == 1  # only "late"
    assert ("p", "gap") not in env.documents()
    forward(env)  # the next incremental scan must still find "gap"
    assert ("p", "gap") in env.documents()


def test_a_lone_surrogate_is_one_poison_row_not_a_failed_batch(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env()
    env.put_many([row("p", f"ok{i}", v=Prop(Edm.INT32, i)) for i in range(5)])
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "surrogate", "s": "a\ud800b"})
    result = forward(env)
    assert result.status == "failed"
    assert result.report["written"] == 5 and result.report["failed_by_kind"] == {"unmappable": 1}
    assert "p/surrogate" in {f["item"] for f in result.report["failures"]}
    assert "UTF-8" in result.report["failures"][0]["reason"]



def test_an_unexpected_error_is_recorded_as_a_failed_run(
    make_meta_env: Callable[..., MetaEnv], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug or an error no store translated must not leave a run marked succeeded."""
    from crosswind.metasync.forward import ForwardSync

    async def boom(self: ForwardSync) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(ForwardSync, "scan", boom)
    env = make_meta_env()
    with pytest.raises(RuntimeError):
        forward(env)
    state = StateStore(env.config.state_dir)
    try:
        [run] = state.runs("metadata")
        assert run["status"] == "failed"
        assert "unexpected" in (state.run_report(run["id"]) or {}).get("error", "")
    finally:
        state.close()


def test_rows_changed_behind_a_long_scan_are_read_by_the_next(
    make_meta_env: Callable[..., MetaEnv], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watermark is bounded by when the scan started, not by the newest
    Timestamp it saw: a row updated behind the scan's position (here `a`, just
    after it was listed) while a later row changed more than the overlap after it
    (`z`, 2.5 s later, read by the same scan) is read again by the next scan."""
    from crosswind.stores.azure_tables import AzureTableStore

    env = make_meta_env("page_size = 1\nwatermark_overlap_s = 1\n")
    env.put_rows(row("a", "1", v=Prop(Edm.INT32, 1)), row("z", "1", v=Prop(Edm.INT32, 1)))
    real_list = AzureTableStore.list

    async def application_writes_meanwhile(self: AzureTableStore, **kw: Any
                                           ) -> AsyncIterator[Entity | BadRecord]:
        async for r in real_list(self, **kw):
            yield r
            if r.partition_key == "a":  # listed; the next page is not read yet
                env.put_rows(row("a", "1", v=Prop(Edm.INT32, 2)))
                await asyncio.sleep(2.5)
                env.put_rows(row("z", "1", v=Prop(Edm.INT32, 2)))

    monkeypatch.setattr(AzureTableStore, "list", application_writes_meanwhile)
    first = forward(env)
    monkeypatch.undo()
    assert first.report["written"] == 2
    assert env.documents()[("a", "1")].properties["v"].value == 1  # read before its update
    assert env.documents()[("z", "1")].properties["v"].value == 2
    second = forward(env)  # incremental, from the watermark less the overlap
    assert second.report["scan"]["since"] is not None
    assert env.documents()[("a", "1")].properties["v"].value == 2, second.report


def test_row_repair_by_key_touches_only_those_keys(make_meta_env: Callable[..., MetaEnv]
                                                   ) -> None:
    """The per-key entry point (``mode="keys"``): the named rows are read fresh
    and written even though the ledger says they are in step (someone changed
    the documents behind its back); rows not named stay as they are, a named
    row gone from the source is counted and nothing is deleted."""
    env = make_meta_env()
    env.put_many([row("p", f"r{i}", n=Prop(Edm.INT32, i)) for i in range(6)])
    assert forward(env).status == "succeeded"
    for i in (1, 2):  # both drift on the AWS side
        env.coll.update_one({"PartitionKey": "p", "RowKey": f"r{i}"}, {"$set": {"n": -1}})
    opts = MetaOptions.from_config(env.config, Direction.AZURE_TO_AWS)
    result = arun(sync_metadata(env.config, opts, mode="keys",
                                keys=[("p", "r1"), ("p", "r1"), ("p", "gone")]))
    assert result.status == "succeeded", result.report
    assert result.report["written"] == 1
    assert result.ctx.stats.listed_source == 1 and result.ctx.stats.missing_rows == 1
    docs = env.documents()
    assert docs[("p", "r1")].properties["n"].value == 1  # repaired
    assert docs[("p", "r2")].properties["n"].value == -1  # not named: untouched
    assert len(docs) == 6
