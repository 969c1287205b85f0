"""Small pieces every object backend shares."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from crosswind.errors import IntegrityError, StoreError
from crosswind.model import ObjectMeta
from crosswind.stores.base import Capabilities, StreamBody


def md5_hex(data: bytes | memoryview) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def hex_to_b64(md5: str) -> str:
    return base64.b64encode(bytes.fromhex(md5)).decode()


def b64_to_hex(value: bytes | bytearray | str | None) -> str | None:
    if not value:
        return None
    raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
    return raw.hex() if len(raw) == 16 else None


def multipart_etag(part_md5s: Sequence[str]) -> str:
    """S3's ETag of a multipart object: MD5 of the concatenated part MD5s, "-N"."""
    joined = b"".join(bytes.fromhex(m) for m in part_md5s)
    return f"{md5_hex(joined)}-{len(part_md5s)}"


def require_md5(key: str, expected: str, reported: str | None, what: str) -> None:
    if reported is None or reported.lower() != expected.lower():
        raise IntegrityError(
            f"{key}: {what} reported by the destination ({reported or 'none'}) "
            f"differs from the MD5 of the bytes read ({expected})"
        )


def single_put_fits(where: str, size: int, caps: Capabilities) -> None:
    """Refuse a one-request write the service would refuse (or an SDK would
    split): the transfer sends larger objects in parts."""
    if size > caps.max_single_put:
        raise StoreError(f"{where}: {size} bytes is more than one request may write "
                         f"({caps.max_single_put}); it must go in parts")


@dataclass
class BytesReader:
    """An ObjectReader over bytes already in memory."""

    meta: ObjectMeta
    data: bytes
    chunk_size: int = 1024 * 1024

    async def chunks(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), self.chunk_size):
            yield self.data[i : i + self.chunk_size]

    async def read_all(self) -> bytes:
        return self.data


async def streamed_bytes(key: str, body: StreamBody, md5: str | None) -> tuple[bytes, str]:
    """All of ``body`` and the MD5 of it, for stores that keep bytes anyway
    (memory, local files); ``md5``, when given, must be theirs."""
    data = b"".join([chunk async for chunk in body])
    sent = body.md5() or md5_hex(data)
    if md5 is not None:
        require_md5(key, md5, sent, "MD5 of the bytes read")
    return data, sent
