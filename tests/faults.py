"""Store wrappers that misbehave on purpose, for tests of what crosswind catches.

moto does not verify Content-MD5, so corruption between read and write is
injected here: the wrapper flips a byte of the data it is asked to write but
passes the caller's MD5 on unchanged, as a faulty network or proxy would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt
from crosswind.stores.base import ObjectReader, ObjectStore, StreamBody, Upload


def flip(data: bytes) -> bytes:
    if not data:
        return b"\x00"
    b = bytearray(data)
    b[len(b) // 2] ^= 0xFF
    return bytes(b)


@dataclass
class CorruptingUpload:
    inner: Upload
    corrupt: bool

    @property
    def upload_id(self) -> str:
        return self.inner.upload_id

    async def put_part(self, number: int, data: bytes, md5: str) -> None:
        await self.inner.put_part(number, flip(data) if self.corrupt else data, md5)

    async def complete(
        self, size: int, md5: str, part_md5s: list[str], late_metadata: Mapping[str, str]
    ) -> WriteReceipt:
        return await self.inner.complete(size, md5, part_md5s, late_metadata)

    async def abort(self) -> None:
        await self.inner.abort()


@dataclass
class CorruptedBody:
    """A streamed body whose last chunk reaches the destination with a byte
    flipped, after it was hashed: the MD5 is still that of the bytes read."""

    inner: StreamBody

    @property
    def size(self) -> int:
        return self.inner.size

    def md5(self) -> str | None:
        return self.inner.md5()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held: bytes | None = None
        async for chunk in self.inner:
            if held is not None:
                yield held
            held = chunk
        if held is not None:
            yield flip(held)[: len(held)]


@dataclass
class CorruptingStore:
    """Delegates to ``inner``; writes of keys in ``keys`` (all, if None) get one byte flipped."""

    inner: ObjectStore
    keys: set[str] | None = None
    corrupted: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _hit(self, key: str) -> bool:
        hit = self.keys is None or key in self.keys
        if hit:
            self.corrupted.append(key)
        return hit

    def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        return self.inner.list(prefix)

    async def get(self, key: str, **kw: Any) -> ObjectReader:
        return await self.inner.get(key, **kw)

    async def put(self, key: str, data: bytes, props: ObjectProps, *, md5: str,
                  mode: PutMode = PutMode.OVERWRITE, if_match: str | None = None) -> WriteReceipt:
        data = flip(data) if self._hit(key) else data
        return await self.inner.put(key, data, props, md5=md5, mode=mode, if_match=if_match)

    async def put_stream(self, key: str, body: StreamBody, props: ObjectProps, *,
                         md5: str | None = None, mode: PutMode = PutMode.OVERWRITE,
                         if_match: str | None = None) -> WriteReceipt:
        sent: StreamBody = CorruptedBody(body) if self._hit(key) else body
        return await self.inner.put_stream(  # type: ignore[attr-defined,no-any-return]
            key, sent, props, md5=md5, mode=mode, if_match=if_match)

    async def start_upload(self, key: str, props: ObjectProps, **kw: Any) -> CorruptingUpload:
        up = await self.inner.start_upload(key, props, **kw)
        return CorruptingUpload(up, self._hit(key))
