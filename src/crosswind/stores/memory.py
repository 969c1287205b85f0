"""An object store in a dict: the reference backend for tests and planners."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from crosswind.errors import AlreadyExists, NotFound, PreconditionFailed
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt
from crosswind.stores.base import Capabilities, MetadataFlavor, ObjectReader, StreamBody
from crosswind.stores.common import (
    BytesReader,
    md5_hex,
    require_md5,
    single_put_fits,
    streamed_bytes,
)


@dataclass
class _Stored:
    data: bytes
    props: ObjectProps
    etag: str
    modified: datetime


class MemoryStore:
    """Keys are kept sorted; every write gets a fresh etag."""

    def __init__(self, name: str = "memory", flavor: MetadataFlavor = "free") -> None:
        self.name = f"memory://{name}"
        self.capabilities = Capabilities(
            listing_has_props=True, late_metadata=True, metadata_flavor=flavor,
            min_part_size=1, max_single_put=1 << 62, streamed_put="after",
        )
        self.objects: dict[str, _Stored] = {}
        self._keys: list[str] = []
        self._etags = itertools.count(1)
        self.uploads: dict[str, _MemoryUpload] = {}

    def _meta(self, key: str, s: _Stored) -> ObjectMeta:
        return ObjectMeta(key, len(s.data), s.etag, s.modified, md5_hex(s.data), s.props)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        i = bisect.bisect_left(self._keys, prefix)
        while i < len(self._keys):
            key = self._keys[i]
            if not key.startswith(prefix):
                break
            stored = self.objects.get(key)
            if stored is not None:
                yield self._meta(key, stored)
            i = bisect.bisect_right(self._keys, key)

    async def head(self, key: str) -> ObjectMeta:
        s = self.objects.get(key)
        if s is None:
            raise NotFound(f"{self.name}/{key}: not found")
        return self._meta(key, s)

    async def get(
        self, key: str, *, if_match: str | None = None, byte_range: tuple[int, int] | None = None
    ) -> ObjectReader:
        meta = await self.head(key)
        if if_match is not None and if_match != meta.etag:
            raise PreconditionFailed(f"{self.name}/{key}: changed since it was listed")
        data = self.objects[key].data
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1]]
        return BytesReader(meta, data)

    def _check_mode(self, key: str, mode: PutMode, if_match: str | None) -> None:
        current = self.objects.get(key)
        if mode is PutMode.CREATE and current is not None:
            raise AlreadyExists(f"{self.name}/{key}: already exists")
        if mode is PutMode.UPDATE and (current is None or current.etag != if_match):
            raise PreconditionFailed(f"{self.name}/{key}: etag does not match")

    def _store(self, key: str, data: bytes, props: ObjectProps) -> _Stored:
        if key not in self.objects:
            bisect.insort(self._keys, key)
        s = _Stored(data, props, f"m{next(self._etags)}", datetime.now(UTC))
        self.objects[key] = s
        return s

    async def put(
        self,
        key: str,
        data: bytes,
        props: ObjectProps,
        *,
        md5: str,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> WriteReceipt:
        single_put_fits(f"{self.name}/{key}", len(data), self.capabilities)
        self._check_mode(key, mode, if_match)
        require_md5(key, md5, md5_hex(data), "content MD5")
        s = self._store(key, bytes(data), props)
        return WriteReceipt(key, len(data), s.etag, md5)

    async def put_stream(
        self,
        key: str,
        body: StreamBody,
        props: ObjectProps,
        *,
        md5: str | None = None,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> WriteReceipt:
        """As ``put``, once the body has arrived (it is kept whole anyway)."""
        single_put_fits(f"{self.name}/{key}", body.size, self.capabilities)
        data, sent = await streamed_bytes(key, body, md5)
        return await self.put(key, data, props, md5=sent, mode=mode, if_match=if_match)

    async def start_upload(
        self,
        key: str,
        props: ObjectProps,
        *,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> _MemoryUpload:
        self._check_mode(key, mode, if_match)
        up = _MemoryUpload(self, key, props, mode, if_match, f"u{next(self._etags)}")
        self.uploads[up.upload_id] = up
        return up

    async def abort_upload(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)

    async def abort_uploads_of(self, key: str) -> int:
        ids = [u for u, up in self.uploads.items() if up.key == key]
        for upload_id in ids:
            self.uploads.pop(upload_id, None)
        return len(ids)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        s = self.objects.get(key)
        if s is None:
            return
        if if_match is not None and s.etag != if_match:
            raise PreconditionFailed(f"{self.name}/{key}: etag does not match")
        del self.objects[key]
        self._keys.pop(bisect.bisect_left(self._keys, key))

    async def check(self, *, write: bool = False) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class _MemoryUpload:
    store: MemoryStore
    key: str
    props: ObjectProps
    mode: PutMode
    if_match: str | None
    upload_id: str
    parts: dict[int, bytes] = field(default_factory=dict)

    async def put_part(self, number: int, data: bytes, md5: str) -> None:
        require_md5(self.key, md5, md5_hex(data), f"MD5 of part {number}")
        self.parts[number] = bytes(data)

    async def complete(
        self, size: int, md5: str, part_md5s: list[str], late_metadata: Mapping[str, str]
    ) -> WriteReceipt:
        if self.upload_id not in self.store.uploads:
            # As S3 answers NoSuchUpload: an aborted upload cannot complete.
            raise NotFound(f"{self.store.name}/{self.key}: upload {self.upload_id} was aborted")
        data = b"".join(self.parts[n] for n in sorted(self.parts))
        require_md5(self.key, md5, md5_hex(data), "content MD5")
        self.store._check_mode(self.key, self.mode, self.if_match)
        props = replace(self.props, metadata={**self.props.metadata, **late_metadata})
        s = self.store._store(self.key, data, props)
        self.store.uploads.pop(self.upload_id, None)
        return WriteReceipt(self.key, len(data), s.etag, md5)

    async def abort(self) -> None:
        self.store.uploads.pop(self.upload_id, None)
