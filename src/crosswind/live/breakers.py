"""One circuit breaker per endpoint (Azure Blob, Azure Tables, Azure Queue, S3,
SQS, DocumentDB), shared by every worker of the service.

Built on purgatory (an asyncio circuit breaker with state-change hooks): after
``threshold`` failures in a row the breaker opens and calls fail at once with
``BreakerOpen`` instead of waiting on a dead endpoint; after ``ttl_s`` it lets
requests through half-open, and the first success closes it (a failure opens
it again). Only what says the endpoint is unwell counts as a failure —
unreachable, throttled/5xx after the SDK's own retries, credentials refused —
never a missing key or a failed precondition, which are answers.

The service's scheduler asks ``blocked(endpoint)`` before it starts a change,
so while a breaker is open changes wait: nothing is dropped and nothing is
acknowledged.

Every guarded call names its operation (``head``, ``put``, ...): with a
``RequestStats`` the breakers time it and count its outcome per endpoint
(request latency and its baseline, in-flight requests, auth failures: the
monitoring metrics); the stats only count, nothing reads them back here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from crosswind.entities import EdmDateTime, Entity
from crosswind.errors import AuthError, EndpointUnreachable, StoreError, TransientError
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt
from crosswind.observability.requests import Outcome, RequestStats
from crosswind.stores.base import (
    BadRecord,
    Capabilities,
    ObjectReader,
    ObjectStore,
    RecordCapabilities,
    RecordStore,
    RecordWrite,
    StreamBody,
    StreamingPut,
    Upload,
    WriteResult,
)
from crosswind.stores.queues import MessageQueue, QueueMessage

T = TypeVar("T")
log = logging.getLogger("crosswind.live")

Endpoint = Literal["azure-blob", "azure-tables", "azure-queue", "s3", "sqs", "documentdb"]
BreakerState = Literal["closed", "open", "half-open"]
FAILURES = (EndpointUnreachable, TransientError, AuthError)
_STATE_NAMES: Mapping[str, BreakerState] = {
    "closed": "closed", "opened": "open", "half-opened": "half-open"}


class BreakerOpen(StoreError):
    """A call was refused because its endpoint's breaker is open (retryable:
    the change waits and is tried again when the breaker lets requests through)."""

    retryable = True


async def _nothing() -> None:
    return None


def _not_a_failure(exc: BaseException) -> bool:
    return not isinstance(exc, FAILURES)


def _outcome(exc: BaseException) -> Outcome:
    if isinstance(exc, AuthError):
        return "auth_error"
    if isinstance(exc, EndpointUnreachable):
        return "unreachable"
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "answer"  # not found, a failed precondition, ...: the endpoint answered


@dataclass
class _Mirror:
    state: BreakerState = "closed"
    opened_at: float | None = None
    last_error: str | None = None
    opens: int = 0
    #: when a call last succeeded (time.monotonic)
    last_ok: float | None = None


class Breakers:
    def __init__(self, threshold: int = 5, ttl_s: float = 10.0,
                 requests: RequestStats | None = None) -> None:
        self.threshold = threshold
        self.ttl_s = ttl_s
        #: per endpoint and operation: timings and outcomes (monitoring); optional
        self.requests = requests
        # Everything that is not an endpoint failure is excluded (counts as an answer).
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=ttl_s,
            exclude=[(BaseException, _not_a_failure)])
        self._factory.add_listener(self._on_event)
        self._mirror: dict[str, _Mirror] = {}

    def _on_event(self, name: str, kind: str, payload: Any) -> None:
        m = self._mirror.setdefault(name, _Mirror())
        if kind == "state_changed":
            new = _STATE_NAMES.get(str(payload.state), "closed")
            if new == "open" and m.state != "open":
                m.opens += 1
                log.warning("breaker %s opened after %d failures in a row: %s", name,
                            self.threshold, m.last_error)
            elif new == "closed" and m.state != "closed":
                log.warning("breaker %s closed: the endpoint answers again", name)
            m.state = new
            m.opened_at = payload.opened_at if new == "open" else None

    def track(self, endpoint: Endpoint) -> None:
        """Make ``endpoint`` show in ``states()`` before its first call."""
        self._mirror.setdefault(endpoint, _Mirror())

    async def call(self, endpoint: Endpoint, fn: Callable[[], Awaitable[T]],
                   op: str | None = None) -> T:
        """Call ``fn`` through ``endpoint``'s breaker; ``op`` names the request for the
        request stats (None: not a request of its own, e.g. a listing's first ask)."""
        breaker = await self._factory.get_breaker(endpoint)
        stats = self.requests if op is not None else None
        if stats is not None:
            stats.started(endpoint)
        started = time.perf_counter()
        outcome: Outcome = "ok"
        try:
            async with breaker:
                result = await fn()
            self._mirror.setdefault(endpoint, _Mirror()).last_ok = time.monotonic()
            return result
        except OpenedState:
            outcome = "refused"
            m = self._mirror.get(endpoint) or _Mirror()
            raise BreakerOpen(
                f"{endpoint} is not being called: its circuit breaker is open after "
                f"{self.threshold} failures in a row (last: {m.last_error or 'unknown'})"
            ) from None
        except FAILURES as exc:
            outcome = _outcome(exc)
            self._mirror.setdefault(endpoint, _Mirror()).last_error = str(exc)[:300]
            # Counted against this endpoint: callers further up need not count it again.
            setattr(exc, "endpoint", endpoint)  # noqa: B010  (not every error declares it)
            raise
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            if stats is not None:
                stats.finished(endpoint, str(op), time.perf_counter() - started, outcome)
            elif self.requests is not None and outcome == "auth_error":
                self.requests.outcome(endpoint, "other", outcome)

    async def failed(self, endpoint: Endpoint, exc: BaseException) -> None:
        """Count ``exc``, met outside ``call`` (e.g. part-way through a listing),
        against ``endpoint``, and raise it."""

        async def again() -> None:
            raise exc

        await self.call(endpoint, again)

    async def note(self, endpoint: Endpoint, exc: BaseException) -> None:
        """Count an endpoint failure no guarded call has counted yet; never raises."""
        if isinstance(exc, FAILURES) and getattr(exc, "endpoint", None) is None:
            with contextlib.suppress(BaseException):
                await self.failed(endpoint, exc)

    def blocked(self, endpoint: str) -> bool:
        """Open and still inside its TTL: a call now would be refused."""
        m = self._mirror.get(endpoint)
        if m is None or m.state != "open" or m.opened_at is None:
            return False
        return time.time() < m.opened_at + self.ttl_s

    def served_since(self, endpoint: str, since: float) -> bool:
        """Has ``endpoint`` answered a call successfully after ``since`` (monotonic)?"""
        m = self._mirror.get(endpoint)
        return m is not None and m.last_ok is not None and m.last_ok > since

    def hold_s(self, endpoint: str) -> float:
        """Seconds until an open breaker lets a request through (0: not blocked)."""
        m = self._mirror.get(endpoint)
        if m is None or m.state != "open" or m.opened_at is None:
            return 0.0
        return max(0.0, m.opened_at + self.ttl_s - time.time())

    def states(self) -> dict[str, BreakerState]:
        return {name: m.state for name, m in sorted(self._mirror.items())}

    def details(self) -> dict[str, dict[str, Any]]:
        return {name: {"state": m.state, "opens": m.opens, "last_error": m.last_error}
                for name, m in sorted(self._mirror.items())}

    @property
    def any_open(self) -> bool:
        return any(m.state == "open" for m in self._mirror.values())


# -- stores behind a breaker ---------------------------------------------------------
# Wrappers (after object_store's wrapper stores): every request of the inner store
# goes through its endpoint's breaker; the engines do not know.


class _GuardedUpload:
    def __init__(self, inner: Upload, call: Callable[..., Awaitable[Any]]) -> None:
        self.inner = inner
        self._call = call
        self.upload_id = inner.upload_id

    async def put_part(self, number: int, data: bytes, md5: str) -> None:
        await self._call(lambda: self.inner.put_part(number, data, md5), "put_part")

    async def complete(self, size: int, md5: str, part_md5s: list[str],
                       late_metadata: Mapping[str, str]) -> WriteReceipt:
        receipt: WriteReceipt = await self._call(
            lambda: self.inner.complete(size, md5, part_md5s, late_metadata), "complete_upload")
        return receipt

    async def abort(self) -> None:
        await self._call(self.inner.abort, "abort_upload")


class GuardedObjectStore:
    def __init__(self, inner: ObjectStore, endpoint: Endpoint, breakers: Breakers) -> None:
        self.inner = inner
        self.endpoint: Endpoint = endpoint
        self.breakers = breakers
        self.name = inner.name
        self.capabilities: Capabilities = inner.capabilities
        breakers.track(endpoint)

    async def _call(self, fn: Callable[[], Awaitable[T]], op: str | None = None) -> T:
        return await self.breakers.call(self.endpoint, fn, op)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        # Not one breaker call per entry (a listing may hold millions): the
        # breaker is asked once before, and hears of a failure part-way.
        await self._call(_nothing)
        try:
            async for meta in self.inner.list(prefix):
                yield meta
        except FAILURES as exc:
            await self.breakers.failed(self.endpoint, exc)

    async def head(self, key: str) -> ObjectMeta:
        return await self._call(lambda: self.inner.head(key), "head")

    async def get(self, key: str, *, if_match: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> ObjectReader:
        return await self._call(lambda: self.inner.get(key, if_match=if_match,
                                                       byte_range=byte_range), "get")

    async def put(self, key: str, data: bytes, props: ObjectProps, *, md5: str,
                  mode: PutMode = PutMode.OVERWRITE, if_match: str | None = None
                  ) -> WriteReceipt:
        return await self._call(lambda: self.inner.put(key, data, props, md5=md5, mode=mode,
                                                       if_match=if_match), "put")

    async def put_stream(self, key: str, body: StreamBody, props: ObjectProps, *,
                         md5: str | None = None, mode: PutMode = PutMode.OVERWRITE,
                         if_match: str | None = None) -> WriteReceipt:
        """Streamed into the inner store when it can (its ``capabilities.streamed_put``
        says; a breaker never repeats a call, so a body is sent once)."""
        if not isinstance(self.inner, StreamingPut):
            raise NotImplementedError(f"{self.name} cannot take a streamed write")
        inner = self.inner
        return await self._call(lambda: inner.put_stream(key, body, props, md5=md5, mode=mode,
                                                         if_match=if_match))

    async def start_upload(self, key: str, props: ObjectProps, *,
                           mode: PutMode = PutMode.OVERWRITE, if_match: str | None = None
                           ) -> Upload:
        up = await self._call(lambda: self.inner.start_upload(key, props, mode=mode,
                                                              if_match=if_match), "start_upload")
        return _GuardedUpload(up, self._call)

    async def abort_upload(self, key: str, upload_id: str) -> None:
        await self._call(lambda: self.inner.abort_upload(key, upload_id), "abort_upload")

    async def abort_uploads_of(self, key: str) -> int:
        return await self._call(lambda: self.inner.abort_uploads_of(key), "abort_upload")

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self._call(lambda: self.inner.delete(key, if_match=if_match), "delete")

    async def check(self, *, write: bool = False) -> None:
        await self._call(lambda: self.inner.check(write=write), "check")

    async def close(self) -> None:
        await self.inner.close()


class GuardedRecordStore:
    def __init__(self, inner: RecordStore, endpoint: Endpoint, breakers: Breakers) -> None:
        self.inner = inner
        self.endpoint: Endpoint = endpoint
        self.breakers = breakers
        self.name = inner.name
        self.capabilities: RecordCapabilities = inner.capabilities
        breakers.track(endpoint)

    async def _call(self, fn: Callable[[], Awaitable[T]], op: str | None = None) -> T:
        return await self.breakers.call(self.endpoint, fn, op)

    async def list(self, *, partition: str | None = None, since: EdmDateTime | None = None
                   ) -> AsyncIterator[Entity | BadRecord]:
        await self._call(_nothing)
        try:
            async for row in self.inner.list(partition=partition, since=since):
                yield row
        except FAILURES as exc:
            await self.breakers.failed(self.endpoint, exc)

    async def get(self, partition_key: str, row_key: str) -> Entity:
        return await self._call(lambda: self.inner.get(partition_key, row_key), "get")

    async def write_batch(self, writes: Sequence[RecordWrite]) -> Sequence[WriteResult]:
        return await self._call(lambda: self.inner.write_batch(writes), "write_batch")

    async def delete(self, partition_key: str, row_key: str, *, if_match: str | None = None
                     ) -> None:
        await self._call(lambda: self.inner.delete(partition_key, row_key, if_match=if_match),
                         "delete")

    async def check(self) -> None:
        await self._call(self.inner.check, "check")

    async def server_time(self) -> EdmDateTime | None:
        return await self._call(self.inner.server_time, "server_time")

    async def close(self) -> None:
        await self.inner.close()


class GuardedQueue:
    def __init__(self, inner: MessageQueue, endpoint: Endpoint, breakers: Breakers) -> None:
        self.inner = inner
        self.endpoint: Endpoint = endpoint
        self.breakers = breakers
        self.name = inner.name
        breakers.track(endpoint)

    async def _call(self, fn: Callable[[], Awaitable[T]], op: str | None = None) -> T:
        return await self.breakers.call(self.endpoint, fn, op)

    async def receive(self, max_messages: int, *, visibility_timeout_s: int,
                      wait_s: float = 0.0) -> list[QueueMessage]:
        return await self._call(lambda: self.inner.receive(
            max_messages, visibility_timeout_s=visibility_timeout_s, wait_s=wait_s))

    async def ack(self, message: QueueMessage) -> None:
        await self._call(lambda: self.inner.ack(message), "ack")

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> QueueMessage:
        return await self._call(lambda: self.inner.extend(message, visibility_timeout_s),
                                "extend")

    async def depth(self) -> int | None:
        return await self._call(self.inner.depth, "depth")

    async def send(self, body: str) -> None:
        await self._call(lambda: self.inner.send(body), "send")

    async def check(self) -> None:
        await self._call(self.inner.check, "check")

    async def close(self) -> None:
        await self.inner.close()
