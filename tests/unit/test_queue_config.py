"""Settings of the event queues (``[azure] queue``, ``[aws] sqs_queue_url``), the
factories that open them, and the error translation of the SQS backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as bx

from crosswind.config import parse_config
from crosswind.errors import (
    AuthError,
    ConfigError,
    EndpointUnreachable,
    NotFound,
    StoreError,
    TransientError,
)
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_queue import AzureQueue, queue_url
from crosswind.stores.factory import open_event_queue
from crosswind.stores.sqs import SqsQueue, queue_name_of, region_of, translate

SQS_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/crosswind-events"
CS = ("DefaultEndpointsProtocol=https;AccountName=flights;AccountKey=c2VjcmV0;"
      "EndpointSuffix=core.windows.net")


def config(tmp: Path, azure: dict[str, object] | None = None,
           aws: dict[str, object] | None = None) -> Any:
    return parse_config({
        "azure": {"connection_string": CS, "container": "c", "emulator": True, **(azure or {})},
        "aws": {"bucket": "b", **(aws or {})},
    }, tmp, "cw.toml")


@pytest.mark.parametrize("name", ["abc", "crosswind-events", "q1-2-3", "a" * 63])
def test_azure_queue_names_accepted(tmp_path: Path, name: str) -> None:
    assert config(tmp_path, azure={"queue": name}).azure.queue == name


@pytest.mark.parametrize("name", ["ab", "Upper", "a--b", "-ab", "ab-", "a_b", "a" * 64, "é-q"])
def test_azure_queue_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(tmp_path, azure={"queue": name})
    assert "[azure].queue" in str(e.value) and "not an Azure queue name" in str(e.value)


@pytest.mark.parametrize("url", [
    SQS_URL, "https://sqs.us-east-1.amazonaws.com/000000000000/q.fifo",
    "https://vpce-1a2b-3c4d.sqs.us-east-1.vpce.amazonaws.com/123456789012/q_1",
])
def test_sqs_queue_urls_accepted(tmp_path: Path, url: str) -> None:
    assert config(tmp_path, aws={"sqs_queue_url": url}).aws.sqs_queue_url == url


@pytest.mark.parametrize(("url", "message"), [
    ("sqs://q", "not an http(s) URL"),
    ("https://sqs.us-east-1.amazonaws.com/q", "not a queue URL"),
    ("https://sqs.us-east-1.amazonaws.com/acct/q", "not a queue URL"),
    ("https://sqs.us-east-1.amazonaws.com/123/bad name", "not a queue URL"),
    ("https://sqs.us-east-1.amazonaws.com/123/q?x=1", "not a queue URL"),
    ("http://sqs.us-east-1.amazonaws.com/123/q", "plain http"),
])
def test_sqs_queue_urls_refused(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(tmp_path, aws={"sqs_queue_url": url})
    assert "[aws]" in str(e.value) and message in str(e.value)


def test_plain_http_sqs_only_for_a_loopback_emulator(tmp_path: Path) -> None:
    url = "http://127.0.0.1:5000/123456789012/q"
    assert config(tmp_path, aws={"sqs_queue_url": url, "emulator": True}).aws.sqs_queue_url
    with pytest.raises(ConfigError):
        config(tmp_path, aws={"sqs_queue_url": url})


def test_factories_need_the_queue_settings(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    for side, setting in (("azure", "[azure].queue"), ("aws", "[aws].sqs_queue_url")):
        with pytest.raises(ConfigError) as e:
            asyncio.run(open_event_queue(cfg, side))  # type: ignore[arg-type]
        assert setting in str(e.value)


def test_factories_open_the_configured_queues(tmp_path: Path) -> None:
    cfg = config(tmp_path, azure={"queue": "crosswind-events"},
                 aws={"sqs_queue_url": SQS_URL, "region": "us-east-1"})

    async def go() -> None:
        azure = await open_event_queue(cfg, "azure")
        sqs = await open_event_queue(cfg, "aws")
        assert isinstance(azure, AzureQueue) and isinstance(sqs, SqsQueue)
        assert azure.name == "azure-queue://flights/crosswind-events"
        assert azure.account_name == "flights"
        assert sqs.name == "sqs://crosswind-events"
        assert sqs.region == "eu-west-1"  # the queue's region, not the bucket's setting
        await azure.close()
        await sqs.close()

    asyncio.run(go())


def test_queue_endpoints(tmp_path: Path) -> None:
    assert queue_url(resolve_auth(config(tmp_path).azure)) == \
        "https://flights.queue.core.windows.net"
    by_url = parse_config({"azure": {"account_url": "https://flights.blob.core.windows.net",
                                     "credential": "default", "container": "c"},
                           "aws": {"bucket": "b"}}, tmp_path)
    assert queue_url(resolve_auth(by_url.azure)) == "https://flights.queue.core.windows.net"
    only_blob = config(tmp_path, azure={
        "connection_string": "AccountName=a;AccountKey=c2VjcmV0;"
                             "BlobEndpoint=http://127.0.0.1:10000/a"})
    with pytest.raises(ConfigError) as e:
        queue_url(resolve_auth(only_blob.azure))
    assert "QueueEndpoint" in str(e.value)


def test_sqs_url_parts() -> None:
    assert region_of(SQS_URL) == "eu-west-1"
    assert region_of("https://eu-central-1.queue.amazonaws.com/1/q") == "eu-central-1"
    assert region_of("https://sqs.cn-north-1.amazonaws.com.cn/1/q") == "cn-north-1"
    assert region_of("http://127.0.0.1:5000/123456789012/q") is None
    assert queue_name_of(SQS_URL) == "crosswind-events"


def _client_error(code: str, status: int, message: str = "m", query: str = "") -> bx.ClientError:
    err: dict[str, Any] = {"Code": code, "Message": message}
    if query:
        err["QueryErrorCode"] = query
    return bx.ClientError({"Error": err, "ResponseMetadata": {"HTTPStatusCode": status}},
                          "ReceiveMessage")


@pytest.mark.parametrize(("exc", "kind"), [
    (_client_error("AWS.SimpleQueueService.NonExistentQueue", 400, query="QueueDoesNotExist"),
     NotFound),
    (_client_error("QueueDoesNotExist", 400), NotFound),
    (_client_error("AccessDenied", 403), AuthError),
    (_client_error("InvalidClientTokenId", 403), AuthError),
    (_client_error("SignatureDoesNotMatch", 403), AuthError),
    (_client_error("KMS.AccessDeniedException", 400), AuthError),
    # SQS sends these two with a 403; they are throttling all the same
    (_client_error("RequestThrottled", 403), TransientError),
    (_client_error("OverLimit", 403), TransientError),
    (_client_error("ThrottlingException", 400), TransientError),
    (_client_error("Forbidden", 403), AuthError),
    (_client_error("InternalError", 500), TransientError),
    (_client_error("Whatever", 503), TransientError),
    (_client_error("InvalidParameterValue", 400), StoreError),
    (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), EndpointUnreachable),
    (bx.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), EndpointUnreachable),
    (bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), TransientError),
    (bx.NoCredentialsError(), AuthError),
])
def test_sqs_errors_translate(exc: BaseException, kind: type[StoreError]) -> None:
    out = translate(exc, "sqs://q")
    assert type(out) is kind
    assert str(out).startswith("sqs://q: ") and "\n" not in str(out)


def test_sqs_error_messages_are_redacted_and_one_line() -> None:
    exc = _client_error("AccessDenied", 403, "denied\nfor https://x/?sig=SECRETSIG&se=1")
    out = str(translate(exc, "sqs://q"))
    assert "SECRETSIG" not in out and "\n" not in out
