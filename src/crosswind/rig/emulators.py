"""Local emulators for tests, the demo and benchmarks: Azurite, moto, SecantusDB.

Each server runs as a child process on a free loopback port, is polled until it
answers, and is stopped with SIGTERM (SIGKILL only if it ignores that). Azurite
loses recent writes after SIGKILL, so a clean stop matters.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

AZURITE_ACCOUNT = "devstoreaccount1"
# The public, documented Azurite development key; not a secret.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# The checkout (src/crosswind/rig/ is three levels down): the rig runs from a source tree,
# where `make setup` put Azurite into tools/node_modules.
REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not open port {port} within {timeout:.0f}s")


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310  (loopback only)
                if r.status < 500:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL as a last resort."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _bin(name: str) -> str:
    """A console script of this venv, or of PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed; run `make setup`")
    return found


@dataclass
class Azurite:
    location: Path
    blob_port: int = field(default_factory=free_port)
    queue_port: int = field(default_factory=free_port)
    table_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def blob_url(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def table_url(self) -> str:
        return f"http://127.0.0.1:{self.table_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_url(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_url};QueueEndpoint={self.queue_url};"
            f"TableEndpoint={self.table_url};"
        )

    def start(self) -> Azurite:
        exe = REPO_ROOT / "tools" / "node_modules" / ".bin" / "azurite"
        if not exe.exists():
            raise RuntimeError(f"Azurite not found at {exe}; run `make setup`")
        self.location.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(exe), "--location", str(self.location),
            "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry",
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        for port in (self.blob_port, self.queue_port, self.table_port):
            _wait_port(port, self.proc, "azurite", 30)
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


@dataclass
class Moto:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: extra environment, e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 to make moto check credentials
    env: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Moto:
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true", **self.env}
        self.proc = subprocess.Popen(
            [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        _wait_http(f"{self.endpoint}/moto-api/", self.proc, "moto_server", 60)
        return self

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310  (loopback only)
            pass

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


@dataclass
class Secantus:
    storage: str = ":memory:"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true&retryWrites=false"

    def start(self) -> Secantus:
        self.proc = subprocess.Popen(
            [
                _bin("secantusd-py"), "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", self.storage, "--log-level", "ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc, "secantusd", 60)
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


@dataclass
class Rig:
    """All three servers, started together and stopped together."""

    azurite: Azurite
    moto: Moto
    secantus: Secantus
    workdir: Path

    def stop(self) -> None:
        for server in (self.azurite, self.moto, self.secantus):
            with contextlib.suppress(Exception):
                server.stop()


@contextlib.contextmanager
def running_rig(workdir: Path | None = None, mongo: bool = True) -> Iterator[Rig]:
    tmp = Path(tempfile.mkdtemp(prefix="crosswind-rig-")) if workdir is None else workdir
    rig = Rig(Azurite(tmp / "azurite"), Moto(), Secantus(), tmp)
    try:
        rig.azurite.start()
        rig.moto.start()
        if mongo:
            rig.secantus.start()
        yield rig
    finally:
        rig.stop()
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
