"""Amazon SQS as a ``MessageQueue`` (aiobotocore): the queue S3 event
notifications (directly, through SNS, or from EventBridge) are delivered to.

The client is built like the S3 store's: region, ``endpoint_url`` (moto) and
keys from ``[aws]``, or the default credential chain; standard-mode retries
(3 attempts) below crosswind's own. The region is the queue URL's own when it
names one (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``): SQS only
answers for a queue in its region.

``receive`` long-polls (``WaitTimeSeconds``, at most 20 s a call, repeated for
longer waits) and returns at most 10 messages a call, SQS's limit. ``depth`` is
every message not yet deleted: visible, in flight and delayed (Azure cannot
tell them apart, so both backends report the same thing). ``ack`` of a message
already deleted, or with a receipt handle gone stale, is not an error; SQS
then may or may not delete it (a later receipt handle is the one that counts).

IAM for crosswind on the queue: ``sqs:ReceiveMessage``, ``sqs:DeleteMessage``,
``sqs:ChangeMessageVisibility``, ``sqs:GetQueueAttributes`` (plus
``sqs:SendMessage`` only for tests and the demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore import exceptions as bx

from crosswind.config import AwsConfig
from crosswind.errors import (
    AuthError,
    ConfigError,
    EndpointUnreachable,
    NotFound,
    StoreError,
    TransientError,
)
from crosswind.secrets import Renewal, redact
from crosswind.secrets.aws import AwsCredentials, aws_credentials, aws_references
from crosswind.secrets.renewal import renewing
from crosswind.stores.memory_queue import check_receive_args
from crosswind.stores.queues import QueueMessage
from crosswind.tls import botocore_verify

#: SQS limits: messages per ReceiveMessage, seconds of one long poll, visibility
MAX_PER_CALL = 10
MAX_WAIT_S = 20
MAX_VISIBILITY_S = 12 * 3600
_REGION = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$|"
                     r"^([a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?$")
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)
_XML_CODE = re.compile(r"<Code>(.*?)</Code>", re.S)
#: a receipt handle of no message: probes the DeleteMessage right
_PROBE_RECEIPT = "crosswind-permission-probe"

_NOT_FOUND = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
              "NonExistentQueue"}
_AUTH = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId",
         "SignatureDoesNotMatch", "UnrecognizedClientException", "ExpiredToken",
         "ExpiredTokenException", "InvalidSecurity", "MissingAuthenticationToken",
         "IncompleteSignature", "InvalidAccessKeyId", "KMS.AccessDeniedException",
         "KMS.DisabledException", "RequestExpired"}
_TRANSIENT = {"RequestThrottled", "ThrottlingException", "Throttling", "OverLimit",
              "ServiceUnavailable", "InternalError", "InternalFailure",
              "KMS.ThrottlingException", "RequestTimeout", "AWS.SimpleQueueService.Unavailable"}
#: codes of a receipt handle that is stale, expired or of a message gone
_GONE = {"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
         "InvalidReceiptHandle", "MessageNotInflight",
         "AWS.SimpleQueueService.MessageNotInflight"}


def region_of(queue_url: str) -> str | None:
    """The region an SQS queue URL names (None for emulators and VPC endpoints)."""
    m = _REGION.match(urlsplit(queue_url).hostname or "")
    if m is None:
        return None
    return m.group(1) or m.group(3)


def queue_name_of(queue_url: str) -> str:
    return urlsplit(queue_url).path.rstrip("/").rpartition("/")[2]


def _code(exc: bx.ClientError) -> str:
    err = exc.response.get("Error", {})
    return str(err.get("Code", "") or "")


def _gone(exc: bx.ClientError) -> bool:
    code = _code(exc)
    if code in _GONE:
        return True
    # "Value ... for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    msg = str(exc.response.get("Error", {}).get("Message", ""))
    return code == "InvalidParameterValue" and "receipthandle" in msg.replace(" ", "").lower()


def translate(exc: BaseException, where: str) -> StoreError:
    """Map a botocore exception to the crosswind error tree (one line, redacted)."""
    if isinstance(exc, bx.ClientError):
        code = _code(exc)
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        query_code = str(exc.response.get("Error", {}).get("QueryErrorCode", "") or "")
        raw = str(exc.response.get("Error", {}).get("Message", "") or code)
        # behind some proxies (and moto) the message is the whole XML error document
        inner = _XML_MESSAGE.search(raw)
        inner_code = _XML_CODE.search(raw)
        if inner_code and code in ("", str(status)):
            code = inner_code.group(1)
        msg = redact(" ".join((inner.group(1) if inner else raw).split()))[:300]
        if code in _NOT_FOUND or query_code in _NOT_FOUND:
            return NotFound(f"{where}: the queue does not exist ({code})")
        # SQS answers throttling (RequestThrottled, OverLimit) with a 403: the code
        # decides before the status does.
        if code in _TRANSIENT:
            return TransientError(f"{where}: service error ({code}): {msg}")
        if code in _AUTH or status in (401, 403):
            return AuthError(f"{where}: credentials rejected or permission denied "
                             f"({code or status}): {msg}")
        if status is not None and (status >= 500 or status == 429):
            return TransientError(f"{where}: service error ({code or status}): {msg}")
        return StoreError(f"{where}: {code or status}: {msg}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return EndpointUnreachable(f"{where}: cannot reach the endpoint: "
                                   f"{redact(' '.join(str(exc).split()))[:300]}")
    if isinstance(exc, bx.NoCredentialsError):
        return AuthError(f"{where}: no AWS credentials found (config or default chain)")
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectionClosedError, bx.HTTPClientError)):
        return TransientError(f"{where}: {redact(' '.join(str(exc).split()))[:300]}")
    return StoreError(f"{where}: {type(exc).__name__}: "
                      f"{redact(' '.join(str(exc).split()))[:300]}")


@contextlib.contextmanager
def sqs_errors(where: str) -> Iterator[None]:
    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise translate(exc, where) from None


class SqsQueue:
    """An SQS queue. Create with ``await SqsQueue.open(cfg.aws)``; ``close()`` when done."""

    def __init__(self, cfg: AwsConfig, queue_url: str, creds: AwsCredentials | None) -> None:
        self.cfg = cfg
        self.queue_url = queue_url
        self.region = region_of(queue_url) or cfg.region
        self.name = f"sqs://{queue_name_of(queue_url)}"
        #: the most messages one receive returns (SQS's limit per call)
        self.max_per_receive = MAX_PER_CALL
        self._aws = creds
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self.renewal = Renewal(self.name, creds.principal if creds else "AWS default chain",
                               aws_references(cfg), self._renew,
                               lambda: self._aws.expires_at if self._aws else None)

    async def _renew(self) -> bool:
        new = await asyncio.to_thread(aws_credentials, self.cfg, refresh=True)
        if new is None or new == self._aws:
            return False
        self._aws = new
        async with self._lock:
            self._client = None  # the old one closes with the queue
        return True

    @classmethod
    async def open(cls, cfg: AwsConfig, queue_url: str | None = None) -> SqsQueue:
        url = queue_url or cfg.sqs_queue_url
        if not url:
            raise ConfigError("[aws].sqs_queue_url is required for S3 change events")
        return cls(cfg, url, await asyncio.to_thread(aws_credentials, cfg))

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                from aiobotocore.session import get_session
                from botocore.config import Config as BotoConfig

                boto_cfg = BotoConfig(
                    region_name=self.region,
                    retries={"max_attempts": 3, "mode": "standard"},
                    # a long poll holds the connection for up to 20 s
                    connect_timeout=10, read_timeout=MAX_WAIT_S + 20, max_pool_connections=16,
                )
                creds = self._aws.as_boto() if self._aws else {}
                self._client = await self._stack.enter_async_context(
                    get_session().create_client("sqs", endpoint_url=self.cfg.endpoint_url,
                                                config=boto_cfg, verify=botocore_verify(),
                                                **creds))
            return self._client

    @renewing
    async def receive(self, max_messages: int, *, visibility_timeout_s: int,
                      wait_s: float = 0.0) -> list[QueueMessage]:
        check_receive_args(max_messages, visibility_timeout_s, wait_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            left = deadline - loop.time()
            poll = min(MAX_WAIT_S, math.ceil(left)) if left > 0 else 0
            with sqs_errors(self.name):
                client = await self.client()
                resp = await client.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=min(max_messages, MAX_PER_CALL),
                    VisibilityTimeout=min(visibility_timeout_s, MAX_VISIBILITY_S),
                    WaitTimeSeconds=poll,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
            got = [self._message(m) for m in resp.get("Messages", [])]
            if got or deadline - loop.time() <= 0 or poll == 0:
                return got

    @staticmethod
    def _message(m: dict[str, Any]) -> QueueMessage:
        attrs = m.get("Attributes", {})
        sent = attrs.get("SentTimestamp")
        return QueueMessage(
            id=m["MessageId"], body=m.get("Body", ""), receipt=m["ReceiptHandle"],
            dequeue_count=int(attrs.get("ApproximateReceiveCount", 1)),
            enqueued_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        )

    @renewing
    async def ack(self, message: QueueMessage) -> None:
        """DeleteMessage; a message already gone, or a stale receipt handle, is fine."""
        try:
            client = await self.client()
            await client.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message.receipt)
        except bx.ClientError as exc:
            if not _gone(exc):
                raise translate(exc, self.name) from None
        except bx.BotoCoreError as exc:
            raise translate(exc, self.name) from None

    @renewing
    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        """ChangeMessageVisibility (0 releases the message now); the receipt handle
        stays the same. ``NotFound`` when the message is gone or no longer in flight."""
        if visibility_timeout_s < 0:
            raise ValueError(f"visibility_timeout_s must not be negative, not "
                             f"{visibility_timeout_s}")
        try:
            client = await self.client()
            await client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message.receipt,
                VisibilityTimeout=min(visibility_timeout_s, MAX_VISIBILITY_S))
        except bx.ClientError as exc:
            if _gone(exc):
                raise NotFound(f"{self.name}: message {message.id} is gone or no longer in "
                               f"flight ({_code(exc)})") from None
            raise translate(exc, self.name) from None
        except bx.BotoCoreError as exc:
            raise translate(exc, self.name) from None
        return message

    @renewing
    async def depth(self) -> int | None:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        with sqs_errors(self.name):
            client = await self.client()
            resp = await client.get_queue_attributes(QueueUrl=self.queue_url,
                                                     AttributeNames=names)
        attrs = resp.get("Attributes", {})
        if not any(n in attrs for n in names):
            return None
        return sum(int(attrs.get(n, 0)) for n in names)

    @renewing
    async def send(self, body: str) -> None:
        with sqs_errors(self.name):
            client = await self.client()
            await client.send_message(QueueUrl=self.queue_url, MessageBody=body)

    @renewing
    async def check(self) -> None:
        """The queue exists and the credentials may read its attributes and delete
        messages (a delete of no message: allowed gives ReceiptHandleIsInvalid,
        denied gives AccessDenied). Receiving cannot be probed without receiving,
        which would count against the queue's redrive limit."""
        with sqs_errors(self.name):
            client = await self.client()
            await client.get_queue_attributes(QueueUrl=self.queue_url,
                                              AttributeNames=["QueueArn"])
        await self.ack(QueueMessage("probe", "", _PROBE_RECEIPT))

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
