"""The service's local HTTP endpoint (aiohttp, already a dependency of the AWS
client): ``/healthz`` (200 while healthy, 503 with the reasons when a breaker
is open or the lag SLO is breached), ``/api/status`` (the same JSON as
``crosswind status --json``) and ``/metrics`` (Prometheus text, from the
metric catalogue). ``extend`` adds the dashboard's routes (``crosswind.web``;
passed in from above, as live must not import it).

Loopback only, unless ``[monitoring] http_token`` is set: then every request
needs ``Authorization: Bearer TOKEN`` (or the cookie a browser gets by opening
``/?token=TOKEN`` once) and gets a bare 401 otherwise."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from crosswind.config import Config, is_loopback
from crosswind.errors import ConfigError
from crosswind.secrets import redact, resolve

StatusFn = Callable[[], dict[str, Any]]
HealthFn = Callable[[], list[str]]
MetricsFn = Callable[[], bytes]
Extend = Callable[[web.Application], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_COOKIE = "crosswind_token"


def required_token(cfg: Config, bind: str, where: str) -> str | None:
    """The bearer token an endpoint listening on ``bind`` demands (None: none).
    Beyond loopback one is required: the status and the dashboard describe the
    estate, and nothing should be one open port away from anyone."""
    host = bind.rpartition(":")[0].strip("[]")
    ref = cfg.monitoring.http_token
    if ref is None:
        if not (host == "localhost" or is_loopback(f"http://[{host}]" if ":" in host
                                                    else f"http://{host}")):
            raise ConfigError(f"{where} = {bind!r} listens beyond loopback: that needs "
                              "[monitoring] http_token (a reference, e.g. "
                              "env:CROSSWIND_HTTP_TOKEN); clients then send "
                              "Authorization: Bearer TOKEN")
        return None
    return resolve(ref, where="[monitoring].http_token", allow_literal=False
                   ).get_secret_value()


def _guard(token: str) -> Middleware:
    expected = token.encode()

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
            resp.set_cookie(_COOKIE, token, httponly=True, samesite="Strict")
            raise resp
        return web.Response(status=401)

    return guard


def _json(data: Any, status: int = 200) -> web.Response:
    # Everything served passes the redactor, like every log line and report.
    return web.Response(text=redact(json.dumps(data, indent=2, default=str)) + "\n",
                        status=status, content_type="application/json")


def make_app(status: StatusFn, problems: HealthFn, *, metrics: MetricsFn | None = None,
             token: str | None = None, extend: Extend | None = None) -> web.Application:
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

    app = web.Application(middlewares=[_guard(token)] if token else [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/status", api_status)
    if metrics is not None:
        app.router.add_get("/metrics", prometheus)
    if extend is not None:
        extend(app)
    return app


class HttpEndpoint:
    def __init__(self, bind: str, app: web.Application) -> None:
        self.bind = bind
        self.app = app
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.host = bind.rpartition(":")[0].strip("[]")

    async def start(self) -> None:
        host, _, port = self.bind.rpartition(":")
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port))
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
        return None if self.port is None else f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
