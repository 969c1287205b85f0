"""rclone as an independent checker (and benchmark peer) of what crosswind copied.

rclone is configured only through environment variables of the child process
(``RCLONE_CONFIG_<NAME>_<OPTION>``), never through its command line (visible
to every user in ``ps``) nor a config file on disk; the user's own rclone
config is ignored (``RCLONE_CONFIG=/dev/null``). ``AWS_CA_BUNDLE`` is removed
from the child's environment: it is set on the project's machines and breaks
rclone's S3 backend. Everything rclone prints passes through ``redact``.

Azurite is reachable only through a container SAS URL (RIG.md); such a
remote's paths are ``<remote>:<container>[/<prefix>]``.

``check`` parses ``rclone check --combined`` (one line per path: ``=`` same,
``-`` only at the destination, ``+`` only at the source, ``*`` differs, ``!``
error). Paths containing a newline cannot be told apart in that format. In
hash mode a file whose MD5 one side does not know is compared by size only
and still listed as ``=``; ``CheckResult.hashes_unchecked`` counts those, and
``download=True`` compares the bytes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from crosswind.errors import CrosswindError
from crosswind.secrets import REDACTOR, redact


class RcloneError(CrosswindError):
    """rclone is missing, failed, or its output could not be understood."""

    exit_code = 3


class Remote(Protocol):
    #: the remote's name as used in paths (``name:bucket``)
    name: str

    def env(self) -> dict[str, str]:
        """``RCLONE_CONFIG_<NAME>_*`` variables that define this remote."""
        ...


def _var(remote: str, option: str) -> str:
    return f"RCLONE_CONFIG_{remote.upper()}_{option.upper()}"


@dataclass(frozen=True)
class AzureSasRemote:
    """An ``azureblob`` remote over one container SAS URL (the only way rclone
    reaches Azurite). Paths: ``<name>:<container>``."""

    sas_url: str = field(repr=False)
    name: str = "az"

    def __post_init__(self) -> None:
        REDACTOR.register(self.sas_url)

    def env(self) -> dict[str, str]:
        return {_var(self.name, "type"): "azureblob", _var(self.name, "sas_url"): self.sas_url}


@dataclass(frozen=True)
class S3Remote:
    """An S3 remote with static keys; ``endpoint`` for S3-compatible servers
    (moto), which are addressed path-style. Paths: ``<name>:<bucket>``."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    endpoint: str | None = None
    region: str = "us-east-1"
    name: str = "s3"

    def __post_init__(self) -> None:
        REDACTOR.register(self.secret_access_key)

    def env(self) -> dict[str, str]:
        out = {
            _var(self.name, "type"): "s3",
            _var(self.name, "provider"): "Other" if self.endpoint else "AWS",
            _var(self.name, "env_auth"): "false",
            _var(self.name, "access_key_id"): self.access_key_id,
            _var(self.name, "secret_access_key"): self.secret_access_key,
            _var(self.name, "region"): self.region,
        }
        if self.endpoint:
            out[_var(self.name, "endpoint")] = self.endpoint
            out[_var(self.name, "force_path_style")] = "true"
        return out


def container_sas_url(
    blob_url: str,
    account_name: str,
    account_key: str,
    container: str,
    *,
    write: bool = False,
    valid_for: timedelta = timedelta(hours=2),
) -> str:
    """A container SAS URL signed with the account key: read+list, plus
    write/create/delete when ``write`` (for ``copy`` into Azure)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    perms = ContainerSasPermissions(
        read=True, list=True, write=write, create=write, add=write, delete=write
    )
    token = generate_container_sas(
        account_name, container, account_key=account_key, permission=perms,
        expiry=datetime.now(UTC) + valid_for,
    )
    url = f"{blob_url.rstrip('/')}/{container}?{token}"
    REDACTOR.register(url)
    return url


@dataclass(frozen=True)
class CheckResult:
    """What ``rclone check`` found, path by path."""

    #: identical on both sides
    matched: tuple[str, ...]
    #: at the source only
    missing_on_dst: tuple[str, ...]
    #: at the destination only
    missing_on_src: tuple[str, ...]
    #: on both sides, with other content (hash, or bytes with ``download``)
    differ: tuple[str, ...]
    #: rclone could not read or hash these
    errors: tuple[str, ...]
    #: compared by size only because a side had no MD5 (hash mode, e.g. S3
    #: multipart objects without rclone's own md5 metadata); counted as matched
    hashes_unchecked: int = 0

    @property
    def differences(self) -> int:
        return (len(self.missing_on_dst) + len(self.missing_on_src) + len(self.differ)
                + len(self.errors))

    @property
    def ok(self) -> bool:
        return self.differences == 0


_UNCHECKED = re.compile(r"(\d+) hashes could not be checked")


def parse_combined(text: str, log: str = "") -> CheckResult:
    """Parse ``rclone check --combined`` output (and its log, for the count of
    files whose hashes could not be compared)."""
    sections: dict[str, list[str]] = {c: [] for c in "=-+*!"}
    for line in text.splitlines():
        if not line:
            continue
        if len(line) < 3 or line[0] not in sections or line[1] != " ":
            raise RcloneError(f"unexpected line in rclone check output: {redact(line)[:200]!r}")
        sections[line[0]].append(line[2:])
    return CheckResult(
        matched=tuple(sections["="]), missing_on_dst=tuple(sections["+"]),
        missing_on_src=tuple(sections["-"]), differ=tuple(sections["*"]),
        errors=tuple(sections["!"]),
        hashes_unchecked=sum(int(n) for n in _UNCHECKED.findall(log)),
    )


@dataclass(frozen=True)
class RunResult:
    returncode: int
    seconds: float
    #: the end of rclone's log, redacted
    log_tail: str


class Rclone:
    """Runs rclone with the given remotes defined in its environment."""

    def __init__(self, *remotes: Remote, binary: str = "rclone",
                 timeout: float = 600.0) -> None:
        found = shutil.which(binary)
        if found is None:
            raise RcloneError(f"{binary} is not installed; run `make setup`")
        self.binary = found
        self.remotes = remotes
        self.timeout = timeout

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's environment: ``base`` (default: ours) without
        ``AWS_CA_BUNDLE`` and inherited rclone remotes, plus our remotes."""
        src = os.environ if base is None else base
        out = {k: v for k, v in src.items()
               if k != "AWS_CA_BUNDLE" and not k.startswith("RCLONE_CONFIG")}
        out["RCLONE_CONFIG"] = os.devnull
        for r in self.remotes:
            out.update(r.env())
        return out

    def command(self, verb: str, *args: str) -> list[str]:
        return [self.binary, verb, *args]

    async def run(self, verb: str, *args: str) -> RunResult:
        """Run one rclone command to the end (killed after ``timeout``)."""
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *self.command(verb, *args), env=self.env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        tail = redact(err.decode("utf-8", "replace"))[-4000:]
        return RunResult(proc.returncode or 0, time.monotonic() - t0, tail)

    async def copy(self, src: str, dst: str, *, transfers: int = 32, checkers: int = 32,
                   extra: Sequence[str] = ()) -> RunResult:
        """``rclone copy src dst``; raises ``RcloneError`` if it fails."""
        r = await self.run("copy", src, dst, "--transfers", str(transfers),
                           "--checkers", str(checkers), *extra)
        if r.returncode != 0:
            raise RcloneError(f"rclone copy exited with {r.returncode}: {r.log_tail[-1000:]}")
        return r

    async def check(self, src: str, dst: str, *, download: bool = False,
                    one_way: bool = False, extra: Sequence[str] = ()) -> CheckResult:
        """``rclone check src dst``: by MD5 from the listings, or by reading
        both sides' bytes with ``download``. Differences are returned, not
        raised; ``RcloneError`` means rclone could not do the check at all."""
        with tempfile.TemporaryDirectory(prefix="crosswind-rclone-") as tmp:
            combined = Path(tmp) / "combined.txt"
            args = [src, dst, "--combined", str(combined)]
            if download:
                args.append("--download")
            if one_way:
                args.append("--one-way")
            r = await self.run("check", *args, *extra)
            text = combined.read_text("utf-8") if combined.exists() else ""
        result = parse_combined(text, r.log_tail)
        # Exit 1 with differences listed is a finished check; anything else failed.
        if r.returncode != 0 and (r.returncode != 1 or result.differences == 0):
            raise RcloneError(f"rclone check exited with {r.returncode}: {r.log_tail[-1000:]}")
        return result
