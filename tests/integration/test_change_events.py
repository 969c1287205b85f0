"""Change events end to end on the real servers: moto delivers real S3 → SQS
notifications (server mode) for writes and deletes with odd keys, and
``parse_s3_message`` turns them into the right events; on the Azure side the
events Event Grid would write (Azurite emits none) go through a real Storage
Queue, with ``data.url`` as the Azure SDK itself spells it, and the parsed
names address the real blobs."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from crosswind.config import AwsConfig, AzureConfig
from crosswind.live.changes import ObjectEvent
from crosswind.live.events import (
    PoisonMessage,
    azure_queue_body,
    blob_event,
    parse_azure_message,
    parse_s3_message,
    reason_category,
)
from crosswind.rig.emulators import Azurite, Moto
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_queue import AzureQueue
from crosswind.stores.queues import MessageQueue
from crosswind.stores.sqs import SqsQueue
from tests.integration.conftest import unique
from tests.queue_contract import closing

pytestmark = pytest.mark.integration

ODD_KEYS = [
    "flights/2026-12-01/FX 123+456.json", "percent%41%25.json", "ünï/名前/😀.json",
    "a//b", "dir/", "q?x=1#frag&y;z:w=v", "plus+only", "  spaces  ",
]


async def collect(queue: MessageQueue, expected: int, *, rounds: int = 15
                  ) -> list[str]:
    """Bodies of at least ``expected`` messages (or what came in ``rounds`` polls),
    each acknowledged."""
    bodies: list[str] = []
    for _ in range(rounds):
        got = await queue.receive(10, visibility_timeout_s=30, wait_s=1)
        for m in got:
            bodies.append(m.body)
            await queue.ack(m)
        if len(bodies) >= expected and not got:
            break
    return bodies


def parse_all(bodies: list[str], parse: Any) -> tuple[list[ObjectEvent], Counter[str]]:
    events: list[ObjectEvent] = []
    reasons: Counter[str] = Counter()
    for body in bodies:
        try:
            parsed = parse(body)
        except PoisonMessage as exc:  # pragma: no cover - shown on failure
            raise AssertionError(f"poison from the real service: {exc}") from None
        events += parsed.events
        reasons.update(reason_category(r) for r in parsed.ignored)
    return events, reasons


def test_moto_delivers_s3_notifications_that_parse_to_the_right_events(
        moto: Moto, s3_client: Any, sqs_client: Any) -> None:
    bucket, other = unique("ev"), unique("other")
    url = sqs_client.create_queue(QueueName=unique("s3ev"))["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]
                                          )["Attributes"]["QueueArn"]
    for b in (bucket, other):
        s3_client.create_bucket(Bucket=b)
        s3_client.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": [
                "s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
    started = datetime.now(UTC) - timedelta(seconds=5)
    for key in ODD_KEYS:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"{}")
    s3_client.copy_object(Bucket=bucket, Key="copied file.json",
                          CopySource={"Bucket": bucket, "Key": ODD_KEYS[0]})
    upload = s3_client.create_multipart_upload(Bucket=bucket, Key="big file+.bin")
    part = s3_client.upload_part(Bucket=bucket, Key="big file+.bin",
                                 UploadId=upload["UploadId"], PartNumber=1,
                                 Body=b"x" * (5 * 1024 * 1024))
    s3_client.complete_multipart_upload(
        Bucket=bucket, Key="big file+.bin", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    for key in ODD_KEYS[:3]:
        s3_client.delete_object(Bucket=bucket, Key=key)
    s3_client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a//b"}]})
    s3_client.put_object(Bucket=other, Key="not ours", Body=b"x")

    async def go() -> list[str]:
        queue = await SqsQueue.open(AwsConfig(
            bucket=bucket, endpoint_url=moto.endpoint, access_key_id="test",
            secret_access_key="test", emulator=True, sqs_queue_url=url))
        async with closing(queue):
            return await collect(queue, 17)

    events, reasons = parse_all(asyncio.run(go()),
                                lambda b: parse_s3_message(b, bucket=bucket))
    upserts = {e.key for e in events if e.op == "upsert"}
    deletes = [e.key for e in events if e.op == "delete"]
    assert upserts == {*ODD_KEYS, "copied file.json", "big file+.bin"}
    assert sorted(deletes) == sorted([*ODD_KEYS[:3], "a//b"])
    # one s3:TestEvent per configured bucket, and the other bucket's write
    assert reasons == Counter({"test-event": 2, "other-bucket": 1})
    kinds = Counter(e.event_type for e in events)
    assert kinds["ObjectCreated:Copy"] == 1 and kinds["ObjectCreated:CompleteMultipartUpload"] == 1
    # moto also reports the multipart upload as an ObjectCreated:Put of the same key
    # (RIG.md): a harmless extra upsert, since an upsert only says "look at this key"
    assert kinds["ObjectCreated:Put"] in (len(ODD_KEYS), len(ODD_KEYS) + 1)
    for e in events:
        assert e.container == bucket and e.sequencer is None  # moto sends none
        assert started <= e.event_time <= datetime.now(UTC) + timedelta(seconds=5)
        if e.op == "upsert":
            assert e.size is not None and e.etag
    # every key names a real object (or one deleted since)
    alive = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert alive == upserts - set(deletes)


def test_event_grid_events_through_a_real_storage_queue_address_the_real_blobs(
        azurite: Azurite, blob_service: BlobServiceClient,
        queue_service: QueueServiceClient) -> None:
    container, qname = unique("ev"), unique("egq").lower()[:63]
    blob_service.create_container(container)
    queue_service.create_queue(qname)
    now = datetime.now(UTC)
    bodies: list[str] = []
    for i, key in enumerate(ODD_KEYS):
        blob = blob_service.get_blob_client(container, key)
        props = blob.upload_blob(b"{}", overwrite=True)
        ev = blob_event("upsert", container, key, event_time=now, event_id=f"e{i}",
                        blob_endpoint=azurite.blob_url, sequencer=f"{i:032X}",
                        etag=props["etag"].strip('"'), size=2,
                        schema="cloudevents" if i % 2 else "eventgrid")
        # the URL exactly as the Azure SDK spells this blob's address
        ev["data"]["url"] = blob.url
        if i == 0:
            del ev["subject"]  # the URL alone must do
        bodies.append(azure_queue_body(ev, encoding="base64" if i % 3 else "plain"))
    bodies.append(azure_queue_body(blob_event("delete", "someone-elses", "x", event_time=now)))

    async def go() -> list[str]:
        cfg = AzureConfig(connection_string=azurite.connection_string, container=container,
                          emulator=True, queue=qname)
        queue = AzureQueue(resolve_auth(cfg), qname)
        async with closing(queue):
            await queue.check()
            for body in bodies:
                await queue.send(body)
            assert await queue.depth() == len(bodies)
            got = await collect(queue, len(bodies))
            assert await queue.depth() == 0
            return got

    try:
        received = asyncio.run(go())
        assert sorted(received) == sorted(bodies)  # nothing re-encoded on the way
        events, reasons = parse_all(received, lambda b: parse_azure_message(
            b, container=container, account="devstoreaccount1"))
        assert reasons == Counter({"other-container": 1})
        assert sorted(e.key for e in events) == sorted(ODD_KEYS)
        for e in events:
            props = blob_service.get_blob_client(container, e.key).get_blob_properties()
            assert props.etag.strip('"') == e.etag and props.size == e.size
            assert e.sequencer is not None and e.event_time == now
    finally:
        blob_service.delete_container(container)
        queue_service.delete_queue(qname)


def test_events_of_another_account_on_the_same_queue_are_ignored(azurite: Azurite) -> None:
    ev = blob_event("upsert", "events", "k", event_time=datetime.now(UTC), account="elsewhere")
    parsed = parse_azure_message(json.dumps(ev), container="events",
                                 account=resolve_auth(AzureConfig(
                                     connection_string=azurite.connection_string,
                                     container="events", emulator=True)).account_name)
    assert parsed.ignored == ("other-account: 'elsewhere'",)
