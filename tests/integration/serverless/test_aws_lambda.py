"""The Lambda handler in-process on the rig, fed the SQS messages moto delivers
for real S3 writes, as Lambda's event source mapping would."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from crosswind.entities import Edm, Prop
from crosswind.errors import CrosswindError
from crosswind.live.events import s3_queue_body
from crosswind.secrets import redact
from tests.integration.serverless.conftest import (
    PK,
    FakeContext,
    LambdaEnv,
    flight_key,
    invocation_report,
    row,
)

pytestmark = pytest.mark.integration


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_rows_of_new_objects_arrive(make_lambda_env: Callable[..., LambdaEnv],
                                    lambda_logs: io.StringIO,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    env = make_lambda_env()
    ids = _ids(3)
    env.meta.put_rows(*(row(PK, i, status=Prop(Edm.STRING, "ok")) for i in ids))
    # a space and a plus in a key: S3 URL-encodes notification keys
    for i in ids:
        env.put_object(flight_key(i))
    messages = env.receive_all(3)
    resp = env.invoke(messages)
    assert resp == {"batchItemFailures": []}
    assert set(env.meta.documents()) == {(PK, i) for i in ids}
    out = capfd.readouterr().out
    report = invocation_report(lambda_logs)
    assert report["kind"] == "sync-metadata" and report["mode"] == "objects"
    assert report["written"] == 3 and report["objects"]["read"] == 3
    assert report["invocation"]["acked"] == 3
    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [emf] = [d for d in docs if "written" in d and "_aws" in d]
    assert emf["written"] == [3.0] and emf["direction"] == "azure-to-aws"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Crosswind"  # [monitoring]'s
    # the catalogue's crosswind_rows_total, one EMF line per outcome, in the same namespace
    rows = {d["outcome"]: d for d in docs if "crosswind_rows_total" in d}
    assert {o: d["crosswind_rows_total"] for o, d in rows.items()} == {
        "written": [3.0], "unchanged": [0.0], "failed": [0.0], "deleted": [0.0]}
    for d in rows.values():
        [m] = d["_aws"]["CloudWatchMetrics"]
        assert m["Namespace"] == "Crosswind" and d["mode"] == "lambda"
        assert sorted(m["Dimensions"][0]) == ["direction", "mode", "outcome"]
    # the baselines are in the durable ledger, as the CLI's are in SQLite
    assert {(d["pk"], d["rk"]) for d in env.ledger_docs("row")} == {(PK, i) for i in ids}


def test_duplicates_are_harmless(make_lambda_env: Callable[..., LambdaEnv],
                                 lambda_logs: io.StringIO) -> None:
    env = make_lambda_env()
    [i] = _ids(1)
    env.meta.put_rows(row(PK, i, n=Prop(Edm.INT32, 1)))
    env.put_object(flight_key(i))
    [m] = env.receive_all(1)
    # the same message twice in one batch, then again in a later one (at-least-once)
    assert env.invoke([m, m]) == {"batchItemFailures": []}
    assert env.invoke([m]) == {"batchItemFailures": []}
    report = invocation_report(lambda_logs)
    assert report["written"] == 0 and report["unchanged"] == 1
    # a row changed since, and an old notification arriving late: the current row wins
    env.meta.put_rows(row(PK, i, n=Prop(Edm.INT32, 2)))
    assert env.invoke([m]) == {"batchItemFailures": []}
    assert env.meta.documents()[(PK, i)].properties["n"] == Prop(Edm.INT32, 2)
    assert len(env.meta.coll.find_one({"PartitionKey": PK, "RowKey": i}) or {}) > 0
    assert env.meta.coll.count_documents({}) == 1


def test_a_poison_record_lands_in_the_dlq_with_its_reason(
        make_lambda_env: Callable[..., LambdaEnv]) -> None:
    env = make_lambda_env()
    [i] = _ids(1)
    env.meta.put_rows(row(PK, i))
    env.put_object(flight_key(i))
    env.put_object("notes/readme.txt")  # a name outside the [keys] pattern
    env.sqs.send_message(QueueUrl=env.queue_url, MessageBody="{not json")
    messages = env.receive_all(3)
    resp = env.invoke(messages)
    # dead-lettered with the reason and acknowledged: a retry could never help
    assert resp == {"batchItemFailures": []}
    assert (PK, i) in env.meta.documents()
    dead = {m["MessageAttributes"]["crosswind-kind"]["StringValue"]: m
            for m in env.dlq_messages()}
    assert set(dead) == {"poison", "bad-name"}
    assert dead["poison"]["Body"] == "{not json"
    assert dead["poison"]["MessageAttributes"]["crosswind-reason"]["StringValue"].startswith(
        "not-json:")
    assert "notes/readme.txt" in dead["bad-name"]["MessageAttributes"]["crosswind-reason"][
        "StringValue"]
    by_id = {m["MessageId"]: m for m in messages}
    src = dead["poison"]["MessageAttributes"]["crosswind-source-message-id"]["StringValue"]
    assert by_id[src]["Body"] == "{not json"
    env.settle(messages, resp)
    assert env.queue_depth() == 0


def test_without_a_dlq_setting_poison_is_a_batch_item_failure_and_redrive_moves_it(
        make_lambda_env: Callable[..., LambdaEnv]) -> None:
    env = make_lambda_env(dlq=False, max_receive_count=2)
    env.sqs.send_message(QueueUrl=env.queue_url, MessageBody="[1, 2")
    for _ in range(2):
        [m] = env.receive_all(1)
        resp = env.invoke([m])
        assert resp == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}
        env.settle([m], resp)
    # the third receive is past maxReceiveCount: SQS moves it to the DLQ
    assert env.receive(wait=1) == []
    [dead] = env.dlq_messages()
    assert dead["Body"] == "[1, 2"


def test_a_missing_row_is_retried_then_dead_lettered(
        make_lambda_env: Callable[..., LambdaEnv]) -> None:
    env = make_lambda_env(extra_env={"CROSSWIND_ATTEMPTS": "3"})
    late, never = _ids(2)
    env.put_object(flight_key(late))
    env.put_object(flight_key(never))
    messages = env.receive_all(2)
    resp = env.invoke(messages)
    assert len(resp["batchItemFailures"]) == 2  # no rows yet: retried
    env.settle(messages, resp)
    env.meta.put_rows(row(PK, late))  # one row arrives before the next delivery
    messages = env.receive_all(2)
    resp = env.invoke(messages)
    env.settle(messages, resp)
    assert (PK, late) in env.meta.documents()
    assert len(resp["batchItemFailures"]) == 1
    # the DLQ entry of the late row was resolved by its success
    entries = {d["item"]: d["status"] for d in env.ledger_docs("dlq")}
    assert entries[flight_key(late)] == "resolved" and entries[flight_key(never)] == "open"
    [m] = env.receive_all(1)  # third receive: attempts spent
    assert env.invoke([m]) == {"batchItemFailures": []}
    [dead] = env.dlq_messages()
    attrs = dead["MessageAttributes"]
    assert attrs["crosswind-kind"]["StringValue"] == "missing-row"
    assert attrs["crosswind-receive-count"]["StringValue"] == "3"


def test_the_time_cut_off_leaves_nothing_half_applied(
        make_lambda_env: Callable[..., LambdaEnv], lambda_logs: io.StringIO) -> None:
    env = make_lambda_env(extra_env={"CROSSWIND_STOP_MARGIN_S": "10"})
    ids = _ids(6)
    env.meta.put_rows(*(row(PK, i) for i in ids))
    for i in ids:
        env.put_object(flight_key(i))
    messages = env.receive_all(6)[:6]
    # 38 s left, and each record costs 9 s of it: the fourth would start with 2 s left
    resp = env.invoke(messages, FakeContext(budget_s=38, spend_per_call_s=9))
    failed = {f["itemIdentifier"] for f in resp["batchItemFailures"]}
    assert len(failed) == 3
    done = [m for m in messages if m["MessageId"] not in failed]
    keys = {json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"] for m in done}
    rows_done = {(PK, k[-41:-5]) for k in keys}  # the event id before ".json"
    # exactly the acknowledged records' rows were written, the rest untouched
    assert set(env.meta.documents()) == rows_done
    report = invocation_report(lambda_logs)
    assert report["invocation"]["cut_off"] == 3 and report["written"] == 3
    env.settle(messages, resp)
    messages = env.receive_all(3)
    assert env.invoke(messages) == {"batchItemFailures": []}
    assert set(env.meta.documents()) == {(PK, i) for i in ids}


def test_an_unreachable_table_fails_the_records_without_dead_lettering(
        make_lambda_env: Callable[..., LambdaEnv], monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_lambda_env(extra_env={"CROSSWIND_ATTEMPTS": "1"})
    [i] = _ids(1)
    env.meta.put_rows(row(PK, i))
    env.put_object(flight_key(i))
    [m] = env.receive_all(1)
    from crosswind.serverless import aws_lambda

    rt = aws_lambda._RUNTIME = aws_lambda.LambdaRuntime.from_env()  # a warm container
    table, _ = rt.stores()

    async def unreachable(pk: str, rk: str) -> Any:
        from crosswind.errors import EndpointUnreachable

        raise EndpointUnreachable("azure tables: connection refused")

    monkeypatch.setattr(table, "get", unreachable)
    resp = env.invoke([m])
    assert resp == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}
    assert env.dlq_messages(wait=0) == []  # an endpoint failure is never an attempt
    monkeypatch.undo()


def test_other_shapes_sns_and_eventbridge_and_an_inline_config(
        make_lambda_env: Callable[..., LambdaEnv], monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_lambda_env()
    a, b = _ids(2)
    env.meta.put_rows(row(PK, a), row(PK, b))
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    monkeypatch.delenv("CROSSWIND_CONFIG")
    monkeypatch.setenv("CROSSWIND_CONFIG_TOML", env.meta.config_path.read_text())
    from crosswind.serverless import aws_lambda

    aws_lambda.reset()
    for body in (s3_queue_body("upsert", env.bucket, flight_key(a), event_time=now,
                               envelope="sns"),
                 s3_queue_body("upsert", env.bucket, flight_key(b), event_time=now,
                               envelope="eventbridge")):
        env.sqs.send_message(QueueUrl=env.queue_url, MessageBody=body)
    messages = env.receive_all(2)
    assert env.invoke(messages) == {"batchItemFailures": []}
    assert set(env.meta.documents()) == {(PK, a), (PK, b)}


def test_secrets_by_reference_from_secrets_manager(
        make_lambda_env: Callable[..., LambdaEnv], moto: Any, lambda_logs: io.StringIO,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CROSSWIND_SECRETS loads a Secrets Manager secret into the variable the
    config's env: reference names, at the container's start; the value is redacted."""
    import boto3
    from aws_lambda_powertools.utilities import parameters

    from crosswind.serverless import aws_lambda

    env = make_lambda_env()
    uri = env.meta.config.aws.documentdb_uri
    text = env.meta.config_path.read_text()
    assert f'documentdb_uri = "{uri}"' in text
    env.meta.config_path.write_text(text.replace(f'documentdb_uri = "{uri}"',
                                                 'documentdb_uri = "env:CW_TEST_DOCDB_URI"'))
    # the function's own credentials and region, as Lambda sets them (moto here)
    for k, v in {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "test",
                 "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    # set, then removed: the handler's own os.environ write is undone after the test
    monkeypatch.setenv("CW_TEST_DOCDB_URI", "")
    monkeypatch.delenv("CW_TEST_DOCDB_URI")
    monkeypatch.setattr(parameters.base, "DEFAULT_PROVIDERS", {})  # no client from before
    sm = boto3.client("secretsmanager", endpoint_url=moto.endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    name = f"crosswind/docdb-{uuid.uuid4().hex[:8]}"
    arn = sm.create_secret(Name=name, SecretString=uri)["ARN"]

    # a secret that is not there: the cold start fails with one line naming it
    monkeypatch.setenv("CROSSWIND_SECRETS", "CW_TEST_DOCDB_URI=crosswind/missing")
    aws_lambda.reset()
    with pytest.raises(CrosswindError, match="CROSSWIND_SECRETS: CW_TEST_DOCDB_URI: cannot"):
        env.invoke([])
    # by ARN, as the template passes it
    monkeypatch.setenv("CROSSWIND_SECRETS", f"CW_TEST_DOCDB_URI={arn}")
    aws_lambda.reset()
    [i] = _ids(1)
    env.meta.put_rows(row(PK, i))
    env.put_object(flight_key(i))
    assert env.invoke(env.receive_all(1)) == {"batchItemFailures": []}
    assert set(env.meta.documents()) == {(PK, i)}
    assert os.environ["CW_TEST_DOCDB_URI"] == uri
    assert uri not in redact(f"connecting to {uri}")  # registered with the redactor
