"""A TLS-terminating TCP proxy on loopback: HTTPS (or TLS for MongoDB's wire
protocol) in front of a plain emulator, with a certificate of a throwaway
``trustme`` CA, so each client library can be shown to refuse an untrusted
certificate and to accept the configured CA (``[tls] ca_bundle``)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from typing import Any


class TlsProxy:
    def __init__(self, target_port: int, server_ctx: ssl.SSLContext) -> None:
        self.target_port = target_port
        self.ctx = server_ctx
        self.port = 0
        self.handshake_errors = 0
        #: TLS connections accepted (handshake done): proof a client came here
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_w), self._pump(up_r, writer))

    async def _start(self) -> None:
        def on_error(loop: Any, context: dict[str, Any]) -> None:
            self.handshake_errors += 1

        self._loop.set_exception_handler(on_error)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> TlsProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"
