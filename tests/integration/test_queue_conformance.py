"""The queue contract (``tests/queue_contract.py``) against Azure Storage Queues on
Azurite and SQS on moto server, each check on a fresh queue; and what only the
real services can show: bodies written by other writers, credentials, endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient, TextBase64EncodePolicy

from crosswind.config import AwsConfig, AzureConfig
from crosswind.errors import AuthError, EndpointUnreachable, NotFound
from crosswind.live.events import azure_queue_body, blob_event, parse_azure_message
from crosswind.rig.emulators import AZURITE_KEY, Azurite, Moto, free_port
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_queue import AzureQueue
from crosswind.stores.queues import MessageQueue
from crosswind.stores.sqs import SqsQueue
from tests.integration.conftest import unique
from tests.queue_contract import (
    CHECKS,
    Harness,
    HarnessFactory,
    closing,
    parametrize_checks,
    run_check,
)

pytestmark = pytest.mark.integration


def azure_cfg(azurite: Azurite, connection_string: str | None = None) -> AzureConfig:
    return AzureConfig(connection_string=connection_string or azurite.connection_string,
                       container="unused", emulator=True)


def aws_cfg(moto: Moto, url: str | None = None) -> AwsConfig:
    return AwsConfig(bucket="unused", endpoint_url=moto.endpoint, access_key_id="test",
                     secret_access_key="test", emulator=True, sqs_queue_url=url)


async def real_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.fixture
def azure_factory(azurite: Azurite, queue_service: QueueServiceClient) -> HarnessFactory:
    @contextlib.asynccontextmanager
    async def open_harness() -> AsyncIterator[Harness]:
        name = unique("q").lower()[:63]
        queue_service.create_queue(name)
        auth = resolve_auth(azure_cfg(azurite))
        queue, missing = AzureQueue(auth, name), AzureQueue(auth, f"{name[:55]}-missing")
        try:
            async with closing(queue, missing):
                yield Harness(queue, real_sleep, time.time, 32, missing)
        finally:
            queue_service.delete_queue(name)

    return open_harness


@pytest.fixture
def sqs_factory(moto: Moto, sqs_client: Any) -> HarnessFactory:
    @contextlib.asynccontextmanager
    async def open_harness() -> AsyncIterator[Harness]:
        url = sqs_client.create_queue(QueueName=unique("q"))["QueueUrl"]
        queue = await SqsQueue.open(aws_cfg(moto, url))
        missing = await SqsQueue.open(aws_cfg(moto, url + "-missing"))
        try:
            async with closing(queue, missing):
                yield Harness(queue, real_sleep, time.time, 10, missing)
        finally:
            sqs_client.delete_queue(QueueUrl=url)

    return open_harness


@parametrize_checks()
def test_contract_azure_queue(check_name: str, azure_factory: HarnessFactory) -> None:
    run_check(azure_factory, CHECKS[check_name])


@parametrize_checks()
def test_contract_sqs(check_name: str, sqs_factory: HarnessFactory) -> None:
    run_check(sqs_factory, CHECKS[check_name])


def test_backends_implement_the_protocol(azurite: Azurite, moto: Moto) -> None:
    async def go() -> None:
        azure = AzureQueue(resolve_auth(azure_cfg(azurite)), "some-queue")
        sqs = await SqsQueue.open(aws_cfg(moto, f"{moto.endpoint}/123456789012/q"))
        async with closing(azure, sqs):
            for q in (azure, sqs):
                assert isinstance(q, MessageQueue)

    asyncio.run(go())


# -- Azure only ------------------------------------------------------------------
def test_azure_reads_what_a_base64_writer_wrote(azurite: Azurite,
                                                queue_service: QueueServiceClient) -> None:
    """Event Grid (and Functions, Storage Explorer's default) write base64 text: it must
    reach the parser as written, not decoded or re-encoded by the SDK."""
    name = unique("b64").lower()[:63]
    queue_service.create_queue(name)
    event = blob_event("upsert", "events", "a b+c%/ü😀.json", event_time=_now())
    writer = queue_service.get_queue_client(name, message_encode_policy=TextBase64EncodePolicy())
    plain = azure_queue_body(event, encoding="plain")
    writer.send_message(plain)  # the SDK base64-encodes it, as Event Grid does

    async def go() -> None:
        q = AzureQueue(resolve_auth(azure_cfg(azurite)), name)
        async with closing(q):
            (m,) = await q.receive(1, visibility_timeout_s=30)
            assert m.body == azure_queue_body(event)  # base64 of the JSON, untouched
            (ev,) = parse_azure_message(m.body, container="events").events
            assert ev.key == "a b+c%/ü😀.json"

    try:
        asyncio.run(go())
    finally:
        queue_service.delete_queue(name)


def test_azure_wrong_key_is_an_auth_error(azurite: Azurite,
                                          queue_service: QueueServiceClient) -> None:
    name = unique("auth").lower()[:63]
    queue_service.create_queue(name)
    wrong = "A" * 86 + "=="
    cs = azurite.connection_string.replace(AZURITE_KEY, wrong)

    async def go() -> None:
        q = AzureQueue(resolve_auth(azure_cfg(azurite, cs)), name)
        async with closing(q):
            for call in (q.check, q.depth, lambda: q.receive(1, visibility_timeout_s=5)):
                with pytest.raises(AuthError) as info:
                    await call()
                assert wrong not in str(info.value) and AZURITE_KEY not in str(info.value)
                assert "\n" not in str(info.value)

    try:
        asyncio.run(go())
    finally:
        queue_service.delete_queue(name)


def test_azure_dead_endpoint_is_unreachable(azurite: Azurite) -> None:
    dead = azurite.connection_string.replace(f":{azurite.queue_port}/", f":{free_port()}/")

    async def go() -> None:
        q = AzureQueue(resolve_auth(azure_cfg(azurite, dead)), "some-queue")
        async with closing(q):
            started = time.monotonic()
            with pytest.raises(EndpointUnreachable):
                await q.depth()
            assert time.monotonic() - started < 30  # bounded SDK retries

    asyncio.run(go())


# -- SQS only --------------------------------------------------------------------
def test_sqs_dead_endpoint_is_unreachable(moto: Moto) -> None:
    cfg = AwsConfig(bucket="unused", endpoint_url=f"http://127.0.0.1:{free_port()}",
                    access_key_id="test", secret_access_key="test", emulator=True,
                    sqs_queue_url=f"http://127.0.0.1:{free_port()}/123456789012/q")

    async def go() -> None:
        q = await SqsQueue.open(cfg)
        async with closing(q):
            with pytest.raises(EndpointUnreachable):
                await q.depth()

    asyncio.run(go())


def test_sqs_check_of_a_missing_queue(moto: Moto) -> None:
    async def go() -> None:
        q = await SqsQueue.open(aws_cfg(moto, f"{moto.endpoint}/123456789012/{unique('n')}"))
        async with closing(q):
            with pytest.raises(NotFound) as info:
                await q.check()
            assert "does not exist" in str(info.value)

    asyncio.run(go())


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.fixture(scope="module")
def strict_moto() -> Any:
    """A moto server that checks credentials and IAM policies; its first actions
    (a queue, two users with policies and keys) are let through to set it up."""
    m = Moto(env={"INITIAL_NO_AUTH_ACTION_COUNT": "7"}).start()
    yield m
    m.stop()


def test_sqs_credentials_and_permissions(strict_moto: Moto) -> None:
    import json

    import boto3

    kw: dict[str, Any] = {"endpoint_url": strict_moto.endpoint, "region_name": "us-east-1",
                          "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    url = boto3.client("sqs", **kw).create_queue(QueueName="strict")["QueueUrl"]
    iam = boto3.client("iam", **kw)
    keys = {}
    for user, actions in (("reader", ["sqs:GetQueueAttributes", "sqs:ReceiveMessage"]),
                          ("crosswind", ["sqs:GetQueueAttributes", "sqs:ReceiveMessage",
                                         "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"])):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]

    def cfg(key_id: str, secret: str) -> AwsConfig:
        return AwsConfig(bucket="unused", endpoint_url=strict_moto.endpoint, emulator=True,
                         access_key_id=key_id, secret_access_key=secret, sqs_queue_url=url)

    async def go() -> None:
        wrong_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNOTAREALKEY"
        for key_id, secret, needle in (
            ("AKIAWRONGWRONGWRONG", wrong_secret, "InvalidClientTokenId"),
            (keys["reader"]["AccessKeyId"], keys["reader"]["SecretAccessKey"],
             "sqs:DeleteMessage"),
        ):
            q = await SqsQueue.open(cfg(key_id, secret))
            async with closing(q):
                with pytest.raises(AuthError) as info:
                    await q.check()
                text = str(info.value)
                assert needle in text and secret not in text and "\n" not in text
                assert "<" not in text  # the XML error document is read, not shown
        ok = await SqsQueue.open(cfg(keys["crosswind"]["AccessKeyId"],
                                     keys["crosswind"]["SecretAccessKey"]))
        async with closing(ok):
            await ok.check()  # the least-privilege policy of the README is enough
            assert await ok.depth() == 0

    asyncio.run(go())


def test_azure_sas_needs_read_process_update(azurite: Azurite,
                                             queue_service: QueueServiceClient) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.queue import generate_queue_sas

    name = unique("sas").lower()[:63]
    queue_service.create_queue(name)
    queue_service.get_queue_client(name).send_message("hello")

    def sas_cfg(permission: str) -> AzureConfig:
        token = generate_queue_sas("devstoreaccount1", name, AZURITE_KEY, permission=permission,
                                   expiry=datetime.now(UTC) + timedelta(hours=1))
        cs = (f"QueueEndpoint={azurite.queue_url};BlobEndpoint={azurite.blob_url};"
              f"SharedAccessSignature={token}")
        return azure_cfg(azurite, cs)

    async def go() -> None:
        q = AzureQueue(resolve_auth(sas_cfg("rpu")), name)
        async with closing(q):
            await q.check()
            (m,) = await q.receive(1, visibility_timeout_s=30)
            m = await q.extend(m, 60)
            await q.ack(m)
            assert await q.depth() == 0
        short = AzureQueue(resolve_auth(sas_cfg("rp")), name)
        async with closing(short):
            with pytest.raises(AuthError) as info:
                await short.check()
            text = str(info.value)
            assert "lacks permission u (update)" in text and "sig=" not in text

    try:
        asyncio.run(go())
    finally:
        queue_service.delete_queue(name)
