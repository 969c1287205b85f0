"""An HTTP proxy that misbehaves on purpose, in front of a real local server.

For tests and benchmarks only. It forwards every request to ``upstream`` and
streams the answer back, and can:

* answer a share of requests (or the next N) itself with 503 or 429, as a
  throttled cloud endpoint does, without forwarding them;
* add latency to every request (``rtt_s``), as a WAN between two clouds does;
* cap the rate at which request bodies are passed on (``upload_bytes_per_s``),
  so that a test can catch a large upload in the middle.

Request and response bodies stream through (a large PUT is never held whole),
so the proxy's own memory stays flat and it can sit in front of benchmarks.

It runs in a thread with its own event loop, so synchronous tests and
benchmarks can start it, point a config at ``url`` and change its behaviour
while a crosswind process talks through it.

``LatencyProxy`` is the other kind: a plain TCP relay that delays bytes, not
requests, as a WAN link between two clouds does (what the benchmarks'
latency-bound mode puts in front of the emulators).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

# Headers that belong to one hop and must not be forwarded (RFC 9110 §7.6.1).
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
        "transfer-encoding", "host", "content-length"}

_BODIES = {
    503: ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServerBusy</Code>"
          "<Message>The server is busy (injected by the test proxy).</Message></Error>"),
    429: ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
          "<Message>Please reduce your request rate (injected by the test proxy)."
          "</Message></Error>"),
}


@dataclass
class Faults:
    #: share of requests answered with ``status`` instead of being forwarded
    rate: float = 0.0
    #: the next this-many requests are answered with ``status``, whatever ``rate`` says
    next_n: int = 0
    status: int = 503
    #: added round-trip time per request (half before forwarding, half after)
    rtt_s: float = 0.0
    #: request bodies are forwarded at most this fast (0: as fast as they come)
    upload_bytes_per_s: float = 0.0
    injected: int = 0
    forwarded: int = 0
    #: bytes of request bodies passed on so far (streamed ones)
    body_bytes: int = 0
    rnd: random.Random = field(default_factory=lambda: random.Random(7))

    def hit(self) -> bool:
        if self.next_n > 0:
            self.next_n -= 1
            return True
        return self.rate > 0 and self.rnd.random() < self.rate


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults or Faults()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    # -- the proxy -----------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        f = self.faults
        if f.rtt_s:
            await asyncio.sleep(f.rtt_s / 2)
        if f.hit():
            f.injected += 1
            await request.read()  # the client has sent it; answer as the service would
            headers = {"Retry-After": "1"} if f.status == 429 else {}
            return web.Response(status=f.status, text=_BODIES.get(f.status, "injected"),
                                content_type="application/xml", headers=headers)
        f.forwarded += 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["Host"] = request.headers.get("Host", "")
        data: object = None
        if request.content_length:
            # Streamed on, with the length the client declared (servers such as
            # moto refuse chunked uploads).
            headers["Content-Length"] = str(request.content_length)
            data = self._body(request)
        elif request.body_exists:
            data = await request.read()
        async with self._session.request(
                request.method, self.upstream + request.rel_url.raw_path_qs, headers=headers,
                data=data, allow_redirects=False) as up:
            out = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in _HOP:
                    out.headers.add(k, v)
            if up.content_length is not None:
                out.content_length = up.content_length
            await out.prepare(request)
            async for chunk in up.content.iter_chunked(1 << 16):
                await out.write(chunk)
            if f.rtt_s:
                await asyncio.sleep(f.rtt_s / 2)
            await out.write_eof()
            return out

    async def _body(self, request: web.Request) -> AsyncIterator[bytes]:
        rate = self.faults.upload_bytes_per_s
        async for chunk in request.content.iter_chunked(1 << 16):
            if rate:
                await asyncio.sleep(len(chunk) / rate)
            self.faults.body_bytes += len(chunk)
            yield chunk

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._session = ClientSession(
            connector=TCPConnector(limit=256), auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            timeout=ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await self._session.close()

    # -- from synchronous code ------------------------------------------------------
    def start(self) -> FaultProxy:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LatencyProxy:
    """A TCP relay that delays every byte by half a round trip in each direction,
    as a WAN link does (no bandwidth cap, no loss): a request and its answer
    cost one ``rtt_s``, a new connection one more (its handshake), and bytes in
    flight are not held back by the delay, so throughput still scales with
    concurrency. Far cheaper per request than ``FaultProxy`` (it parses no
    HTTP), so it can sit in front of benchmarks without being their limit."""

    def __init__(self, upstream_host: str, upstream_port: int, rtt_s: float) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rtt_s = rtt_s
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        half = self.rtt_s / 2

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((loop.time() + half, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(Exception):
                await sender

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(self.rtt_s)  # the TCP handshake across the link
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._pump(client_r, up_w), self._pump(up_r, client_w))
        finally:
            for w in (up_w, client_w):
                with contextlib.suppress(Exception):
                    w.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop.wait()

    def start(self) -> LatencyProxy:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="latency-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
