"""Azure Storage Queue as a ``MessageQueue`` (azure-storage-queue, async): the
queue Event Grid delivers blob events to.

Message text is read and written exactly as the service holds it: no message
encode or decode policy is given, so the SDK (v12) neither base64-encodes on the
way in nor decodes on the way out (its pass-through policies are private; the
integration tests guard this: a base64-looking body, and one written with the
SDK's base64 policy, come back unchanged). Event Grid writes base64 of the
event JSON; older deliveries and hand-made messages are plain JSON.
``live.events.parse_azure_message`` reads both; ``live.events.azure_queue_body``
builds what Event Grid writes, and ``send`` enqueues it as is.

The service has no long polling: ``receive(wait_s=...)`` polls with a growing
pause (0.25 s to 2 s) until a message arrives or the wait is over. Every
update of a message (``extend``) issues a new pop receipt, returned in the new
``QueueMessage``; the old one no longer acknowledges it.

Permissions (Azure RBAC): Get Messages and Delete Message need the data action
``queues/messages/process/action`` (in *Storage Queue Data Message Processor*),
Update Message (``extend``) the data action ``queues/messages/write``, Get
Queue Metadata (``depth``, ``check``) the action ``queues/read`` (in *Storage
Queue Data Reader*). A SAS needs ``r``, ``p`` and ``u``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from enum import Enum
from typing import Any

from azure.core import exceptions as az
from azure.storage.queue.aio import QueueClient

from crosswind.errors import ConfigError, NotFound, StoreError
from crosswind.secrets.renewal import Renewal, renewing
from crosswind.stores.azure_common import (
    AzureAuth,
    check_sas,
    client_kwargs,
    resolve_auth,
    translate,
)
from crosswind.stores.memory_queue import check_receive_args
from crosswind.stores.queues import QueueMessage

#: the longest a message can stay hidden (7 days)
MAX_VISIBILITY_S = 7 * 24 * 3600
#: a well-formed id and pop receipt of no message: probes the delete permission
_PROBE_ID = "00000000-0000-0000-0000-000000000000"
_PROBE_RECEIPT = "AAAAAAAAAAAAAAAAAAAAAA=="


def queue_url(auth: AzureAuth) -> str:
    """The account's queue endpoint: from the connection string, or derived from a
    ``*.blob.*`` account URL."""
    if auth.queue_url:
        return auth.queue_url.rstrip("/")
    if ".blob." in auth.blob_url:
        return auth.blob_url.replace(".blob.", ".queue.", 1)
    raise ConfigError("[azure]: cannot tell the queue endpoint; give a connection_string "
                      "with QueueEndpoint (or an account_url of the form "
                      "https://ACCOUNT.blob.core.windows.net)")


def _code(exc: az.HttpResponseError) -> str:
    code = getattr(exc, "error_code", None) or ""
    # the SDK gives a StorageErrorCode (a str Enum) or a plain string
    return str(code.value if isinstance(code, Enum) else code)


@contextlib.contextmanager
def _errors(where: str, *, gone: type[Exception] | None = None) -> Iterator[None]:
    """Translate SDK errors; ``gone`` (if given) is raised for a message that is no
    longer there or was received again (its pop receipt went stale)."""
    try:
        yield
    except az.HttpResponseError as exc:
        code = _code(exc)
        if gone is not None and (
            (exc.status_code == 404 and code != "QueueNotFound")
            or code == "PopReceiptMismatch"
        ):
            raise gone(f"{where}: the message is gone or was received again ({code})") from None
        raise _translated(exc, where) from None
    except az.AzureError as exc:
        raise _translated(exc, where) from None


def _translated(exc: BaseException, where: str) -> StoreError:
    if isinstance(exc, az.HttpResponseError):
        if _code(exc) == "QueueNotFound":
            return NotFound(f"{where}: the queue does not exist (QueueNotFound)")
        # so that messages say "AuthenticationFailed", not "StorageErrorCode.AUTHEN..."
        setattr(exc, "error_code", _code(exc) or None)  # noqa: B010  (not declared on the base)
    return translate(exc, where)


class _Gone(Exception):
    """A message no longer there (its receipt is stale)."""


class AzureQueue:
    """An Azure Storage Queue. Build with ``AzureQueue(resolve_auth(cfg.azure), name)``."""

    def __init__(self, auth: AzureAuth, queue: str) -> None:
        self.auth = auth
        self.queue_name = queue
        self.account_name = auth.account_name
        self.name = f"azure-queue://{auth.account_name}/{queue}"
        #: the most messages one receive returns (one Get Messages request)
        self.max_per_receive = 32
        self._retired: list[Any] = []
        self._connect()
        self.renewal = Renewal(self.name, auth.principal, auth.refs, self._renew)

    def _connect(self) -> None:
        auth, queue = self.auth, self.queue_name
        url = queue_url(auth)
        # The storage SDK's default backoff waits 15 s + 18 s + 24 s on a dead
        # endpoint; two retries (after 3 s and 5 s) ride out a blip, and an outage
        # reaches crosswind's own retries and breakers in about 8 s.
        kw: dict[str, Any] = {
            **client_kwargs(), "initial_backoff": 1, "increment_base": 2, "retry_total": 2,
            "random_jitter_range": 1,
        }
        self._credential: Any = None
        if auth.connection_string:
            self.client = QueueClient.from_connection_string(auth.connection_string, queue, **kw)
        else:
            cred: Any
            if auth.account_key:
                cred = {"account_name": auth.account_name, "account_key": auth.account_key}
            elif auth.sas_token:
                cred = auth.sas_token
            else:
                from azure.identity.aio import DefaultAzureCredential

                cred = self._credential = DefaultAzureCredential()
            self.client = QueueClient(url, queue, credential=cred, **kw)

    async def _renew(self) -> bool:
        """The credentials were refused: resolve them again; a new client if they changed."""
        if self.auth.source is None:
            return False
        new = await asyncio.to_thread(resolve_auth, self.auth.source, refresh=True)
        if new == self.auth:
            return False
        self._retired.append(self.client)
        if self._credential is not None:
            self._retired.append(self._credential)
        self.auth = new
        self._connect()
        return True

    def _where(self) -> str:
        return self.name

    def _receipt(self, pop_receipt: str | None) -> str:
        if not pop_receipt:
            raise StoreError(f"{self.name}: the service returned a message without a pop receipt")
        return pop_receipt

    async def _receive_once(self, max_messages: int, visibility_timeout_s: int
                            ) -> list[QueueMessage]:
        out: list[QueueMessage] = []
        with _errors(self._where()):
            pages = self.client.receive_messages(
                messages_per_page=max_messages, max_messages=max_messages,
                visibility_timeout=min(visibility_timeout_s, MAX_VISIBILITY_S)).by_page()
            # One Get Messages request: the pager would ask again for the rest.
            async for page in pages:
                async for m in page:
                    out.append(QueueMessage(
                        id=m.id, body=m.content if m.content is not None else "",
                        receipt=self._receipt(m.pop_receipt), dequeue_count=m.dequeue_count or 1,
                        enqueued_at=m.inserted_on))
                break
        return out

    @renewing
    async def receive(self, max_messages: int, *, visibility_timeout_s: int,
                      wait_s: float = 0.0) -> list[QueueMessage]:
        check_receive_args(max_messages, visibility_timeout_s, wait_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        pause = 0.25
        while True:
            got = await self._receive_once(max_messages, visibility_timeout_s)
            left = deadline - loop.time()
            if got or left <= 0:
                return got
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)

    @renewing
    async def ack(self, message: QueueMessage) -> None:
        """Delete the message; one already gone, or received again by someone else
        since (stale pop receipt), is left alone without an error."""
        with contextlib.suppress(_Gone), _errors(self._where(), gone=_Gone):
            await self.client.delete_message(message.id, pop_receipt=message.receipt)

    @renewing
    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        """Hide the message ``visibility_timeout_s`` more seconds (0 releases it now);
        the returned message carries the new pop receipt. ``NotFound`` when the
        message is gone or was received again."""
        if visibility_timeout_s < 0:
            raise ValueError(f"visibility_timeout_s must not be negative, not "
                             f"{visibility_timeout_s}")
        with _errors(self._where(), gone=NotFound):
            updated = await self.client.update_message(
                message.id, pop_receipt=message.receipt,
                visibility_timeout=min(visibility_timeout_s, MAX_VISIBILITY_S))
        return QueueMessage(message.id, message.body, self._receipt(updated.pop_receipt),
                            message.dequeue_count, message.enqueued_at)

    @renewing
    async def depth(self) -> int | None:
        """Messages in the queue, visible or not (Azure counts them together)."""
        with _errors(self._where()):
            props = await self.client.get_queue_properties()
        count = props.approximate_message_count
        return int(count) if count is not None else None

    @renewing
    async def send(self, body: str) -> None:
        with _errors(self._where()):
            await self.client.send_message(body)

    @renewing
    async def check(self) -> None:
        """The queue exists, and the credential may read it and delete messages."""
        if self.auth.sas_token:
            check_sas(self.auth.sas_token, "rpu", self.name, "queue",
                      emulator=self.auth.emulator)
        with _errors(self._where()):
            await self.client.get_queue_properties()
        # Deleting no message probes the delete right without touching one:
        # allowed gives 404 (or 400 for the made-up pop receipt), denied gives 403.
        try:
            await self.client.delete_message(_PROBE_ID, pop_receipt=_PROBE_RECEIPT)
        except az.HttpResponseError as exc:
            if exc.status_code in (401, 403) or _code(exc) == "QueueNotFound":
                raise _translated(exc, self._where()) from None
        except az.AzureError as exc:
            raise _translated(exc, self._where()) from None

    async def close(self) -> None:
        for old in self._retired:
            await old.close()
        await self.client.close()
        if self._credential is not None:
            await self._credential.close()
