"""Alert notifications by webhook: one JSON POST per alert that starts or stops
firing, in order, with retries (exponential backoff, full jitter) on network
errors, 408, 429 and 5xx. The sender never blocks the service: ``send`` only
queues (a bounded queue; when it is full the oldest notification is dropped
and counted)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from typing import Any

import aiohttp

from crosswind.secrets import redact

log = logging.getLogger("crosswind.observability")

_RETRY_STATUS = frozenset({408, 425, 429})


class Webhook:
    def __init__(self, url: str, *, attempts: int = 5, timeout_s: float = 10.0,
                 backoff_s: float = 0.5, cap_s: float = 30.0, capacity: int = 1000) -> None:
        self.url = url
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.cap_s = cap_s
        self.capacity = capacity
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None

    def send(self, payload: dict[str, Any]) -> None:
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(payload)
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped,
                "queued": len(self._queue), "last_error": self.last_error}

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; what is queued then gets one last try each."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                if not self._queue:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._first(stop), timeout=5)
                    continue
                await self._deliver(session, self._queue[0], stop)
                self._queue.popleft()
            for payload in list(self._queue):
                await self._deliver(session, payload, None, attempts=1)
            self._queue.clear()

    async def _first(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _deliver(self, session: aiohttp.ClientSession, payload: dict[str, Any],
                       stop: asyncio.Event | None, attempts: int | None = None) -> bool:
        body = redact(json.dumps(payload, default=str))
        tries = attempts or self.attempts
        for attempt in range(1, tries + 1):
            try:
                async with session.post(self.url, data=body,
                                        headers={"Content-Type": "application/json"}) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return True
                    self.last_error = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status not in _RETRY_STATUS:
                        break  # the receiver refuses this notification: no use retrying
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
            if attempt < tries:
                delay = random.uniform(0, min(self.cap_s, self.backoff_s * 2 ** attempt))
                if stop is None:
                    await asyncio.sleep(delay)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
        self.failed += 1
        log.warning("alert webhook: could not deliver a notification: %s", self.last_error)
        return False
