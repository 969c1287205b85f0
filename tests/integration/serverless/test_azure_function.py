"""The Azure Function in-process on the rig: timer invocations (decoded from the
host's JSON by azure-functions' own converter) continue the DocumentDB change
stream into Azure Tables from the checkpoint in the durable ledger."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from azure.functions import meta
from azure.functions.timer import TimerRequestConverter
from pymongo import MongoClient

from crosswind.entities import Edm, Prop
from crosswind.errors import CrosswindError
from crosswind.metasync.context import MetaOptions
from crosswind.metasync.runner import sync_metadata
from crosswind.model import Direction
from crosswind.serverless.azure_function import app, reverse_sync_once
from crosswind.serverless.ledger import DocumentLedger
from crosswind.serverless.settings import Settings
from tests.integration.metadata.conftest import MetaEnv
from tests.integration.monitoring_rig import Receiver, receiver
from tests.integration.serverless.conftest import row

__all__ = ["receiver"]  # the fixture

pytestmark = pytest.mark.integration

TIMER_JSON = json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": {
    "Last": "2026-12-01T10:00:00+00:00", "Next": "2026-12-01T10:01:00+00:00",
    "LastUpdated": "2026-12-01T10:00:00+00:00"}, "IsPastDue": False})


def doc(pk: str, rk: str, **fields: Any) -> dict[str, Any]:
    return {"_id": f"{pk}/{rk}", "PartitionKey": pk, "RowKey": rk, **fields}


def invoke(env: MetaEnv, settings: Settings | None = None, **kw: Any) -> dict[str, Any]:
    return asyncio.run(reverse_sync_once(env.config, settings or Settings(), **kw))


def values(env: MetaEnv) -> dict[tuple[str, str], Any]:
    return {k: e.properties.get("v") and e.properties["v"].value
            for k, e in env.azure_rows().items()}


def ledger_of(env: MetaEnv) -> DocumentLedger:
    return DocumentLedger.open(env.config)


def test_timer_invocations_continue_the_stream_from_the_checkpoint(
        make_meta_env: Callable[..., MetaEnv], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    env = make_meta_env("max_delete_percent = 100\n")  # one delete of five rows is 20 %
    env.coll.insert_many([doc("p", f"r{i}", v=i) for i in range(5)])
    # through the FunctionApp, as the host calls it: the config inline in an app setting
    monkeypatch.setenv("CROSSWIND_CONFIG_TOML", env.config_path.read_text())
    monkeypatch.delenv("CROSSWIND_CONFIG", raising=False)
    [fn] = app.get_functions()
    assert fn.get_bindings_dict()["bindings"][0]["type"] == "timerTrigger"
    timer = TimerRequestConverter.decode(meta.Datum(TIMER_JSON, "json"), trigger_metadata={})
    asyncio.run(fn.get_user_function()(timer))
    assert values(env) == {("p", f"r{i}"): i for i in range(5)}  # no checkpoint: reconciled
    env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 10}})
    env.coll.delete_one({"_id": "p/r2"})
    env.coll.insert_one(doc("q", "new", v=7))
    caplog.clear()
    with caplog.at_level("INFO", logger="crosswind.serverless"):
        second = invoke(env)
    [line] = [json.loads(r.getMessage()) for r in caplog.records
              if r.name == "crosswind.serverless"]
    assert line["message"] == "crosswind invocation" and line["report"]["written"] == 2
    # the catalogue's rows metric, as the CLI's one-shot runs are counted
    assert {(s["name"], s["labels"]["mode"], s["labels"]["direction"], s["labels"]["outcome"],
             s["value"]) for s in line["metrics"]} == {
        ("crosswind_rows_total", "function", "aws-to-azure", o, n)
        for o, n in (("written", 2), ("unchanged", 0), ("failed", 0), ("deleted", 1))}
    assert second["change_stream"] == {"resumed_from_token": True, "reconciles": []}
    assert second["written"] == 2 and second["deleted"] == 1
    assert values(env) == {("p", "r0"): 0, ("p", "r1"): 10, ("p", "r3"): 3, ("p", "r4"): 4,
                           ("q", "new"): 7}
    assert second["invocation"]["platform"] == "azure-functions"


def test_a_checkpoint_survives_a_crash_between_and_within_invocations(
        make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    env.coll.insert_many([doc("p", f"r{i}", v=i) for i in range(3)])
    invoke(env)
    ledger = ledger_of(env)
    token = ledger.resume_token()
    assert token is not None  # durable, in DocumentDB: nothing on local disk
    ledger.close()
    # A new process (nothing in memory survives): the next invocation resumes.
    env.coll.update_one({"_id": "p/r0"}, {"$set": {"v": 100}})
    r = invoke(env)
    assert r["change_stream"]["reconciles"] == [] and r["written"] == 1

    # Killed after applying a batch, before its checkpoint: the next one repeats it.
    class DiesBeforeCheckpoint(DocumentLedger):
        def set_resume_token(self, token: str) -> None:
            raise RuntimeError("killed")

    dying = DiesBeforeCheckpoint(MongoClient(env.config.aws.documentdb_uri or "",
                                             uuidRepresentation="standard", tz_aware=True),
                                 env.config.aws.database, "crosswind_ledger",
                                 ledger.scope)
    env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 111}})
    env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 112}})
    with pytest.raises(RuntimeError, match="killed"):
        invoke(env, ledger=dying)
    assert values(env)[("p", "r1")] == 112  # applied, not checkpointed
    env.coll.update_one({"_id": "p/r2"}, {"$set": {"v": 222}})
    after = invoke(env)
    assert after["change_stream"]["reconciles"] == []
    assert after["conflicts"] == 0  # its own write coming back is no conflict
    assert values(env) == {("p", "r0"): 100, ("p", "r1"): 112, ("p", "r2"): 222}


def test_conflict_rules_and_partition_transactions(make_meta_env: Callable[..., MetaEnv]
                                                   ) -> None:
    env = make_meta_env("batch_size = 500\n")
    env.coll.insert_many([doc("big", f"r{i:03d}", v=i) for i in range(250)])
    first = invoke(env)
    assert first["written"] == 250 and first["batches"] >= 3  # ≤ 100 rows per transaction
    env.coll.insert_many([doc("p", "a", v=1), doc("p", "b", v=1)])
    invoke(env)
    # a write on the replica (Azure) side, then the primary changes the same row
    env.put_rows(row("p", "a", v=Prop(Edm.INT64, 99)))
    env.coll.update_one({"_id": "p/a"}, {"$set": {"v": 2}})
    env.coll.update_one({"_id": "p/b"}, {"$set": {"v": 2}})
    r = invoke(env)
    assert r["conflicts"] == 1 and r["written"] == 1
    assert values(env)[("p", "a")] == 99 and values(env)[("p", "b")] == 2
    ledger = ledger_of(env)
    [c] = ledger.conflicts()
    ledger.close()
    assert (c["pk"], c["rk"]) == ("p", "a") and json.loads(c["aws_version"])
    assert r["conflict_examples"][0]["why"] == "changed on Azure since the last sync"


def test_history_loss_falls_back_to_a_reconcile(make_meta_env: Callable[..., MetaEnv],
                                                short_history_secantus: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(short_history_secantus,
                                                      uuidRepresentation="standard")
    try:
        env = make_meta_env("max_delete_percent = 50\n", mongo_uri=short_history_secantus,
                            client=client)
        env.coll.insert_many([doc("p", f"r{i}", v=i) for i in range(10)])
        assert invoke(env)["written"] == 10
        env.coll.delete_one({"_id": "p/r0"})
        env.coll.insert_many([doc("bulk", f"{i:04d}", v=i) for i in range(1100)])
        second = invoke(env)
        [reason] = second["change_stream"]["reconciles"]
        assert "resume token no longer valid" in reason
        assert second["deleted"] == 1 and len(env.azure_rows()) == 1109
        env.coll.update_one({"_id": "p/r3"}, {"$set": {"v": 33}})
        third = invoke(env)
        assert third["change_stream"]["reconciles"] == []
        assert values(env)[("p", "r3")] == 33
    finally:
        client.close()


def test_the_time_budget_stops_between_batches(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env("batch_size = 20\nflush_interval_s = 0.05\n")
    invoke(env)  # checkpoint first (empty collection)
    env.coll.insert_many([doc(f"p{i % 7}", f"r{i:04d}", v=i) for i in range(400)])
    # a budget of 1.5 s less a 0.5 s margin: stopped long before 400 changes are read
    cut = invoke(env, Settings(time_budget_s=1.5, stop_margin_s=0.5))
    assert cut["invocation"]["stopped_by_budget"] is True
    applied = env.azure_rows()
    assert 0 < len(applied) < 400
    docs = env.documents()
    # nothing half-applied: every row on Azure is its document's current version
    assert all(e.same_content(docs[k]) for k, e in applied.items())
    rest = invoke(env)
    assert rest["change_stream"]["reconciles"] == [] and rest["conflicts"] == 0
    assert len(env.azure_rows()) == 400


def test_the_cli_and_the_function_agree(make_meta_env: Callable[..., MetaEnv]) -> None:
    """The CLI's reverse sync (SQLite ledger) and the function (DocumentDB ledger)
    produce the same table from the same collection."""
    cli_env, fn_env = make_meta_env(), make_meta_env()
    for e in (cli_env, fn_env):
        e.coll.insert_many([doc("p", f"r{i}", v=i, s=Prop(Edm.STRING, "x").value)
                            for i in range(20)])
    asyncio.run(sync_metadata(cli_env.config, MetaOptions.from_config(
        cli_env.config, Direction.AWS_TO_AZURE)))
    invoke(fn_env)
    assert {k: dict(e.properties) for k, e in cli_env.azure_rows().items()} == \
        {k: dict(e.properties) for k, e in fn_env.azure_rows().items()}


def test_an_unreachable_documentdb_fails_the_invocation(make_meta_env: Callable[..., MetaEnv]
                                                        ) -> None:
    env = make_meta_env()
    ledger = ledger_of(env)
    try:
        bad = env.reload().config.model_copy(update={"aws": env.config.aws.model_copy(
            update={"documentdb_uri": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500"
                                      "&connectTimeoutMS=500"})})
        with pytest.raises(CrosswindError, match="cannot reach"):
            asyncio.run(reverse_sync_once(bad, Settings(), ledger=ledger))
        assert ledger.resume_token() is None
    finally:
        ledger.close()


def _track(path: str, body: Any) -> tuple[int, Any]:
    items = body if isinstance(body, list) else [body]
    return 200, {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}


def _rows_posted(rec: Receiver) -> dict[str, float]:
    """crosswind_rows_total by outcome, summed over what reached the receiver."""
    out: dict[str, float] = {}
    for body in rec.bodies("/v2.1/track"):
        for env in body if isinstance(body, list) else [body]:
            data = env["data"]["baseData"]
            props = data.get("properties") or {}
            for m in data["metrics"]:
                if m["name"] == "crosswind_rows_total":
                    assert props["mode"] == "function" and props["direction"] == "aws-to-azure"
                    out[props["outcome"]] = out.get(props["outcome"], 0) + float(m["value"])
    return out


def test_rows_go_to_application_insights_as_the_catalogue_metric(
        make_meta_env: Callable[..., MetaEnv], receiver: Callable[..., Receiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With APPLICATIONINSIGHTS_CONNECTION_STRING (the template sets it), each
    invocation's rows reach customMetrics as crosswind_rows_total, as deltas: a
    second invocation sends only what it added (a local ingestion receiver)."""
    from crosswind.serverless import azure_function

    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    monkeypatch.setenv("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")
    rec = receiver(_track)
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING",
                       f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={rec.url}/")
    azure_function.reset_monitor()
    try:
        env = make_meta_env()
        env.coll.insert_many([doc("p", f"r{i}", v=i) for i in range(4)])
        invoke(env)
        assert _rows_posted(rec) == {"written": 4, "unchanged": 0, "failed": 0, "deleted": 0}
        rec.posts.clear()
        env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 10}})
        invoke(env)
        assert _rows_posted(rec).get("written") == 1  # the delta, not the total of 5
    finally:
        azure_function.reset_monitor()
    # an unreachable ingestion endpoint costs a warning, never the invocation
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING",
                       "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                       "IngestionEndpoint=http://127.0.0.1:9/")
    try:
        env.coll.update_one({"_id": "p/r2"}, {"$set": {"v": 20}})
        assert invoke(env)["written"] == 1
    finally:
        azure_function.reset_monitor()
