"""Serverless handlers on the rig: a bucket whose real S3 event notifications
(moto) go to an SQS queue with a DLQ, an Azure table (Azurite) and a DocumentDB
database (SecantusDB), and the two platforms' invocations as they deliver them:
Lambda's SQS event source mapping (``LambdaPoller``: receive, build the event,
invoke, delete what succeeded) and Azure's timer (``timer_request``)."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from pymongo import MongoClient

from crosswind.entities import Entity, Prop
from crosswind.rig.emulators import Moto
from crosswind.serverless import aws_lambda
from tests.integration.conftest import unique
from tests.integration.metadata.conftest import (
    MetaEnv,
    make_meta_env,
    mongo,
    short_history_secantus,
    table_service,
)

# fixtures shared with the metadata tests
__all__ = ["make_meta_env", "mongo", "short_history_secantus", "table_service"]

FLIGHT = "events/2026/11/26/AA1234/DFW-LAX/departure-{}.json"
PK = "AA1234_20261126"


def row(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, MappingProxyType(props))


def flight_key(event_id: str) -> str:
    return FLIGHT.format(event_id)


@dataclass
class FakeContext:
    """What Lambda hands the handler: the request id and the time left."""

    budget_s: float = 60.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "crosswind-metadata"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:crosswind"
    log_group_name: str = "/aws/lambda/crosswind"
    log_stream_name: str = "stream"
    #: each call of get_remaining_time_in_millis spends this much of the budget
    #: (a test's stand-in for time passing while records are applied)
    spend_per_call_s: float = 0.0
    _start: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        self._start -= self.spend_per_call_s
        return int(max(0.0, self.budget_s - (time.monotonic() - self._start)) * 1000)


def lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping builds from ReceiveMessage."""
    def attrs(m: dict[str, Any]) -> dict[str, Any]:
        return {k: {"stringValue": v.get("StringValue"), "binaryValue": None,
                    "stringListValues": [], "binaryListValues": [],
                    "dataType": v["DataType"]}
                for k, v in (m.get("MessageAttributes") or {}).items()}

    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": attrs(m),
        "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": "us-east-1"} for m in messages]}


@dataclass
class LambdaEnv:
    meta: MetaEnv
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    mongo: MongoClient[dict[str, Any]]

    def put_object(self, key: str, data: bytes = b"{}") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def receive(self, n: int = 10, wait: float = 1.0) -> list[dict[str, Any]]:
        return list(self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=n, WaitTimeSeconds=int(wait),
            VisibilityTimeout=30, AttributeNames=["All"],
            MessageAttributeNames=["All"]).get("Messages", []))

    def receive_all(self, expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """At least ``expected`` messages (S3 notifications arrive within moments)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            got += self.receive()
        assert len(got) >= expected, f"{len(got)} of {expected} notifications arrived"
        return got

    def settle(self, messages: list[dict[str, Any]], response: dict[str, Any]) -> list[str]:
        """What the event source mapping does with the handler's answer: delete the
        messages that succeeded; the failed ones become visible again at once (a
        test need not wait out the visibility timeout). Returns the failed ids."""
        failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                                   ReceiptHandle=m["ReceiptHandle"],
                                                   VisibilityTimeout=0)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=m["ReceiptHandle"])
        return failed

    def invoke(self, messages: list[dict[str, Any]], context: FakeContext | None = None,
               handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
               ) -> dict[str, Any]:
        event = lambda_event(messages, self.queue_arn)
        return (handler or aws_lambda.handler)(event, context or FakeContext())

    def dlq_messages(self, wait: float = 1.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait),
                MessageAttributeNames=["All"], AttributeNames=["All"]).get("Messages", [])
            if not got:
                return out
            out += got
            wait = 0

    def queue_depth(self) -> int:
        a = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in a["Attributes"].values())

    def ledger_docs(self, t: str) -> list[dict[str, Any]]:
        db = self.mongo[self.meta.config.aws.database]
        return list(db["crosswind_ledger"].find({"t": t}))


def _insert_after(text: str, section: str, lines: str) -> str:
    return text.replace(f"[{section}]\n", f"[{section}]\n{lines}", 1)


@pytest.fixture
def make_lambda_env(make_meta_env: Callable[..., MetaEnv], moto: Moto, s3_client: Any,
                    sqs_client: Any, mongo: MongoClient[dict[str, Any]],
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LambdaEnv]]:
    def make(metadata: str = "", *, dlq: bool = True, max_receive_count: int = 10,
             extra_env: dict[str, str] | None = None) -> LambdaEnv:
        meta = make_meta_env(metadata)
        bucket = meta.config.aws.bucket
        s3_client.create_bucket(Bucket=bucket)
        dlq_url = sqs_client.create_queue(QueueName=unique("dlq"))["QueueUrl"]
        dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=[
            "QueueArn"])["Attributes"]["QueueArn"]
        url = sqs_client.create_queue(QueueName=unique("events"), Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(max_receive_count)})})[
            "QueueUrl"]
        arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        s3_client.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        # S3 sends an s3:TestEvent when notifications are configured: out of the way
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = sqs_client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get(
                "Messages", [])
            for m in got:
                sqs_client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if got:
                break
        text = _insert_after(meta.config_path.read_text(), "aws",
                             f'endpoint_url = "{moto.endpoint}"\naccess_key_id = "test"\n'
                             'secret_access_key = "test"\n')
        meta.config_path.write_text(text)
        meta.reload()
        monkeypatch.delenv("CROSSWIND_CONFIG_TOML", raising=False)
        monkeypatch.setenv("CROSSWIND_CONFIG", str(meta.config_path))
        if dlq:
            monkeypatch.setenv("CROSSWIND_DLQ_URL", dlq_url)
        else:
            monkeypatch.delenv("CROSSWIND_DLQ_URL", raising=False)
        for k, v in (extra_env or {}).items():
            monkeypatch.setenv(k, v)
        aws_lambda.reset()
        return LambdaEnv(meta, s3_client, sqs_client, bucket, url, arn, dlq_url, mongo)

    yield make
    aws_lambda.reset()


@pytest.fixture
def lambda_logs(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the handler logs (Powertools' JSON lines), one per line."""
    buf = io.StringIO()
    monkeypatch.setattr(aws_lambda.logger.registered_handler, "stream", buf)
    return buf


def log_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def invocation_report(buf: io.StringIO) -> dict[str, Any]:
    """The last invocation's report, from its ``crosswind invocation`` log line."""
    return [d for d in log_lines(buf) if d.get("message") == "crosswind invocation"][-1][
        "report"]
