"""The dashboard's routes, and ``crosswind dashboard`` (the same page from the
state store alone).

    GET /                 the page (static/index.html)
    GET /static/NAME      its CSS and JavaScript (package data)
    GET /api/dashboard    the last hour of lag, throughput and backlog, the
                          validation history, the cutover and rollback timeline,
                          the DLQ by kind, the alerts
    (GET /api/status, /metrics and /healthz come from ``live.http``)

The page polls ``/api/status`` every second for its figures and
``/api/dashboard`` every two seconds for the charts and history; it loads
nothing from anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from crosswind.config import Config
from crosswind.secrets import redact
from crosswind.state import StateStore
from crosswind.web.series import Series

log = logging.getLogger("crosswind.web")

MonitoringFn = Callable[[], dict[str, Any]]
_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
          ".svg": "image/svg+xml"}
_SERIES: web.AppKey[Series] = web.AppKey("crosswind.series", Series)
#: the page may talk to this origin only and run only its own script
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _static(name: str) -> bytes | None:
    root = resources.files("crosswind.web") / "static"
    names = {p.name for p in root.iterdir() if p.is_file()}
    if name not in names:
        return None
    return (root / name).read_bytes()


def timeline(cfg: Config) -> dict[str, Any] | None:
    """The steps of the switch journaled last (the one under way, or the last)."""
    from crosswind.cutover.journal import StepJournal

    state = StateStore(cfg.state_dir)
    try:
        journal = StepJournal(state)
        last = journal.last_plan()
        if last is None:
            return None
        plan_hash, kind = last
        return {"plan_hash": plan_hash, "kind": kind,
                "steps": [p.as_dict() for p in journal.progress(plan_hash)]}
    finally:
        state.close()


def install(app: web.Application, monitoring: MonitoringFn, cfg: Config, *,
            sample_s: float = 2.0) -> None:
    """Add the dashboard to ``app``; ``monitoring`` returns the monitoring document
    (``live.monitoring``) of the running service or of the state store."""
    series = Series()
    app[_SERIES] = series

    def sample() -> None:
        series.add(monitoring(), time.time())

    async def sampler(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    sample()
                except Exception as exc:  # a busy state store: the next sample
                    log.warning("dashboard sample failed: %s", exc)
                await asyncio.sleep(sample_s)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(BaseException):
            await task

    async def index(_: web.Request) -> web.Response:
        return _file("index.html")

    async def static(request: web.Request) -> web.Response:
        return _file(request.match_info["name"])

    async def dashboard(_: web.Request) -> web.Response:
        doc = monitoring()
        status = doc.get("status") or {}
        body = {
            "generated_at": doc.get("at"),
            "version": doc.get("version"),
            "series": series.as_list(),
            "validation_history": doc.get("validation_history") or [],
            "switches": doc.get("switches") or {},
            "timeline": timeline(cfg),
            "dlq": doc.get("dlq") or {},
            "oneshot": doc.get("oneshot") or {},
            "alerts": status.get("alerts"),
            # enforce and lineage settings, and the service's validation before write
            "governance": {**(doc.get("governance") or {}), "service": (
                status.get("governance") or {}).get("schema_validation")},
        }
        return web.Response(text=redact(json.dumps(body, default=str)),
                            content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    app.cleanup_ctx.append(sampler)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/dashboard", dashboard)


def _file(name: str) -> web.Response:
    data = _static(name)
    if data is None:
        raise web.HTTPNotFound()
    suffix = name[name.rfind("."):] if "." in name else ""
    return web.Response(body=data, content_type=_TYPES.get(suffix, "application/octet-stream"),
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})


def problems_of(status: dict[str, Any]) -> list[str]:
    """``/healthz`` of ``crosswind dashboard``: what the last status says."""
    out = [f"circuit breaker open: {ep}" for ep, st in (status.get("breakers") or {}).items()
           if st == "open"]
    if (status.get("slo") or {}).get("breached"):
        out.append("lag over the SLO")
    if not (status.get("service") or {}).get("running"):
        out.append("the replication service is not running")
    return out


async def serve(cfg: Config, bind: str, stop: asyncio.Event,
                ready: Callable[[str], None] | None = None, *, sample_s: float = 2.0) -> None:
    """``crosswind dashboard``: the page, ``/api/status`` and ``/metrics`` from the
    state store alone, until ``stop``."""
    from crosswind.live.http import HttpEndpoint, endpoint_security_of, make_app
    from crosswind.live.monitoring import read_monitoring
    from crosswind.live.report import read_status
    from crosswind.observability.prometheus import exposition

    sec = endpoint_security_of(cfg, bind, "[monitoring].dashboard")
    app = make_app(lambda: read_status(cfg), lambda: problems_of(read_status(cfg)),
                   metrics=lambda: exposition(lambda: read_monitoring(cfg)), security=sec,
                   endpoint=f"dashboard {bind}",
                   extend=lambda a: install(a, lambda: read_monitoring(cfg), cfg,
                                            sample_s=sample_s))
    endpoint = HttpEndpoint(bind, app, sec)
    await endpoint.start()
    try:
        if ready is not None and endpoint.url is not None:
            ready(endpoint.url)
        await stop.wait()
    finally:
        await endpoint.stop()
