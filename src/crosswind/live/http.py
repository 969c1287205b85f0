"""The service's local HTTP endpoint (aiohttp, already a dependency of the AWS
client): ``/healthz`` (200 while healthy, 503 with the reasons when a breaker
is open or the lag SLO is breached) and ``/api/status`` (the same JSON as
``crosswind status --json``). Routes for metrics and the dashboard are added
next to these.

Protection is generic, for any app served here (``EndpointSecurity``): a
loopback bind needs nothing; any other bind needs a bearer token and a TLS
certificate and key (references, resolved by ``endpoint_security``). With a
token, every request must carry ``Authorization: Bearer <token>``; one that
does not gets 401 with an empty body and nothing else, and is counted in
``crosswind.secrets.AUTH_FAILURES`` (endpoint: the URL, principal: the
client's address). Everything served passes the redactor.
"""

from __future__ import annotations

import hmac
import json
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from crosswind.config import is_loopback_bind
from crosswind.errors import ConfigError
from crosswind.secrets import AUTH_FAILURES, redact, resolve

StatusFn = Callable[[], dict[str, Any]]
HealthFn = Callable[[], list[str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class EndpointSecurity:
    """What a bind needs: the bearer token (None: no token asked) and the server's
    TLS context (None: plain http, loopback only)."""

    token: SecretStr | None = None
    ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"EndpointSecurity(token={'set' if self.token else None}, " \
               f"tls={self.ssl_context is not None})"


def server_tls(cert_pem: str, key_pem: str, where: str) -> ssl.SSLContext:
    """A server context (TLS 1.2 at least) from PEM text; the PEMs go through a
    private temporary directory only while they are loaded."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="crosswind-tls-") as d:
        cert, key = Path(d) / "cert.pem", Path(d) / "key.pem"
        for path, text in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text if text.endswith("\n") else text + "\n")
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"{where}: the TLS certificate and key do not load "
                              f"({redact(str(exc))[:200]}); give a PEM certificate chain "
                              "and its private key") from None
    return ctx


def endpoint_security(bind: str, *, token: str | None, cert: str | None, key: str | None,
                      where: str) -> EndpointSecurity:
    """Resolve the references an endpoint is protected with. A bind that is not
    loopback without all three is refused (``ConfigError``, as config
    validation does it); on loopback each is optional (a token alone: asked
    over plain http on loopback)."""
    if not is_loopback_bind(bind) and not (token and cert and key):
        raise ConfigError(f"{where}: {bind} is not a loopback address: it needs a bearer "
                          "token and a TLS certificate and key (references)")
    if bool(cert) != bool(key):
        raise ConfigError(f"{where}: a TLS certificate needs its key, and a key its "
                          "certificate")
    secret = resolve(token, where=f"{where} token", allow_literal=False) if token else None
    ctx = None
    if cert and key:
        ctx = server_tls(resolve(cert, where=f"{where} TLS certificate",
                                 allow_literal=False).get_secret_value(),
                         resolve(key, where=f"{where} TLS key",
                                 allow_literal=False).get_secret_value(), where)
    return EndpointSecurity(secret, ctx)


def bearer_guard(token: SecretStr, endpoint: str) -> Any:
    """aiohttp middleware: 401 with nothing else unless the request carries the token."""
    expected = f"Bearer {token.get_secret_value()}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            AUTH_FAILURES.record(endpoint, f"client {request.remote or 'unknown'}",
                                 "no bearer token" if not given else "wrong bearer token")
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return guard


def _json(data: Any, status: int = 200) -> web.Response:
    # Everything served passes the redactor, like every log line and report.
    return web.Response(text=redact(json.dumps(data, indent=2, default=str)) + "\n",
                        status=status, content_type="application/json")


def make_app(status: StatusFn, problems: HealthFn, *,
             security: EndpointSecurity | None = None, endpoint: str = "replicate http"
             ) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        reasons = problems()
        if reasons:
            return _json({"status": "unhealthy", "reasons": reasons}, 503)
        return _json({"status": "ok"})

    async def api_status(_: web.Request) -> web.Response:
        return _json(status())

    middlewares = [bearer_guard(security.token, endpoint)] if security and security.token \
        else []
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/status", api_status)
    return app


class HttpEndpoint:
    def __init__(self, bind: str, app: web.Application,
                 security: EndpointSecurity | None = None) -> None:
        self.bind = bind
        self.app = app
        self.security = security or EndpointSecurity()
        if not is_loopback_bind(bind) and not (self.security.token
                                               and self.security.ssl_context):
            raise ConfigError(f"[replicate].http: {bind} is not a loopback address: it "
                              "needs a bearer token and TLS")
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.host = bind.rpartition(":")[0].strip("[]")

    async def start(self) -> None:
        host, _, port = self.bind.rpartition(":")
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port),
                           ssl_context=self.security.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise ConfigError(f"[replicate].http: cannot listen on {self.bind}: "
                              f"{exc.strerror or exc}") from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else int(port)

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        scheme = "https" if self.security.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
