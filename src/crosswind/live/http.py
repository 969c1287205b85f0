"""The service's local HTTP endpoint (aiohttp, already a dependency of the AWS
client): ``/healthz`` (200 while healthy, 503 with the reasons when a breaker
is open or the lag SLO is breached), ``/api/status`` (the same JSON as
``crosswind status --json``) and ``/metrics`` (Prometheus text, from the
metric catalogue). ``extend`` adds the dashboard's routes (``crosswind.web``;
passed in from above, as live must not import it).

Protection is generic, for any app served here (``EndpointSecurity``): a
loopback bind needs nothing; any other bind needs ``[monitoring] http_token``,
``http_tls_cert`` and ``http_tls_key`` (references, resolved by
``endpoint_security``) and is served over TLS 1.2+. With a token, every request
must carry ``Authorization: Bearer <token>`` (or the HttpOnly cookie a browser
gets by opening ``/?token=TOKEN`` once); one that does not gets 401 with an
empty body and nothing else, and is counted in ``crosswind.secrets.AUTH_FAILURES``
(endpoint: the bind, principal: the client's address). Everything served passes
the redactor.
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
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from crosswind.config import Config, is_loopback_bind
from crosswind.errors import ConfigError
from crosswind.secrets import AUTH_FAILURES, redact, resolve

StatusFn = Callable[[], dict[str, Any]]
HealthFn = Callable[[], list[str]]
MetricsFn = Callable[[], bytes]
Extend = Callable[[web.Application], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_COOKIE = "crosswind_token"


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
        missing = [n for n, v in (("http_token", token), ("http_tls_cert", cert),
                                  ("http_tls_key", key)) if not v]
        raise ConfigError(f"{where} = {bind!r} is not a loopback address: it needs "
                          f"[monitoring] {', '.join(missing)} (references), so that every "
                          "request carries the token over TLS")
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


def endpoint_security_of(cfg: Config, bind: str, where: str) -> EndpointSecurity:
    """``endpoint_security`` with ``[monitoring]``'s references (the service's
    endpoint and ``crosswind dashboard`` share them)."""
    m = cfg.monitoring
    return endpoint_security(bind, token=m.http_token, cert=m.http_tls_cert,
                             key=m.http_tls_key, where=where)


def bearer_guard(token: SecretStr, endpoint: str, *, tls: bool) -> Middleware:
    """aiohttp middleware: 401 with nothing else unless the request carries the
    token (header, or the cookie set by one ``/?token=`` visit); refusals counted."""
    expected = token.get_secret_value().encode()

    def ok(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), expected)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and ok(auth[7:].strip()):
            return await handler(request)
        if ok(request.cookies.get(_COOKIE)):
            return await handler(request)
        if ok(request.query.get("token")):
            # a browser: keep the token in a cookie, not in the address bar
            resp = web.HTTPFound(request.path)
            resp.set_cookie(_COOKIE, token.get_secret_value(), httponly=True,
                            samesite="Strict", secure=tls)
            raise resp
        given = auth or request.cookies.get(_COOKIE) or request.query.get("token")
        AUTH_FAILURES.record(endpoint, f"client {request.remote or 'unknown'}",
                             "wrong bearer token" if given else "no bearer token")
        return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})

    return guard


def _json(data: Any, status: int = 200) -> web.Response:
    # Everything served passes the redactor, like every log line and report.
    return web.Response(text=redact(json.dumps(data, indent=2, default=str)) + "\n",
                        status=status, content_type="application/json")


def make_app(status: StatusFn, problems: HealthFn, *, metrics: MetricsFn | None = None,
             security: EndpointSecurity | None = None, endpoint: str = "replicate http",
             extend: Extend | None = None) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        reasons = problems()
        if reasons:
            return _json({"status": "unhealthy", "reasons": reasons}, 503)
        return _json({"status": "ok"})

    async def api_status(_: web.Request) -> web.Response:
        return _json(status())

    async def prometheus(_: web.Request) -> web.Response:
        assert metrics is not None
        return web.Response(body=redact(metrics().decode()).encode(),
                            headers={"Content-Type": METRICS_CONTENT_TYPE})

    middlewares = [] if security is None or security.token is None else [
        bearer_guard(security.token, endpoint, tls=security.ssl_context is not None)]
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/status", api_status)
    if metrics is not None:
        app.router.add_get("/metrics", prometheus)
    if extend is not None:
        extend(app)
    return app


class HttpEndpoint:
    def __init__(self, bind: str, app: web.Application,
                 security: EndpointSecurity | None = None) -> None:
        self.bind = bind
        self.app = app
        self.security = security or EndpointSecurity()
        if not is_loopback_bind(bind) and not (self.security.token
                                               and self.security.ssl_context):
            raise ConfigError(f"{bind} is not a loopback address: it needs a bearer "
                              "token and TLS ([monitoring] http_token, http_tls_cert, "
                              "http_tls_key)")
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
