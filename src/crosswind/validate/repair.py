"""Repair: re-copy what a validation run found missing or different, in the
configured direction only, with the sync engine itself (no second copier).

The engine is run over two views of the real stores: the source view lists
exactly the keys to repair (read fresh by HEAD, in key order), and the
destination view lists nothing, so the engine's planner decides "copy" for
each of them — including objects whose only fault is their metadata, which
the planner would otherwise skip as having the same content. Everything else
(verified writes, multipart, retries, the breaker, verified records in the
state store) is the engine's. Nothing is ever deleted: extra objects at the
destination are reported, and removing them is ``crosswind sync objects
--delete`` with its max-delete guard.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

from crosswind.errors import NotFound
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt
from crosswind.state import StateStore
from crosswind.stores.base import Capabilities, ObjectReader, ObjectStore, Upload
from crosswind.sync.engine import SyncRun
from crosswind.sync.result import SyncOptions, SyncResult

PREFETCH = 32


class _View:
    """Delegates the whole store contract to ``inner``; subclasses change ``list``."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.capabilities: Capabilities = inner.capabilities

    async def head(self, key: str) -> ObjectMeta:
        return await self.inner.head(key)

    async def get(self, key: str, *, if_match: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> ObjectReader:
        return await self.inner.get(key, if_match=if_match, byte_range=byte_range)

    async def put(self, key: str, data: bytes, props: ObjectProps, *, md5: str,
                  mode: PutMode = PutMode.OVERWRITE, if_match: str | None = None,
                  ) -> WriteReceipt:
        return await self.inner.put(key, data, props, md5=md5, mode=mode, if_match=if_match)

    async def start_upload(self, key: str, props: ObjectProps, *,
                           mode: PutMode = PutMode.OVERWRITE,
                           if_match: str | None = None) -> Upload:
        return await self.inner.start_upload(key, props, mode=mode, if_match=if_match)

    async def abort_upload(self, key: str, upload_id: str) -> None:
        await self.inner.abort_upload(key, upload_id)

    async def abort_uploads_of(self, key: str) -> int:
        return await self.inner.abort_uploads_of(key)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self.inner.delete(key, if_match=if_match)

    async def check(self, *, write: bool = False) -> None:
        await self.inner.check(write=write)

    async def close(self) -> None:
        return None  # the owner of ``inner`` closes it


class OnlyKeys(_View):
    """The source, listing only ``keys`` (sorted, distinct), each read by HEAD
    (a few in flight at once); keys gone since validation are left out."""

    def __init__(self, inner: ObjectStore, keys: Iterable[str]) -> None:
        super().__init__(inner)
        self.keys = keys

    async def _head(self, key: str) -> ObjectMeta | None:
        try:
            return await self.inner.head(key)
        except NotFound:
            return None

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        window: deque[asyncio.Task[ObjectMeta | None]] = deque()
        try:
            for key in self.keys:
                if not key.startswith(prefix):
                    continue
                window.append(asyncio.create_task(self._head(key)))
                if len(window) >= PREFETCH:
                    m = await window.popleft()
                    if m is not None:
                        yield m
            while window:
                m = await window.popleft()
                if m is not None:
                    yield m
        finally:
            for t in window:
                t.cancel()


class ListsNothing(_View):
    """The destination, with an empty listing: every listed source key is new to it."""

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        return
        yield  # an async generator that yields nothing


async def repair_objects(src: ObjectStore, dst: ObjectStore, state: StateStore,
                         keys: Iterable[str], options: SyncOptions) -> SyncResult:
    """Copy ``keys`` (code-point order, distinct) from ``src`` to ``dst`` with
    the sync engine; the caller holds the state lock."""
    opts = replace(options, delete=False, dry_run=False)
    return await SyncRun(OnlyKeys(src, keys), ListsNothing(dst), state, opts).run()
