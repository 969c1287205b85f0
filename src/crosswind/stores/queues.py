"""The message-queue contract: Azure Storage Queues (Event Grid deliveries) and
Amazon SQS (S3 event notifications).

At-least-once delivery: a received message stays in the queue, invisible for
``visibility_timeout_s``, and comes back unless it is acknowledged (deleted).
The replication service acknowledges a message only after every change it
carried is durably applied and recorded.

Errors: only ``crosswind.errors`` types — ``NotFound`` (the queue does not
exist), ``AuthError``, ``EndpointUnreachable``, ``TransientError``. An
acknowledgement of a message that is already gone (its visibility expired and
someone else took it, or it was deleted) is not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class QueueMessage:
    #: the service's id of the message
    id: str
    #: the body as the queue returned it: text, possibly base64 (the parser decides)
    body: str
    #: handle for ``ack``/``extend`` (Azure pop receipt, SQS receipt handle)
    receipt: str
    #: how many times it has been delivered, this time included
    dequeue_count: int = 1
    #: when the queue accepted it (UTC), if the service says
    enqueued_at: datetime | None = None


@runtime_checkable
class MessageQueue(Protocol):
    #: human-readable location, e.g. ``azure-queue://account/name``, ``sqs://name``
    name: str

    async def receive(self, max_messages: int, *, visibility_timeout_s: int,
                      wait_s: float = 0.0) -> list[QueueMessage]:
        """Up to ``max_messages`` (1..32; SQS caps at 10 per call) messages, hidden
        for ``visibility_timeout_s``; waits up to ``wait_s`` for the first one
        (long polling where the service has it). An empty list when none."""
        ...

    async def ack(self, message: QueueMessage) -> None:
        """Delete the message: it was handled."""
        ...

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        """Keep the message hidden for ``visibility_timeout_s`` more seconds; returns
        the message with its new receipt (Azure issues a new pop receipt)."""
        ...

    async def depth(self) -> int | None:
        """Approximate number of messages waiting (None if the service cannot say)."""
        ...

    async def send(self, body: str) -> None:
        """Enqueue ``body`` as is (tests, the demo and the load generator enqueue
        what Event Grid would deliver)."""
        ...

    async def check(self) -> None:
        """Probe that the queue exists and the credentials may receive and delete."""
        ...

    async def close(self) -> None: ...
