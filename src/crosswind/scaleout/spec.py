"""The ``--workers`` value (``[scaleout] workers``), parsed. Pure; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crosswind.errors import ConfigError

#: Dask's default scheduler port
DEFAULT_PORT = 8786
#: more local worker processes than this on one machine is a typo, not a plan
MAX_LOCAL_WORKERS = 256

_LOCAL = re.compile(r"^local:(\d{1,4})$")
_TCP = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?$")


class WorkersSpecError(ConfigError, ValueError):
    """A ValueError too, so that pydantic reports it with the setting's name."""


@dataclass(frozen=True)
class WorkersSpec:
    """Either ``local`` workers (a LocalCluster this process starts) or the
    ``address`` of a running scheduler."""

    local: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        return f"local:{self.local}" if self.local is not None else str(self.address)


def parse_workers(text: str, where: str = "--workers") -> WorkersSpec:
    """``local:N`` (1 <= N <= 256) or ``tcp://HOST[:PORT]`` (port 8786 by default);
    errors start with ``where`` (the flag, or nothing when pydantic names the setting)."""
    value = text.strip()
    what = f"{where} {text!r}" if where else repr(text)
    if m := _LOCAL.match(value):
        n = int(m.group(1))
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise WorkersSpecError(
                f"{what}: local needs 1 to {MAX_LOCAL_WORKERS} worker processes")
        return WorkersSpec(local=n)
    if m := _TCP.match(value):
        port = int(m.group(2) or DEFAULT_PORT)
        if not 1 <= port <= 65535:
            raise WorkersSpecError(f"{what}: port {port} is not a TCP port")
        return WorkersSpec(address=f"tcp://{m.group(1)}:{port}")
    raise WorkersSpecError(
        f"{what} is neither local:N (N worker processes on this machine) nor "
        "tcp://SCHEDULER:PORT (an existing Dask scheduler)")
