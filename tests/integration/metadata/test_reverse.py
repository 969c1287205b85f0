"""DocumentDB → Azure Table from the change stream, on the real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.entities import (
    CODEC_OPTIONS,
    Edm,
    EdmDateTime,
    Entity,
    Prop,
    entity_to_document,
)
from crosswind.errors import ConfigError
from crosswind.metasync.context import MetaOptions, scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.metasync.repair import replay, resolve_conflict
from crosswind.metasync.result import MetaResult
from crosswind.metasync.runner import sync_metadata
from crosswind.model import Direction
from crosswind.state import StateStore
from tests.integration.metadata.conftest import MetaEnv, arun

pytestmark = pytest.mark.integration


def reverse(env: MetaEnv, **overrides: Any) -> MetaResult:
    opts = MetaOptions.from_config(env.config, Direction.AWS_TO_AZURE, **overrides)
    return arun(sync_metadata(env.config, opts))


def forward(env: MetaEnv) -> MetaResult:
    return arun(sync_metadata(env.config, MetaOptions.from_config(env.config,
                                                                  Direction.AZURE_TO_AWS)))


def row(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, MappingProxyType(props))


def doc(pk: str, rk: str, **fields: Any) -> dict[str, Any]:
    return {"_id": f"{pk}/{rk}", "PartitionKey": pk, "RowKey": rk, **fields}


def contents(rows: dict[tuple[str, str], Entity]) -> dict[tuple[str, str], Any]:
    return {k: dict(e.properties) for k, e in rows.items()}


def ledger_of(env: MetaEnv) -> tuple[StateStore, Ledger]:
    state = StateStore(env.config.state_dir)
    return state, Ledger(state, scope_of(env.config))


def test_change_stream_resumes_across_runs(make_meta_env: Callable[..., MetaEnv]) -> None:
    # One delete of five rows is 20 %: over the default limit, which the stream obeys.
    env = make_meta_env("max_delete_percent = 100\n")
    env.put_many([row("p", f"r{i}", v=Prop(Edm.INT32, i)) for i in range(5)])
    assert forward(env).report["written"] == 5
    first = reverse(env)
    assert first.report["change_stream"] == {"resumed_from_token": False, "reconciles": [
        "no resume token (first run)"]}
    assert first.report["unchanged"] == 5 and first.report["written"] == 0
    # while crosswind is not running, the application writes on the AWS side
    env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 100, "note": "edited on AWS"}})
    env.coll.insert_one(doc("p", "new", v=7))
    app_id = ObjectId()
    env.coll.insert_one({"_id": app_id, "PartitionKey": "q", "RowKey": "app", "n": 1})
    env.coll.delete_one({"_id": "p/r2"})
    second = reverse(env)
    assert second.report["change_stream"] == {"resumed_from_token": True, "reconciles": []}
    assert second.report["changes"]["read"] == 4
    assert second.report["written"] == 3 and second.report["deleted"] == 1
    assert contents(env.azure_rows()) == contents(env.documents())
    third = reverse(env)
    assert third.report["changes"]["read"] == 0 and third.report["written"] == 0
    # a document whose _id is not PartitionKey/RowKey: its delete is found by _id
    env.coll.delete_one({"_id": app_id})
    assert reverse(env).report["deleted"] == 1
    assert ("q", "app") not in env.azure_rows()
    assert contents(env.azure_rows()) == contents(env.documents())


def test_own_writes_coming_back_are_not_applied_again(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env()
    reverse(env)  # establishes the change-stream position on an empty collection
    env.put_many([row("p", f"r{i}", s=Prop(Edm.STRING, "x")) for i in range(30)])
    forward(env)  # these writes show up in the change stream
    r = reverse(env)
    assert r.report["changes"]["read"] == 30
    assert r.report["changes"]["echoes_skipped"] == 30
    assert r.report["written"] == 0 and r.report["conflicts"] == 0


def test_history_lost_falls_back_to_reconcile(
    make_meta_env: Callable[..., MetaEnv], short_history_secantus: str,
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(short_history_secantus,
                                                      uuidRepresentation="standard")
    try:
        env = make_meta_env("max_delete_percent = 50\n", mongo_uri=short_history_secantus,
                            client=client)
        env.coll.insert_many([doc("p", f"r{i}", v=i) for i in range(10)])
        first = reverse(env)
        assert first.report["written"] == 10
        env.coll.delete_one({"_id": "p/r0"})
        env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": -1}})
        # more than the 50 entries the server keeps, and past its 1,000-write prune
        env.coll.insert_many([doc("bulk", f"{i:04d}") for i in range(1100)])
        second = reverse(env)
        reasons = second.report["change_stream"]["reconciles"]
        assert len(reasons) == 1 and "resume token no longer valid" in reasons[0]
        assert second.report["written"] == 1101 and second.report["deleted"] == 1
        assert contents(env.azure_rows()) == contents(env.documents())
        env.coll.update_one({"_id": "p/r3"}, {"$set": {"v": 33}})
        third = reverse(env)  # back on the stream from the position taken before the reconcile
        assert third.report["change_stream"]["reconciles"] == []
        assert env.azure_rows()[("p", "r3")].properties["v"].value == 33
    finally:
        client.close()


def test_replica_side_writes_are_conflicts_never_overwritten(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env("max_delete_percent = 100\n")  # one delete of four rows is 25 %
    env.put_many([row("p", k, v=Prop(Edm.STRING, "synced")) for k in ("k1", "k2", "k3", "k4")])
    forward(env)
    reverse(env)
    # Someone writes on the replica (Azure) side…
    env.put_rows(row("p", "k1", v=Prop(Edm.STRING, "edited on Azure")))
    env.delete_rows(("p", "k3"))
    env.put_rows(row("p", "k4", v=Prop(Edm.STRING, "edited on Azure")))
    # …and the primary (AWS) changes the same rows.
    env.coll.update_one({"_id": "p/k1"}, {"$set": {"v": "edited on AWS"}})
    env.coll.update_one({"_id": "p/k2"}, {"$set": {"v": "edited on AWS"}})
    env.coll.update_one({"_id": "p/k3"}, {"$set": {"v": "edited on AWS"}})
    env.coll.delete_one({"_id": "p/k4"})
    r = reverse(env)
    assert r.report["conflicts"] == 3 and r.report["written"] == 1
    az = env.azure_rows()
    assert az[("p", "k1")].properties["v"].value == "edited on Azure"  # not overwritten
    assert az[("p", "k2")].properties["v"].value == "edited on AWS"
    assert ("p", "k3") not in az and az[("p", "k4")].properties["v"].value == "edited on Azure"
    state, ledger = ledger_of(env)
    try:
        found = {c.rk: c for c in ledger.conflicts()}
    finally:
        state.close()
    assert set(found) == {"k1", "k3", "k4"}
    k1 = found["k1"]
    assert k1.azure_version and k1.aws_version
    assert k1.azure_version["properties"]["v"]["value"] == "edited on Azure"
    assert k1.aws_version["properties"]["v"]["value"] == "edited on AWS"
    assert k1.recorded_etag and k1.azure_etag and k1.recorded_etag != k1.azure_etag
    assert found["k3"].azure_version is None  # deleted on Azure
    assert found["k4"].aws_version is None  # deleted on AWS
    # seen again, the same conflict is not recorded twice
    env.coll.update_one({"_id": "p/k1"}, {"$set": {"v": "edited on AWS again"}})
    assert reverse(env).report["conflicts"] == 1
    state, ledger = ledger_of(env)
    try:
        assert ledger.conflict_count() == 3
    finally:
        state.close()
    # resolving: keep AWS for k1, Azure for k4
    arun(resolve_conflict(env.config, k1.id, "aws"))
    arun(resolve_conflict(env.config, found["k4"].id, "azure"))
    az, docs = env.azure_rows(), env.documents()
    assert az[("p", "k1")].properties["v"].value == "edited on AWS again"
    assert docs[("p", "k4")].properties["v"].value == "edited on Azure"
    later = reverse(env)
    assert later.report["conflicts"] == 0
    env.coll.update_one({"_id": "p/k1"}, {"$set": {"v": "after resolve"}})
    assert reverse(env).report["written"] == 1  # the baseline moved with the resolution


def test_overwrite_policy_records_then_writes(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env('conflict_policy = "overwrite"\n')
    env.put_rows(row("p", "k", v=Prop(Edm.STRING, "synced")))
    forward(env)
    reverse(env)
    env.put_rows(row("p", "k", v=Prop(Edm.STRING, "edited on Azure")))
    env.coll.update_one({"_id": "p/k"}, {"$set": {"v": "edited on AWS"}})
    r = reverse(env)
    assert r.report["conflicts"] == 1
    assert env.azure_rows()[("p", "k")].properties["v"].value == "edited on AWS"


def test_transactions_stay_within_100_per_partition(make_meta_env: Callable[..., MetaEnv]
                                                    ) -> None:
    env = make_meta_env("batch_size = 1000\nflush_interval_s = 1.0\n")
    reverse(env)
    env.coll.insert_many([doc("big", f"{i:03d}", n=i) for i in range(250)]
                         + [doc("small", f"{i:03d}") for i in range(30)])
    r = reverse(env)
    assert r.report["written"] == 280
    assert r.report["batches"] >= 4  # 250 rows of one partition need three transactions
    assert contents(env.azure_rows()) == contents(env.documents())


def test_poison_documents_go_to_the_dlq_and_replay_after_the_fix(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env()
    reverse(env)
    env.coll.insert_many([
        doc("p", "ok", v=1),
        doc("p", "array", tags=["a", "b"]),
        doc("p", "nested", where={"lat": 1.0}),
        doc("p", "long-string", text="x" * 40_000),  # 80,000 bytes as UTF-16
        doc("p", "huge", **{f"f{i}": "y" * 30_000 for i in range(20)}),  # > 1 MiB entity
        doc("p", "oid", ref=ObjectId()),
    ])
    r = reverse(env)
    assert r.status == "failed" and r.report["written"] == 1
    assert r.report["failed_by_kind"] == {"unmappable": 3, "oversize": 2}
    assert set(env.azure_rows()) == {("p", "ok")}
    state, ledger = ledger_of(env)
    try:
        reasons = {i.item: i.reason for i in ledger.dlq_list()}
    finally:
        state.close()
    assert "field 'tags' holds an array" in reasons["p/array"]
    assert "per property" in reasons["p/long-string"] and "per entity" in reasons["p/huge"]
    # fix them on the AWS side, then replay
    env.coll.update_one({"_id": "p/array"}, {"$set": {"tags": "a,b"}})
    env.coll.update_one({"_id": "p/nested"}, {"$unset": {"where": ""}})
    env.coll.update_one({"_id": "p/long-string"}, {"$set": {"text": "short"}})
    env.coll.update_one({"_id": "p/oid"}, {"$set": {"ref": str(ObjectId())}})
    result = arun(replay(env.config, every=True))
    assert len(result.resolved) == 4
    assert [s["item"] for s in result.still_open] == ["p/huge"]
    az = env.azure_rows()
    assert az[("p", "array")].properties["tags"].value == "a,b"
    assert ("p", "huge") not in az
    # the fixed documents' own change events later are echoes, not conflicts
    assert reverse(env).report["conflicts"] == 0


def test_dry_run_writes_nothing_and_keeps_no_token(make_meta_env: Callable[..., MetaEnv]
                                                   ) -> None:
    env = make_meta_env()
    env.coll.insert_many([doc("p", f"r{i}") for i in range(5)])
    r = reverse(env, dry_run=True)
    assert r.report["would_write"]["count"] == 5 and env.azure_rows() == {}
    state, ledger = ledger_of(env)
    try:
        assert ledger.resume_token() is None
    finally:
        state.close()


def test_reverse_writes_every_edm_type_exactly(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    reverse(env)
    e = row("p", "types", s=Prop(Edm.STRING, "é😀"), i=Prop(Edm.INT32, -(2**31)),
            l=Prop(Edm.INT64, 2**63 - 1), small=Prop(Edm.INT64, 1),
            d=Prop(Edm.DOUBLE, float("nan")), inf=Prop(Edm.DOUBLE, float("-inf")),
            b=Prop(Edm.BOOLEAN, False),
            t=Prop(Edm.DATETIME, EdmDateTime.from_iso("2026-11-26T10:00:00.1234567Z")),
            g=Prop(Edm.GUID, uuid.uuid4()), bin=Prop(Edm.BINARY, b"\x00\xff"))
    env.coll.with_options(codec_options=CODEC_OPTIONS).insert_one(entity_to_document(e))
    reverse(env)
    assert env.azure_rows()[("p", "types")].properties == e.properties


def test_a_killed_follower_loses_nothing(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env("batch_size = 20\n")
    reverse(env)  # the stream position exists: the follower reads changes, not a reconcile
    cmd = [sys.executable, "-m", "crosswind", "sync", "metadata", "--config",
           str(env.config_path), "--direction", "aws-to-azure", "--follow", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=env.tmp, start_new_session=True)
    try:
        for i in range(60):  # an application writing while crosswind follows
            env.coll.insert_one(doc("p", f"r{i:03d}", n=i))
            if i % 10 == 9:
                env.coll.update_one({"_id": f"p/r{i - 5:03d}"}, {"$set": {"n": -i}})
            time.sleep(0.02)
        deadline = time.monotonic() + 60
        while len(env.azure_rows()) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    applied = len(env.azure_rows())
    assert applied >= 20, "the follower should have applied changes before the kill"
    env.coll.delete_one({"_id": "p/r000"})
    after = reverse(env)
    assert after.report["change_stream"]["resumed_from_token"] is True
    assert after.report["conflicts"] == 0
    assert contents(env.azure_rows()) == contents(env.documents())


def test_deletes_a_guard_held_back_are_done_by_a_later_run(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """The reconcile's max-delete guard trips: nothing is deleted and the run is
    aborted. A later run with a higher limit must still do those deletes, not
    resume from a stream position taken after them."""
    env = make_meta_env("max_delete_count = 2\nmax_delete_percent = 100\n")
    env.put_many([row("p", f"r{i}") for i in range(10)])
    forward(env)
    env.coll.delete_many({"RowKey": {"$in": [f"r{i}" for i in range(5)]}})
    blocked = reverse(env)  # first run: a reconcile
    assert blocked.status == "aborted" and "max_delete_count" in (blocked.error or "")
    assert len(env.azure_rows()) == 10
    again = reverse(env, max_delete_count=10)
    assert again.status == "succeeded", again.report
    assert set(env.azure_rows()) == {("p", f"r{i}") for i in range(5, 10)}


def test_resolve_never_overwrites_an_edit_made_after_the_conflict(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """`conflicts resolve --keep aws` was decided on the Azure version the conflict
    shows; an Azure edit made since is not silently overwritten (nor, with --keep
    azure, an AWS edit the operator never saw)."""
    env = make_meta_env()
    env.put_many([row("p", k, v=Prop(Edm.STRING, "synced")) for k in ("a", "b")])
    forward(env)
    reverse(env)
    for k in ("a", "b"):
        env.put_rows(row("p", k, v=Prop(Edm.STRING, "edited on Azure")))
        env.coll.update_one({"_id": f"p/{k}"}, {"$set": {"v": "edited on AWS"}})
    assert reverse(env).report["conflicts"] == 2
    state, ledger = ledger_of(env)
    try:
        found = {c.rk: c for c in ledger.conflicts()}
    finally:
        state.close()
    env.put_rows(row("p", "a", v=Prop(Edm.STRING, "edited on Azure again")))
    with pytest.raises(ConfigError, match="changed"):
        arun(resolve_conflict(env.config, found["a"].id, "aws"))
    assert env.azure_rows()[("p", "a")].properties["v"].value == "edited on Azure again"
    env.coll.update_one({"_id": "p/b"}, {"$set": {"v": "edited on AWS again"}})
    with pytest.raises(ConfigError, match="changed"):
        arun(resolve_conflict(env.config, found["b"].id, "azure"))
    assert env.documents()[("p", "b")].properties["v"].value == "edited on AWS again"
    # the conflict now shows the current versions; resolving again does what is asked
    state, ledger = ledger_of(env)
    try:
        now = {c.rk: c for c in ledger.conflicts()}
    finally:
        state.close()
    assert now["a"].azure_version["properties"]["v"]["value"] == "edited on Azure again"  # type: ignore[index]
    assert now["b"].aws_version["properties"]["v"]["value"] == "edited on AWS again"  # type: ignore[index]
    arun(resolve_conflict(env.config, found["a"].id, "aws"))
    arun(resolve_conflict(env.config, found["b"].id, "azure"))
    assert env.azure_rows()[("p", "a")].properties["v"].value == "edited on AWS"
    assert env.documents()[("p", "b")].properties["v"].value == "edited on Azure"


def test_overwrite_policy_deletes_stay_under_the_guard(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """With conflict_policy = "overwrite", rows a reconcile would delete as
    conflicts (changed on Azure, or never synced) count against the max-delete
    guard like any other delete."""
    env = make_meta_env('conflict_policy = "overwrite"\nmax_delete_count = 2\n'
                        "max_delete_percent = 100\n")
    env.put_many([row("p", f"r{i}") for i in range(5)])  # only on Azure, never synced
    r = reverse(env)  # first run: a reconcile against an empty collection
    assert r.status == "aborted" and "max_delete_count" in (r.error or "")
    assert len(env.azure_rows()) == 5
    assert reverse(env, max_delete_count=10).status == "succeeded"
    assert env.azure_rows() == {}


def test_a_document_that_lost_its_key_fields_does_not_delete_its_row(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """A document that cannot be mapped is a poison document; its row is not
    "deleted on AWS" just because the listing could not say which row it is."""
    env = make_meta_env("max_delete_percent = 100\n")
    env.put_many([row("p", f"r{i}", v=Prop(Edm.INT32, i)) for i in range(3)])
    forward(env)
    env.coll.update_one({"_id": "p/r1"}, {"$unset": {"RowKey": ""}})
    r = reverse(env)  # first run: a reconcile
    assert r.report["failed"] == 1 and r.report["deleted"] == 0
    assert ("p", "r1") in env.azure_rows()


def test_full_forces_a_reconcile_even_with_a_saved_position(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env()
    env.put_many([row("p", f"r{i}", v=Prop(Edm.INT32, i)) for i in range(3)])
    forward(env)
    reverse(env)  # first run: reconciles and saves a position
    assert reverse(env).report["change_stream"]["reconciles"] == []
    forced = reverse(env, full=True)
    assert forced.report["change_stream"]["reconciles"] == ["--full asked for a reconcile"]
    assert forced.report["unchanged"] == 3 and forced.report["written"] == 0
    assert contents(env.azure_rows()) == contents(env.documents())


# -- issue 15: every delete path goes through the one max-delete guard ---------------


def test_stream_deletes_stay_under_the_guard(make_meta_env: Callable[..., MetaEnv]) -> None:
    """One careless deleteMany on the primary must not wipe the replica: the change
    stream's deletes count against the same guard as a reconcile's, and the ones
    it holds back are done by a later run (nothing lost)."""
    from crosswind.cli.metadata import exit_code

    env = make_meta_env("max_delete_count = 2\nmax_delete_percent = 10\n")
    env.put_many([row("p", f"r{i:02d}", v=Prop(Edm.INT32, i)) for i in range(20)])
    assert forward(env).report["written"] == 20
    first = reverse(env)  # a reconcile; the stream position is saved
    assert first.status == "succeeded" and first.report["deleted"] == 0
    env.coll.delete_many({})
    blocked = reverse(env)
    assert blocked.report["change_stream"]["resumed_from_token"] is True
    assert blocked.status == "aborted", blocked.report
    assert "max_delete_count = 2" in (blocked.error or "")
    assert exit_code(blocked) == 4
    assert blocked.report["deleted"] <= 2 and len(env.azure_rows()) >= 18
    # Held back, not lost: the same run again (same limits) holds them again…
    assert reverse(env).status == "aborted" and len(env.azure_rows()) >= 18
    # …and with the limits raised they are done.
    done = reverse(env, max_delete_count=100, max_delete_percent=100)
    assert done.status == "succeeded", done.report
    assert env.azure_rows() == {}


def test_dlq_replay_deletes_stay_under_the_guard(make_meta_env: Callable[..., MetaEnv]) -> None:
    """A replayed document that is gone now is a delete on Azure: guarded too."""
    env = make_meta_env("max_delete_count = 2\nmax_delete_percent = 100\n")
    env.put_many([row("p", f"r{i}", v=Prop(Edm.INT32, i)) for i in range(5)])
    forward(env)
    assert reverse(env).status == "succeeded"  # synced: the ledger knows the rows
    env.coll.update_many({}, {"$set": {"tags": ["not", "mappable"]}})
    assert reverse(env).report["failed"] == 5  # five poison documents in the DLQ
    env.coll.delete_many({})  # then the application deletes them
    result = arun(replay(env.config, every=True))
    assert len(env.azure_rows()) == 5
    assert result.blocked and "max_delete_count = 2" in result.blocked
    assert len(result.still_open) == 5
    cli = CliRunner().invoke(app, ["dlq", "replay", "-c", str(env.config_path), "--all",
                                   "--json"])
    assert cli.exit_code == 4, cli.output  # as for a sync the guard stopped
    assert "max_delete_count = 2" in json.loads(cli.stdout)["deletes_blocked"]
    assert len(env.azure_rows()) == 5
    env.config = env.config.model_copy(update={"metadata": env.config.metadata.model_copy(
        update={"max_delete_count": 10})})
    again = arun(replay(env.config, every=True))
    assert again.blocked is None and len(again.resolved) == 5
    assert env.azure_rows() == {}


def test_conflict_resolve_deletes_stay_under_the_guard(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """`conflicts resolve --keep aws` for a row AWS does not have deletes it on Azure:
    under the guard (exit 4, nothing deleted) like every other delete."""
    from crosswind.errors import DeleteLimitExceeded

    env = make_meta_env("max_delete_count = 0\nmax_delete_percent = 100\n")
    env.put_rows(row("p", "azure-only"))  # never synced: a conflict, not a delete
    r = reverse(env)
    assert r.report["conflicts"] == 1 and r.report["deleted"] == 0
    state, ledger = ledger_of(env)
    try:
        [c] = ledger.conflicts()
    finally:
        state.close()
    with pytest.raises(DeleteLimitExceeded, match="max_delete_count = 0"):
        arun(resolve_conflict(env.config, c.id, "aws"))
    assert ("p", "azure-only") in env.azure_rows()
    env.config = env.config.model_copy(update={"metadata": env.config.metadata.model_copy(
        update={"max_delete_count": 1})})
    assert arun(resolve_conflict(env.config, c.id, "aws"))["deleted"] is True
    assert env.azure_rows() == {}


def test_each_reconcile_guards_against_its_own_listing(
    make_meta_env: Callable[..., MetaEnv], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that reconciles twice (the stream ended mid-run: here the collection
    was dropped) must take the percentage of what *that* reconcile listed, not of
    both listings added up."""
    from crosswind.metasync.reverse import ReverseSync

    env = make_meta_env("max_delete_count = 1000\nmax_delete_percent = 60\n")
    env.put_many([row("p", f"r{i}", v=Prop(Edm.INT32, i)) for i in range(10)])
    forward(env)
    original = ReverseSync.reconcile
    calls: list[str] = []

    async def then_drop(self: ReverseSync, reason: str) -> None:
        await original(self, reason)
        calls.append(reason)
        if len(calls) == 1:
            env.coll.drop()  # the stream (opened before the reconcile) sees a drop

    monkeypatch.setattr(ReverseSync, "reconcile", then_drop)
    r = reverse(env)
    assert len(calls) == 2 and "history lost mid-stream" in calls[1]
    assert r.status == "aborted" and "max_delete_percent = 60" in (r.error or ""), r.report
    assert "of 10 items" in (r.error or "")
    assert len(env.azure_rows()) == 10


# -- issue 15: a document's real _id is what the ledger knows it by ----------------


def test_delete_of_a_document_with_its_own_id_after_a_reconcile(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """A document whose _id is not PartitionKey/RowKey, first synced by a reconcile:
    its later delete (the change carries only the _id) must find its row."""
    env = make_meta_env("max_delete_percent = 100\n")
    oid = ObjectId()
    env.coll.insert_one({"_id": oid, "PartitionKey": "q", "RowKey": "app", "n": 1})
    env.coll.insert_one(doc("q", "plain", n=2))
    first = reverse(env)  # first run: a reconcile creates the rows
    assert first.report["written"] == 2 and ("q", "app") in env.azure_rows()
    env.coll.delete_one({"_id": oid})
    second = reverse(env)
    assert second.report["changes"]["unknown_deletes"] == 0, second.report
    assert second.report["deleted"] == 1
    assert set(env.azure_rows()) == {("q", "plain")}


def test_a_string_id_naming_other_keys_never_deletes_that_row(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """An _id that *looks* like PartitionKey/RowKey but is not its document's keys:
    its delete removes its own row, never the row its _id seems to name."""
    env = make_meta_env("max_delete_percent = 100\n")
    env.coll.insert_one(doc("p", "r1", n=1))  # _id "p/r1" → row (p, r1)
    env.coll.insert_one({"_id": "p/r2", "PartitionKey": "x", "RowKey": "y", "n": 2})
    env.coll.insert_one(doc("p", "r2", n=3) | {"_id": ObjectId()})  # row (p, r2), other _id
    reverse(env)
    assert set(env.azure_rows()) == {("p", "r1"), ("x", "y"), ("p", "r2")}
    env.coll.delete_one({"_id": "p/r2"})  # the document of row (x, y)
    r = reverse(env)
    assert r.report["deleted"] == 1, r.report
    assert set(env.azure_rows()) == {("p", "r1"), ("p", "r2")}
    assert contents(env.azure_rows()) == contents(env.documents())


def test_a_document_that_moves_to_other_keys_takes_its_row_along(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """An application changes a document's RowKey: the stream's update names the
    new keys only; the row of the old keys (found by the document's _id) goes."""
    env = make_meta_env("max_delete_percent = 100\n")
    oid = ObjectId()
    env.coll.insert_one({"_id": oid, "PartitionKey": "q", "RowKey": "old", "n": 1})
    env.coll.insert_one(doc("q", "other", n=2))
    reverse(env)
    env.coll.update_one({"_id": oid}, {"$set": {"RowKey": "new"}})
    r = reverse(env)
    assert r.report["written"] == 1 and r.report["deleted"] == 1, r.report
    assert set(env.azure_rows()) == {("q", "new"), ("q", "other")}
    env.coll.delete_one({"_id": oid})
    assert reverse(env).report["deleted"] == 1
    assert set(env.azure_rows()) == {("q", "other")}


def test_a_replayed_document_is_recorded_under_its_own_id(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """A document with an ObjectId _id too large for Azure, fixed and replayed from
    the DLQ: the replay records its real _id too, so its later delete finds the row."""
    env = make_meta_env("max_delete_percent = 100\n")
    oid = ObjectId()
    env.coll.insert_one({"_id": oid, "PartitionKey": "q", "RowKey": "app",
                         "text": "x" * 40_000})  # 80,000 bytes as UTF-16: over 64 KiB
    env.coll.insert_one(doc("q", "plain"))
    assert reverse(env).report["failed"] == 1  # the reconcile files it in the DLQ
    env.coll.update_one({"_id": oid}, {"$set": {"text": "short"}})
    result = arun(replay(env.config, every=True))
    assert len(result.resolved) == 1 and ("q", "app") in env.azure_rows()
    env.coll.delete_one({"_id": oid})
    r = reverse(env)
    assert r.report["deleted"] == 1 and r.report["changes"]["unknown_deletes"] == 0, r.report
    assert set(env.azure_rows()) == {("q", "plain")}


def test_uuid_ids_and_uuid_fields_of_poison_documents(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """A UUID _id (and a UUID field in a document that cannot map) has an exact
    text form too: neither the stream nor the reconcile stops on it."""
    env = make_meta_env("max_delete_percent = 100\n")
    u = uuid.uuid4()
    env.coll.insert_one({"_id": u, "PartitionKey": "q", "RowKey": "uuid", "g": uuid.uuid4()})
    env.coll.insert_one({"_id": uuid.uuid4(), "PartitionKey": "q", "RowKey": "poison",
                         "g": uuid.uuid4(), "tags": ["x"]})
    first = reverse(env)  # a reconcile
    assert first.report["written"] == 1 and first.report["failed"] == 1, first.report
    env.coll.update_one({"_id": u}, {"$set": {"n": 1}})
    env.coll.insert_one({"_id": uuid.uuid4(), "PartitionKey": "q", "RowKey": "poison2",
                         "g": uuid.uuid4(), "tags": ["y"]})
    second = reverse(env)  # the stream
    assert second.report["written"] == 1 and second.report["failed"] == 1, second.report
    env.coll.delete_one({"_id": u})
    assert reverse(env).report["deleted"] == 1
    assert ("q", "uuid") not in env.azure_rows()


def test_resolve_keep_azure_writes_into_the_document_with_its_own_id(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    env = make_meta_env()
    oid = ObjectId()
    env.coll.insert_one({"_id": oid, "PartitionKey": "q", "RowKey": "app", "v": "synced"})
    reverse(env)
    env.put_rows(row("q", "app", v=Prop(Edm.STRING, "edited on Azure")))
    env.coll.update_one({"_id": oid}, {"$set": {"v": "edited on AWS"}})
    assert reverse(env).report["conflicts"] == 1
    state, ledger = ledger_of(env)
    try:
        [c] = ledger.conflicts()
    finally:
        state.close()
    arun(resolve_conflict(env.config, c.id, "azure"))
    [d] = list(env.coll.find())
    assert d["_id"] == oid and d["v"] == "edited on Azure"
    env.coll.delete_one({"_id": oid})  # the baseline names this document: its delete applies
    r = reverse(env, max_delete_percent=100)
    assert r.report["deleted"] == 1 and env.azure_rows() == {}, r.report


def test_after_a_rollback_forward_writes_into_documents_with_their_own_id(
    make_meta_env: Callable[..., MetaEnv],
) -> None:
    """Cutover, an application creates documents with ObjectIds, rollback: the
    forward sync (Azure primary again) writes those rows into the very documents
    they came from, not beside them under a second _id (a duplicate-key failure
    with the unique index, two documents for one row without it)."""
    env = make_meta_env()
    oid = ObjectId()
    env.coll.insert_one({"_id": oid, "PartitionKey": "q", "RowKey": "app", "v": "from AWS"})
    assert reverse(env).report["written"] == 1  # post-cutover: the row reaches Azure
    env.put_rows(row("q", "app", v=Prop(Edm.STRING, "after rollback")))  # Azure is primary
    for run in (forward(env), arun(sync_metadata(env.config, MetaOptions.from_config(
            env.config, Direction.AZURE_TO_AWS, full=True)))):
        assert run.status == "succeeded", run.report
        [d] = list(env.coll.find())
        assert d["_id"] == oid and d["v"] == "after rollback"
