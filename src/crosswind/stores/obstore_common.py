"""obstore (Rust object_store) pieces shared by the S3 and Azure stores."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from obstore import exceptions as ox

from crosswind.errors import (
    AlreadyExists,
    AuthError,
    EndpointUnreachable,
    InvalidKey,
    NotFound,
    PreconditionFailed,
    StoreError,
    TransientError,
)
from crosswind.model import HEADER_FIELDS, ObjectMeta, ObjectProps, strip_etag
from crosswind.secrets import redact

_ATTR_TO_FIELD = {
    "Content-Type": "content_type",
    "Content-Encoding": "content_encoding",
    "Content-Language": "content_language",
    "Content-Disposition": "content_disposition",
    "Cache-Control": "cache_control",
}
FIELD_TO_ATTR = {v: k for k, v in _ATTR_TO_FIELD.items()}
assert set(FIELD_TO_ATTR) == set(HEADER_FIELDS)


def props_from_attributes(attrs: dict[str, str]) -> ObjectProps:
    headers: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for k, v in attrs.items():
        if k in _ATTR_TO_FIELD:
            headers[_ATTR_TO_FIELD[k]] = v
        elif k != "Storage-Class":
            metadata[k] = v
    return ObjectProps(**headers, metadata=metadata)


def obstore_can_address(key: str) -> bool:
    """Whether obstore's ``Path`` holds ``key`` unchanged: it drops a leading or
    trailing "/" and refuses empty, "." and ".." segments and control characters."""
    return all(part not in ("", ".", "..") for part in key.split("/")) and not any(
        c < " " or c == "\x7f" for c in key
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return redact(line)[:300]


def translate(exc: BaseException, where: str) -> StoreError:
    s = _first_line(exc)
    if isinstance(exc, ox.NotFoundError):
        return NotFound(f"{where}: not found")
    if isinstance(exc, ox.AlreadyExistsError):
        return AlreadyExists(f"{where}: already exists")
    if isinstance(exc, (ox.PreconditionError, ox.NotModifiedError)):
        return PreconditionFailed(f"{where}: condition not met")
    if isinstance(exc, ox.UnauthenticatedError):
        return AuthError(f"{where}: credentials rejected: {s}")
    if isinstance(exc, ox.PermissionDeniedError):
        return AuthError(f"{where}: permission denied: {s}")
    low = str(exc).lower()
    if "error sending request" in low or "connect" in low or "dns" in low:
        return EndpointUnreachable(f"{where}: cannot reach the endpoint: {s}")
    if "status code: 404" in low or "nosuchbucket" in low:
        return NotFound(f"{where}: not found")
    if "403" in low or "forbidden" in low or "signaturedoesnotmatch" in low:
        return AuthError(f"{where}: credentials rejected: {s}")
    if "412" in low or "precondition" in low:
        return PreconditionFailed(f"{where}: condition not met")
    return TransientError(f"{where}: {s}")


def is_invalid_path(exc: BaseException) -> bool:
    """obstore's listing stops at the first key its Path cannot hold."""
    return "invalid path" in str(exc).lower()


@contextlib.contextmanager
def obstore_errors(where: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        # obstore raises the builtin FileNotFoundError, not ox.NotFoundError.
        raise NotFound(f"{where}: not found") from None
    except ValueError as exc:
        # A key obstore's Path cannot hold ("a//b", control characters).
        if "path" not in str(exc).lower():
            raise
        raise InvalidKey(f"{where}: obstore cannot address this key: {_first_line(exc)}") from None
    except (ox.BaseError, OSError) as exc:
        raise translate(exc, where) from None


@dataclass
class ObstoreReader:
    """An ObjectReader over an obstore GetResult."""

    result: Any
    key: str
    where: str
    props: ObjectProps | None
    #: what ``chunks`` yields at least (a streamed copy holds one or two of them)
    chunk_size: int = 1024 * 1024

    def __post_init__(self) -> None:
        m = self.result.meta
        etag = strip_etag(m.get("e_tag"))
        self.meta = ObjectMeta(self.key, int(m["size"]), etag, m.get("last_modified"), None,
                               self.props)

    async def chunks(self) -> AsyncIterator[bytes]:
        with obstore_errors(self.where):
            async for chunk in self.result.stream(min_chunk_size=self.chunk_size):
                yield bytes(chunk)

    async def read_all(self) -> bytes:
        # One buffer filled in Rust, one copy into Python: half the copies of
        # joining streamed chunks, which matters at tens of MiB per object.
        with obstore_errors(self.where):
            return bytes(await self.result.bytes_async())
