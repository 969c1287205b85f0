"""Servers the monitoring tests talk to: a real Prometheus (Debian's package)
scraping targets from a file it watches, HTTP receivers that record what is
POSTed to them (an alert webhook; the Azure Monitor ingestion endpoint), and
Chromium driven by Playwright. Each on a free loopback port, stopped by PID."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml


def http_open(target: str | urllib.request.Request, timeout: float = 10) -> Any:
    """urlopen, for the loopback http servers of the rig only."""
    url = target if isinstance(target, str) else target.full_url
    assert url.startswith("http://127.0.0.1:"), url
    return urllib.request.urlopen(target, timeout=timeout)  # noqa: S310


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """``prometheus`` with a 1 s scrape interval; targets and rule files can be
    changed while it runs (``set_targets``, ``set_rules``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = root / "targets.json"
        self.rules = root / "rules.yml"
        self.targets.write_text("[]")
        self.rules.write_text("groups: []\n")
        (root / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(self.rules)],
            "scrape_configs": [{"job_name": "crosswind",
                                "file_sd_configs": [{"files": [str(self.targets)],
                                                     "refresh_interval": "1s"}]}],
        }))
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: make setup installs Debian's package"
        self.log = (root / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"], stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" + self.output())
            try:
                with http_open(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("prometheus did not get ready:\n" + self.output())

    def output(self) -> str:
        self.log.flush()
        return (self.root / "prometheus.log").read_text(errors="replace")[-4000:]

    def set_targets(self, *hostports: str) -> None:
        tmp = self.targets.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": list(hostports), "labels": {}}]))
        tmp.replace(self.targets)

    def set_rules(self, text: str) -> None:
        self.rules.write_text(text)
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310
        with http_open(req):
            pass

    def api(self, path: str, **params: str) -> Any:
        q = urllib.parse.urlencode(params)
        with http_open(f"{self.url}/api/v1/{path}?{q}") as r:
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=promql)["result"])

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, pred: Callable[[float | None], bool], timeout: float = 30,
                 ) -> float | None:
        deadline = time.monotonic() + timeout
        v: float | None = None
        while time.monotonic() < deadline:
            v = self.value(promql)
            if pred(v):
                return v
            time.sleep(0.5)
        raise AssertionError(f"{promql}: last value {v}\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


class Receiver:
    """Records every POST (path, headers, JSON body); answers ``reply(body)``."""

    def __init__(self, reply: Callable[[str, Any], tuple[int, Any]] | None = None) -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with outer._lock:
                    outer.posts.append((self.path, dict(self.headers), body))
                status, answer = (reply or (lambda p, b: (200, {"ok": True})))(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            return [b for p, _, b in self.posts if path is None or p == path]

    def wait(self, pred: Callable[[list[Any]], bool], timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.bodies()
            if pred(got):
                return got
            time.sleep(0.2)
        raise AssertionError(f"receiver: condition not met; got {json.dumps(self.bodies())[:3000]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(reply: Callable[[str, Any], tuple[int, Any]] | None = None) -> Receiver:
        r = Receiver(reply)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (no browser download). Per test: while
    Playwright's sync API is open it keeps an event loop running in this thread, and
    the in-process CLI tests after it need asyncio.run."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is missing: make setup installs Debian's package"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


def get_json(url: str, token: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}  # noqa: S310
                                 if token else {})
    with http_open(req) as r:
        return json.loads(r.read())


def get_text(url: str) -> str:
    with http_open(url) as r:
        return str(r.read().decode())


def artefact_dir() -> Path:
    """Where screenshots are kept after the run (``.bench/`` of the repository)."""
    d = Path(__file__).resolve().parents[2] / ".bench" / "monitoring"
    d.mkdir(parents=True, exist_ok=True)
    return d
