"""Objects as files under a root directory.

Keys map to paths below the root; a key that would escape it (``..``, an
absolute path, empty segments, NUL) is refused with ``InvalidKey``. Headers,
metadata and the content MD5 live in a JSON sidecar under ``.cwmeta/``. Writes
go to a temporary file first and are renamed into place, so a crash never
leaves a partial object visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from crosswind.errors import AlreadyExists, InvalidKey, NotFound, PreconditionFailed
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt
from crosswind.stores.base import Capabilities, MetadataFlavor, ObjectReader, StreamBody
from crosswind.stores.common import (
    BytesReader,
    md5_hex,
    require_md5,
    single_put_fits,
    streamed_bytes,
)

META_DIR = ".cwmeta"
TMP_MARK = ".cwtmp-"
# File names hold 255 bytes; a segment also becomes ".<name>.json.cwtmp-<8 hex>".
MAX_SEGMENT_BYTES = 255 - len(".") - len(".json") - len(TMP_MARK) - 8


def _props_to_json(props: ObjectProps, md5: str, size: int) -> str:
    return json.dumps({**props.headers(), "metadata": dict(props.metadata), "md5": md5,
                       "size": size})


def _props_from_json(text: str) -> tuple[ObjectProps, str | None, int | None]:
    d = json.loads(text)
    md5 = d.pop("md5", None)
    size = d.pop("size", None)
    metadata = d.pop("metadata", {})
    return ObjectProps(**d, metadata=metadata), md5, size


class LocalStore:
    def __init__(self, root: Path | str, flavor: MetadataFlavor = "free") -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = f"file://{self.root}"
        self.capabilities = Capabilities(
            listing_has_props=False, late_metadata=True, metadata_flavor=flavor,
            min_part_size=1, max_single_put=1 << 62, streamed_put="after",
        )
        self.uploads: dict[str, _LocalUpload] = {}

    # -- keys ----------------------------------------------------------------
    def path_of(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\x00" in key
            or any(p in ("", ".", "..") for p in parts)
            or parts[0] == META_DIR
            or any(TMP_MARK in p for p in parts)
            or any(len(p.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for p in parts)
        ):
            raise InvalidKey(f"{self.name}: key {key!r} cannot be stored as a file under the root")
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root):
            raise InvalidKey(f"{self.name}: key {key!r} escapes the root")
        return path

    def _sidecar(self, key: str) -> Path:
        # Directories get ".d", files ".json", so no key's sidecar file is another
        # key's sidecar directory ("a" -> a.json, "a.json/x" -> a.json.d/x.json).
        *dirs, name = key.split("/")
        return self.root / META_DIR / Path(*(d + ".d" for d in dirs)) / (name + ".json")

    # -- reading -------------------------------------------------------------
    def _walk(self, directory: Path, rel: str) -> Iterator[tuple[str, os.stat_result]]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        # A directory's keys all start with "name/", so it sorts as "name/".
        ordered = sorted(
            ((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name), e) for e in entries
        )
        for sort_name, entry in ordered:
            if TMP_MARK in entry.name or (not rel and entry.name == META_DIR):
                continue
            if sort_name.endswith("/"):
                yield from self._walk(Path(entry.path), rel + entry.name + "/")
            elif entry.is_file(follow_symlinks=False):
                yield rel + entry.name, entry.stat(follow_symlinks=False)

    def _meta(self, key: str, st: os.stat_result, with_props: bool) -> ObjectMeta:
        props, md5, size = None, None, None
        with contextlib.suppress(FileNotFoundError, ValueError):
            props, md5, size = _props_from_json(self._sidecar(key).read_text("utf-8"))
        if size is not None and size != st.st_size:
            md5 = None  # sidecar of another version (crash between the renames)
        return ObjectMeta(
            key, st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}",
            datetime.fromtimestamp(st.st_mtime, UTC), md5,
            (props or ObjectProps()) if with_props else None,
        )

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        for key, st in self._walk(self.root, ""):
            if key.startswith(prefix):
                yield self._meta(key, st, with_props=False)
            elif key > prefix:
                break

    async def head(self, key: str) -> ObjectMeta:
        path = self.path_of(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{self.name}/{key}: not found") from None
        if not path.is_file():
            raise NotFound(f"{self.name}/{key}: not a file")
        return self._meta(key, st, with_props=True)

    async def get(
        self, key: str, *, if_match: str | None = None, byte_range: tuple[int, int] | None = None
    ) -> ObjectReader:
        meta = await self.head(key)
        if if_match is not None and if_match != meta.etag:
            raise PreconditionFailed(f"{self.name}/{key}: changed since it was listed")
        data = await asyncio.to_thread(self.path_of(key).read_bytes)
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1]]
        return BytesReader(meta, data)

    # -- writing -------------------------------------------------------------
    def _check_mode(self, key: str, mode: PutMode, if_match: str | None) -> None:
        if mode is PutMode.OVERWRITE:
            return
        path = self.path_of(key)
        exists = path.is_file()
        if mode is PutMode.CREATE and exists:
            raise AlreadyExists(f"{self.name}/{key}: already exists")
        if mode is PutMode.UPDATE:
            st = path.stat() if exists else None
            if st is None or f"{st.st_mtime_ns:x}-{st.st_size:x}" != if_match:
                raise PreconditionFailed(f"{self.name}/{key}: etag does not match")

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{TMP_MARK}{secrets.token_hex(4)}")
        with tmp.open("wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def _refuse_collision(self, key: str, path: Path) -> None:
        """A file cannot also be a directory: "a" and "a/b" cannot both be stored."""
        clash = path.is_dir() or any(
            p.exists() and not p.is_dir() for p in path.parents if p.is_relative_to(self.root)
        )
        if clash:
            raise InvalidKey(
                f"{self.name}: key {key!r} collides with another key's file or directory"
            )

    def _commit(self, key: str, data: bytes, props: ObjectProps, md5: str) -> WriteReceipt:
        path = self.path_of(key)
        require_md5(key, md5, md5_hex(data), "content MD5")
        self._refuse_collision(key, path)
        self._write_atomic(self._sidecar(key), _props_to_json(props, md5, len(data)).encode())
        self._write_atomic(path, data)
        st = path.stat()
        return WriteReceipt(key, len(data), f"{st.st_mtime_ns:x}-{st.st_size:x}", md5)

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
        return await asyncio.to_thread(self._commit, key, bytes(data), props, md5)

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
    ) -> _LocalUpload:
        self.path_of(key)
        self._check_mode(key, mode, if_match)
        up = _LocalUpload(self, key, props, mode, if_match, secrets.token_hex(8))
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
        path = self.path_of(key)
        if if_match is not None:
            try:
                meta = await self.head(key)
            except NotFound:
                return
            if meta.etag != if_match:
                raise PreconditionFailed(f"{self.name}/{key}: etag does not match")
        # A key under a file, or one naming a directory, is simply absent.
        absent = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
        with contextlib.suppress(*absent):
            path.unlink()
        with contextlib.suppress(*absent):
            self._sidecar(key).unlink()

    async def check(self, *, write: bool = False) -> None:
        if not self.root.is_dir():
            raise NotFound(f"{self.name}: not a directory")

    async def close(self) -> None:
        return None


@dataclass
class _LocalUpload:
    store: LocalStore
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
        self.store._check_mode(self.key, self.mode, self.if_match)
        props = replace(self.props, metadata={**self.props.metadata, **late_metadata})
        receipt = await asyncio.to_thread(self.store._commit, self.key, data, props, md5)
        self.store.uploads.pop(self.upload_id, None)
        return receipt

    async def abort(self) -> None:
        self.store.uploads.pop(self.upload_id, None)
