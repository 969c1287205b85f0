"""MemoryStore and LocalStore driven side by side with a plain dict model
(after zarr's ``testing/stateful.py``): random puts in every mode, wrong MD5s,
multipart uploads left open, completed or aborted, conditional deletes and
reads pinned to old versions. After every step the store lists exactly what
the model holds."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from crosswind.errors import AlreadyExists, IntegrityError, NotFound, PreconditionFailed
from crosswind.model import ObjectProps, PutMode
from crosswind.stores.base import ObjectStore, Upload
from crosswind.stores.common import md5_hex
from crosswind.stores.local import LocalStore
from crosswind.stores.memory import MemoryStore

T = TypeVar("T")

# No key is the "directory" of another, so LocalStore can hold any subset.
KEYS = ["a", "a0", "a-b", "b/c", "b/d/e", "b/\U0001f600", "b/\ue000", "c d", "é"]
keys = st.sampled_from(KEYS)
datas = st.binary(max_size=24)
props = st.builds(
    ObjectProps,
    content_type=st.sampled_from([None, "application/json"]),
    cache_control=st.sampled_from([None, "no-cache"]),
    metadata=st.dictionaries(st.sampled_from(["a", "B", "c-d"]), st.text(max_size=4),
                             max_size=2),
)
# How a write is conditioned: on nothing, on absence, on the current etag, on an old one.
modes = st.sampled_from(["overwrite", "create", "update-current", "update-stale"])


@dataclass
class Entry:
    data: bytes
    props: ObjectProps
    etag: str


@dataclass
class OpenUpload:
    key: str
    upload: Upload
    props: ObjectProps
    mode: str
    if_match: str | None
    parts: dict[int, bytes] = field(default_factory=dict)


class StoreMachine(RuleBasedStateMachine):
    uploads = Bundle("uploads")

    def make_store(self, tmp: str) -> ObjectStore:
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.mkdtemp(prefix="cw-stateful-")
        self.store = self.make_store(self.tmp)
        self.model: dict[str, Entry] = {}
        #: every etag a key ever had, with its bytes: an etag names one content
        self.seen: dict[str, dict[str, bytes]] = {}

    def teardown(self) -> None:
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(aw)

    def fails(self, aw: Awaitable[Any]) -> type[Exception] | None:
        try:
            self.run(aw)
        except (AlreadyExists, PreconditionFailed, NotFound, IntegrityError) as exc:
            return type(exc)
        return None

    # -- helpers ---------------------------------------------------------------
    def stale_etag(self, key: str) -> str:
        current = self.model[key].etag if key in self.model else None
        old = [e for e in self.seen.get(key, {}) if e != current]
        return old[-1] if old else "never-an-etag"

    def condition(self, key: str, mode: str) -> tuple[PutMode, str | None, bool]:
        """(mode, if_match, whether the write should be accepted now)."""
        cur = self.model.get(key)
        if mode == "overwrite":
            return PutMode.OVERWRITE, None, True
        if mode == "create":
            return PutMode.CREATE, None, cur is None
        if mode == "update-current":
            etag = cur.etag if cur else "never-an-etag"
            return PutMode.UPDATE, etag, cur is not None
        return PutMode.UPDATE, self.stale_etag(key), False

    def still_holds(self, up: OpenUpload) -> bool:
        cur = self.model.get(up.key)
        if up.mode == "create":
            return cur is None
        if up.mode.startswith("update"):
            return cur is not None and cur.etag == up.if_match
        return True

    def written(self, key: str, data: bytes, p: ObjectProps, etag: str | None) -> None:
        assert etag, "a write returns an etag"
        earlier = self.seen.setdefault(key, {}).get(etag)
        assert earlier is None or earlier == data, f"etag {etag} reused for other bytes"
        self.seen[key][etag] = data
        self.model[key] = Entry(data, p, etag)

    # -- writes ----------------------------------------------------------------
    @rule(key=keys, data=datas, p=props, mode=modes)
    def put(self, key: str, data: bytes, p: ObjectProps, mode: str) -> None:
        put_mode, if_match, ok = self.condition(key, mode)
        try:
            receipt = self.run(self.store.put(key, data, p, md5=md5_hex(data), mode=put_mode,
                                              if_match=if_match))
        except AlreadyExists:
            assert not ok and put_mode is PutMode.CREATE
            return
        except PreconditionFailed:
            assert not ok and put_mode is PutMode.UPDATE
            return
        assert ok, f"{mode} write of {key!r} was accepted"
        assert (receipt.key, receipt.size, receipt.md5) == (key, len(data), md5_hex(data))
        self.written(key, data, p, receipt.etag)

    @rule(key=keys, data=datas)
    def put_wrong_md5(self, key: str, data: bytes) -> None:
        bad = md5_hex(data + b"!")
        assert self.fails(self.store.put(key, data, ObjectProps(), md5=bad)) is IntegrityError

    @rule(key=keys, if_match=st.sampled_from(["none", "current", "stale"]))
    def delete(self, key: str, if_match: str) -> None:
        cur = self.model.get(key)
        etag = None
        if if_match == "current":
            etag = cur.etag if cur else None
        elif if_match == "stale":
            etag = self.stale_etag(key)
        err = self.fails(self.store.delete(key, if_match=etag))
        if if_match == "stale" and cur is not None:
            assert err is PreconditionFailed
        else:
            assert err is None
            self.model.pop(key, None)

    # -- multipart -------------------------------------------------------------
    @rule(target=uploads, key=keys, p=props, mode=modes)
    def start_upload(self, key: str, p: ObjectProps, mode: str) -> Any:
        put_mode, if_match, ok = self.condition(key, mode)
        try:
            up = self.run(self.store.start_upload(key, p, mode=put_mode, if_match=if_match))
        except (AlreadyExists, PreconditionFailed):
            assert not ok
            return multiple()
        return OpenUpload(key, up, p, mode, if_match)

    @rule(up=uploads, number=st.integers(1, 3), data=datas, good=st.booleans())
    def put_part(self, up: OpenUpload, number: int, data: bytes, good: bool) -> None:
        md5 = md5_hex(data) if good else md5_hex(data + b"!")
        err = self.fails(up.upload.put_part(number, data, md5))
        if good:
            assert err is None
            up.parts[number] = data
        else:
            assert err is IntegrityError

    @rule(up=consumes(uploads))
    def complete(self, up: OpenUpload) -> None:
        data = b"".join(up.parts[n] for n in sorted(up.parts))
        late = {"crosswind-md5": md5_hex(data)}
        try:
            receipt = self.run(up.upload.complete(
                len(data), md5_hex(data), [md5_hex(up.parts[n]) for n in sorted(up.parts)],
                late))
        except (AlreadyExists, PreconditionFailed):
            assert not self.still_holds(up)
            return
        assert self.still_holds(up), f"{up.mode} upload of {up.key!r} was accepted"
        assert receipt.size == len(data)
        final = ObjectProps(**up.props.headers(), metadata={**up.props.metadata, **late})
        self.written(up.key, data, final, receipt.etag)

    @rule(up=consumes(uploads), data=datas)
    def complete_after_another_writer(self, up: OpenUpload, data: bytes) -> None:
        """Someone writes the key while the upload is open: a conditional
        upload must now fail, an unconditional one wins."""
        self.put(up.key, data, ObjectProps(), "overwrite")
        self.complete(up)

    @rule(up=consumes(uploads), by_id=st.booleans())
    def abort(self, up: OpenUpload, by_id: bool) -> None:
        if by_id:
            self.run(self.store.abort_upload(up.key, up.upload.upload_id))
        else:
            self.run(up.upload.abort())

    # -- reads -----------------------------------------------------------------
    @rule(key=keys, data=st.data())
    def get(self, key: str, data: st.DataObject) -> None:
        cur = self.model.get(key)
        if cur is None:
            assert self.fails(self.store.get(key)) is NotFound
            assert self.fails(self.store.head(key)) is NotFound
            return
        n = len(cur.data)
        start = data.draw(st.integers(0, n))
        end = data.draw(st.integers(start, n))
        rng = data.draw(st.sampled_from([None, (start, end)]))
        reader = self.run(self.store.get(key, if_match=cur.etag, byte_range=rng))

        async def drain() -> bytes:
            return b"".join([c async for c in reader.chunks()])

        assert self.run(drain()) == (cur.data if rng is None else cur.data[start:end])
        head = self.run(self.store.head(key))
        assert head.etag == cur.etag
        assert head.props == cur.props
        assert head.content_md5 in (None, md5_hex(cur.data))

    @rule(key=keys)
    def get_old_version(self, key: str) -> None:
        cur = self.model.get(key)
        err = self.fails(self.store.get(key, if_match=self.stale_etag(key)))
        assert err is (PreconditionFailed if cur is not None else NotFound)

    @rule(prefix=st.sampled_from(["", "a", "b/", "b/d", "c", "é", "z"]))
    def list_prefix(self, prefix: str) -> None:
        async def listed() -> list[tuple[str, int, str | None]]:
            return [(m.key, m.size, m.etag) async for m in self.store.list(prefix)]

        expected = [(k, len(e.data), e.etag) for k, e in sorted(self.model.items())
                    if k.startswith(prefix)]
        assert self.run(listed()) == expected

    @invariant()
    def lists_what_the_model_holds(self) -> None:
        async def listed() -> list[tuple[str, int, str | None]]:
            out = []
            async for m in self.store.list():
                if m.props is not None:
                    assert m.props == self.model[m.key].props
                out.append((m.key, m.size, m.etag))
            return out

        expected = [(k, len(e.data), e.etag) for k, e in sorted(self.model.items())]
        assert self.run(listed()) == expected


class MemoryMachine(StoreMachine):
    def make_store(self, tmp: str) -> ObjectStore:
        return MemoryStore("stateful")


class LocalMachine(StoreMachine):
    def make_store(self, tmp: str) -> ObjectStore:
        return LocalStore(tmp)


BOUNDED = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestMemoryStore = MemoryMachine.TestCase
TestMemoryStore.settings = BOUNDED
TestLocalStore = LocalMachine.TestCase
TestLocalStore.settings = BOUNDED
