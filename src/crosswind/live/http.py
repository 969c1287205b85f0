"""The service's local HTTP endpoint (aiohttp, already a dependency of the AWS
client): ``/healthz`` (200 while healthy, 503 with the reasons when a breaker
is open or the lag SLO is breached) and ``/api/status`` (the same JSON as
``crosswind status --json``). Routes for metrics and the dashboard are added
next to these."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from crosswind.errors import ConfigError
from crosswind.secrets import redact

StatusFn = Callable[[], dict[str, Any]]
HealthFn = Callable[[], list[str]]


def _json(data: Any, status: int = 200) -> web.Response:
    # Everything served passes the redactor, like every log line and report.
    return web.Response(text=redact(json.dumps(data, indent=2, default=str)) + "\n",
                        status=status, content_type="application/json")


def make_app(status: StatusFn, problems: HealthFn) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        reasons = problems()
        if reasons:
            return _json({"status": "unhealthy", "reasons": reasons}, 503)
        return _json({"status": "ok"})

    async def api_status(_: web.Request) -> web.Response:
        return _json(status())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/status", api_status)
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
