"""Credentials refused mid-run: count it, refresh the secrets once, retry once.

A store holds a ``Renewal``: the endpoint, who it signs in as (``principal``,
safe to show), the references its credentials came from and a ``rebuild``
coroutine that resolves them again (bypassing the cache) and rebuilds the
store's clients, returning whether anything changed. The decorators wrap the
store's methods:

* ``renewing``: a call refused with ``AuthError`` triggers one refresh (one per
  store at a time: concurrent failures wait for it and then retry) and is
  retried once; a second refusal, or a refresh that found the same values,
  raises a clear ``AuthError`` that names the references (never a value).
* ``renewing_listing``: the same for a listing; one that fails after it
  yielded goes on after the last key it yielded (listings are sorted).
* ``renewing_once``: a call that cannot be repeated (a streamed body) refreshes
  and then raises ``TransientError``, so the caller's own retry (which re-reads
  the source) goes on with the new credentials.

Every refusal is counted in ``AUTH_FAILURES`` per endpoint and principal: the
service's status document carries ``AUTH_FAILURES.snapshot()`` as
``auth_failures`` (monitoring reads it there, or the counter itself).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from crosswind.errors import AuthError, TransientError
from crosswind.secrets.redaction import redact

log = logging.getLogger("crosswind.secrets")

P = ParamSpec("P")
T = TypeVar("T")
#: after a refresh found the same values, another is tried only after this long
RETRY_REFRESH_S = 30.0


@dataclass
class _Count:
    endpoint: str
    principal: str
    count: int = 0
    refreshed: int = 0
    recovered: int = 0
    last_at: str | None = None
    last_error: str | None = None


class AuthFailures:
    """Authentication/authorization refusals, per (endpoint, principal)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], _Count] = {}
        self._lock = threading.Lock()

    def record(self, endpoint: str, principal: str, error: str) -> None:
        with self._lock:
            c = self._counts.setdefault((endpoint, principal), _Count(endpoint, principal))
            c.count += 1
            c.last_at = datetime.now(UTC).isoformat(timespec="seconds")
            c.last_error = " ".join(redact(error).split())[:300]

    def outcome(self, endpoint: str, principal: str, *, refreshed: bool,
                recovered: bool) -> None:
        with self._lock:
            c = self._counts.setdefault((endpoint, principal), _Count(endpoint, principal))
            c.refreshed += refreshed
            c.recovered += recovered

    def total(self) -> int:
        with self._lock:
            return sum(c.count for c in self._counts.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """One entry per endpoint and principal: ``count`` (refusals), ``refreshed``
        (credential refreshes they caused), ``recovered`` (calls that then
        succeeded), ``last_at``, ``last_error`` (redacted)."""
        with self._lock:
            return [dict(c.__dict__) for c in sorted(self._counts.values(),
                                                     key=lambda c: (c.endpoint, c.principal))]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


AUTH_FAILURES = AuthFailures()


class Renewal:
    def __init__(self, endpoint: str, principal: str, refs: Sequence[str],
                 rebuild: Callable[[], Awaitable[bool]] | None = None,
                 expires_at: Callable[[], float | None] | None = None) -> None:
        self.endpoint = endpoint
        self.principal = principal
        #: "[azure].connection_string (secretsmanager:cw/azure)", ...: what a refresh reads
        self.refs = tuple(refs)
        self.rebuild = rebuild
        self.expires_at = expires_at
        self.generation = 0
        self._lock = asyncio.Lock()
        self._unchanged_at: float | None = None

    @property
    def source(self) -> str:
        return ", ".join(self.refs) or "literal settings"

    async def before_call(self) -> None:
        """Temporary credentials (an assumed role) about to expire are renewed first."""
        if self.expires_at is None or self.rebuild is None:
            return
        at = self.expires_at()
        if at is None or time.time() < at - 300:
            return
        gen = self.generation
        async with self._lock:
            if gen == self.generation and await self.rebuild():
                self.generation += 1
                log.info("%s: temporary credentials renewed before they expire", self.endpoint)

    async def recover(self, exc: AuthError, generation: int) -> bool:
        """After ``exc`` (seen at ``generation``): may the call be retried?"""
        AUTH_FAILURES.record(self.endpoint, self.principal, str(exc))
        async with self._lock:
            if self.generation != generation:
                return True  # another call refreshed meanwhile
            if self.rebuild is None or not self.refs:
                return False
            now = time.monotonic()
            if self._unchanged_at is not None and now - self._unchanged_at < RETRY_REFRESH_S:
                return False
            changed = await self.rebuild()
            AUTH_FAILURES.outcome(self.endpoint, self.principal, refreshed=True,
                                  recovered=False)
            if not changed:
                self._unchanged_at = now
                return False
            self._unchanged_at = None
            self.generation += 1
            log.warning("%s: credentials refused; fetched them again from %s and retrying",
                        self.endpoint, self.source)
            return True

    def still_refused(self, exc: AuthError, *, refreshed: bool) -> AuthError:
        if not self.refs:
            return exc
        if refreshed:
            return AuthError(f"{exc} (still refused after the credentials were fetched "
                             f"again from {self.source})")
        return AuthError(f"{exc} (the credentials fetched again from {self.source} are "
                         "unchanged: rotate the secret there, or check the permissions)")


class _Renewing(Protocol):
    @property
    def renewal(self) -> Renewal: ...


S = TypeVar("S", bound=_Renewing)


def renewing(fn: Callable[Concatenate[S, P], Coroutine[Any, Any, T]]
             ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        r = self.renewal
        await r.before_call()
        gen = r.generation
        try:
            return await fn(self, *args, **kwargs)
        except AuthError as exc:
            if not await r.recover(exc, gen):
                raise r.still_refused(exc, refreshed=False) from None
        try:
            result = await fn(self, *args, **kwargs)
        except AuthError as exc:
            AUTH_FAILURES.record(r.endpoint, r.principal, str(exc))
            raise r.still_refused(exc, refreshed=True) from None
        AUTH_FAILURES.outcome(r.endpoint, r.principal, refreshed=False, recovered=True)
        return result

    return cast(Callable[Concatenate[S, P], Coroutine[Any, Any, T]], wrapper)


def renewing_once(fn: Callable[Concatenate[S, P], Coroutine[Any, Any, T]]
                  ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        r = self.renewal
        await r.before_call()
        gen = r.generation
        try:
            return await fn(self, *args, **kwargs)
        except AuthError as exc:
            if not await r.recover(exc, gen):
                raise r.still_refused(exc, refreshed=False) from None
            raise TransientError(f"{exc} (credentials fetched again from {r.source}; the "
                                 "write is sent again)") from None

    return cast(Callable[Concatenate[S, P], Coroutine[Any, Any, T]], wrapper)


def renewing_listing(key: Callable[[Any], Any]) -> Callable[
        [Callable[Concatenate[S, P], AsyncIterator[T]]],
        Callable[Concatenate[S, P], AsyncIterator[T]]]:
    """For sorted listings; ``key`` gives an item's sort key."""

    def deco(fn: Callable[Concatenate[S, P], AsyncIterator[T]]
             ) -> Callable[Concatenate[S, P], AsyncIterator[T]]:
        @functools.wraps(fn)
        async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            r = self.renewal
            await r.before_call()
            gen = r.generation
            last: Any = None
            try:
                async for item in fn(self, *args, **kwargs):
                    last = key(item)
                    yield item
                return
            except AuthError as exc:
                if not await r.recover(exc, gen):
                    raise r.still_refused(exc, refreshed=False) from None
            try:
                async for item in fn(self, *args, **kwargs):
                    k = key(item)
                    if last is not None and k <= last:
                        continue
                    yield item
            except AuthError as exc:
                AUTH_FAILURES.record(r.endpoint, r.principal, str(exc))
                raise r.still_refused(exc, refreshed=True) from None
            AUTH_FAILURES.outcome(r.endpoint, r.principal, refreshed=False, recovered=True)

        return cast(Callable[Concatenate[S, P], AsyncIterator[T]], wrapper)

    return deco
