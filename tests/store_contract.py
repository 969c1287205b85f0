"""The object-store contract as checks, run against every backend.

One body of checks (in the spirit of object_store's ``src/integration.rs``):
``tests/unit/test_store_conformance.py`` runs them against MemoryStore and
LocalStore, ``tests/integration/test_store_conformance.py`` against Azure Blob
(Azurite) and S3 (moto server). Each check gets a fresh, empty store.

What differs between backends is read from the store's declared
``capabilities`` (metadata flavor, whether listings carry props, whether
late metadata is kept, minimum part size), never from its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from crosswind.errors import (
    AlreadyExists,
    CrosswindError,
    IntegrityError,
    InvalidKey,
    NotFound,
    PreconditionFailed,
)
from crosswind.mapping import reserved_name, split_reserved
from crosswind.model import ObjectMeta, ObjectProps, PutMode
from crosswind.stores.base import MetadataFlavor, ObjectStore, StreamingPut
from crosswind.stores.common import md5_hex

Check = Callable[[ObjectStore], Awaitable[None]]
StoreFactory = Callable[[], contextlib.AbstractAsyncContextManager[ObjectStore]]

CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def run_check(factory: StoreFactory, fn: Check) -> None:
    """Open a fresh store, run one check in its own event loop, close the store."""

    async def go() -> None:
        async with factory() as store:
            await fn(store)

    asyncio.run(go())


def parametrize_checks(known_failures: Mapping[str, str] | None = None) -> Any:
    """All checks as ``check_name``; ``known_failures`` maps a check to the reason
    a backend is known to fail it (strict xfail: a fix makes the run fail until
    the entry is removed)."""
    known = known_failures or {}
    unknown = set(known) - set(CHECKS)
    assert not unknown, f"no such checks: {unknown}"
    return pytest.mark.parametrize("check_name", [
        pytest.param(name, marks=pytest.mark.xfail(reason=known[name], strict=True))
        if name in known else name
        for name in sorted(CHECKS)
    ])


# -- helpers ---------------------------------------------------------------------
WRONG_MD5 = "0" * 32


async def put(
    store: ObjectStore, key: str, data: bytes, props: ObjectProps | None = None, **kw: Any
) -> Any:
    return await store.put(key, data, props or ObjectProps(), md5=md5_hex(data), **kw)


async def read(store: ObjectStore, key: str, **kw: Any) -> bytes:
    reader = await store.get(key, **kw)
    return b"".join([c async for c in reader.chunks()])


async def listing(store: ObjectStore, prefix: str = "") -> list[ObjectMeta]:
    return [m async for m in store.list(prefix)]


async def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [m.key for m in await listing(store, prefix)]


def user_metadata_for(flavor: MetadataFlavor) -> dict[str, str]:
    """User metadata whose names the flavor accepts as written (mixed case included)."""
    md = {"FlightNo": "BA0117", "origin_airport": "LHR", "Leg2": "a b=c;d,e"}
    if flavor != "azure":
        md["x-amz-ish"] = "dash-name"  # dashes: S3 and free only
    return md


def stored_metadata(flavor: MetadataFlavor, md: Mapping[str, str]) -> dict[str, str]:
    """What a backend of ``flavor`` gives back: S3 lower-cases names, Azure keeps case."""
    return {(k.lower() if flavor == "s3" else k): v for k, v in md.items()}


def sample_props(store: ObjectStore) -> ObjectProps:
    return ObjectProps(
        content_type="application/json",
        content_encoding="gzip",
        content_language="en-GB",
        content_disposition='attachment; filename="event.json"',
        cache_control="max-age=60",
        metadata=user_metadata_for(store.capabilities.metadata_flavor),
    )


def assert_props(store: ObjectStore, got: ObjectProps, sent: ObjectProps, where: str) -> None:
    flavor = store.capabilities.metadata_flavor
    assert got.headers() == sent.headers(), f"{where}: headers"
    assert dict(got.metadata) == stored_metadata(flavor, sent.metadata), (
        f"{where}: metadata {dict(got.metadata)} vs {stored_metadata(flavor, sent.metadata)}")


async def expect(exc: type[CrosswindError], aw: Awaitable[Any]) -> CrosswindError:
    with pytest.raises(exc) as info:
        await aw
    return info.value


# -- listing ---------------------------------------------------------------------
# Keys whose UTF-16 order differs from code-point order (astral vs U+E000..U+FFFF),
# plus characters that URL-encoding and path handling get wrong.
# No key is also the "directory" of another: a filesystem cannot hold both
# (LocalStore refuses that case with InvalidKey, tested on its own).
TRICKY_KEYS = [
    "k/a b+c%20d",
    "k/a-b",
    "k/a0",
    "k/a/x",
    "k/~",
    "k/é",
    "k/\ue000",
    "k/\uff21",
    "k/\U0001f600/z",
    "k/\U0001f600\U0001f600",
    "k/z\U00010000",
    "k/z\uffee",
    "other/1",
    "other2",
]


@check
async def check_empty_store_lists_nothing(store: ObjectStore) -> None:
    assert await keys(store) == []
    assert await keys(store, "k/") == []


@check
async def check_list_is_in_code_point_order(store: ObjectStore) -> None:
    for i, key in enumerate(reversed(TRICKY_KEYS)):
        await put(store, key, f"v{i}".encode())
    assert await keys(store) == sorted(TRICKY_KEYS)
    got = await listing(store)
    for m in got:
        head = await store.head(m.key)
        assert m.size == head.size
        assert m.etag == head.etag, m.key


@check
async def check_list_prefix(store: ObjectStore) -> None:
    for key in TRICKY_KEYS:
        await put(store, key, b"x")
    for prefix in ("k/", "k/a", "k/\U0001f600", "other", "other/", "nothing", "k/z"):
        expected = sorted(k for k in TRICKY_KEYS if k.startswith(prefix))
        assert await keys(store, prefix) == expected, prefix


@check
async def check_listing_spans_pages(store: ObjectStore) -> None:
    """More keys than one S3 listing page (1,000), written concurrently."""
    names = [f"p/{i:05d}" for i in range(1050)] + ["p/\U0001f600", "p/\uffee"]
    gate = asyncio.Semaphore(16)

    async def one(key: str) -> None:
        async with gate:
            await put(store, key, key.encode())

    await asyncio.gather(*(one(k) for k in names))
    got = await listing(store, "p/")
    assert [m.key for m in got] == sorted(names)
    assert all(m.size == len(m.key.encode()) for m in got)


@check
async def check_list_entries_carry_size_etag_and_md5(store: ObjectStore) -> None:
    data = b"0123456789" * 7
    receipt = await put(store, "sized", data)
    [m] = await listing(store)
    assert (m.key, m.size) == ("sized", len(data))
    assert m.etag is not None and m.etag == receipt.etag
    assert m.content_md5 in (None, md5_hex(data))
    assert m.last_modified is not None


@check
async def check_listing_props_follow_capabilities(store: ObjectStore) -> None:
    props = sample_props(store)
    await put(store, "p", b"{}", props)
    [m] = await listing(store)
    if store.capabilities.listing_has_props:
        assert m.props is not None, "listing_has_props is declared but the listing has none"
        assert_props(store, m.props, props, "listing")


# Keys the services hold but path libraries normalise or refuse: a console
# "folder" marker, an empty segment, a leading slash, a "." segment, a tab, a
# backslash (Azure turns it into "/").
UNUSUAL_KEYS = ["dir/", "a//b", "/lead", "x/./y", "tab\tx", "back\\slash"]


@check
async def check_unusual_keys_are_refused_or_kept_exactly(store: ObjectStore) -> None:
    """A store either refuses a key (InvalidKey) or lists and reads it back as written."""
    kept = []
    for key in UNUSUAL_KEYS:
        try:
            await put(store, key, key.encode())
        except InvalidKey:
            continue
        kept.append(key)
    assert await keys(store) == sorted(kept)
    for key in kept:
        assert await read(store, key) == key.encode(), key
        assert (await store.head(key)).size == len(key)
        await store.delete(key)
    assert await keys(store) == []


# -- head / get ------------------------------------------------------------------
@check
async def check_head_round_trips_headers_and_metadata(store: ObjectStore) -> None:
    props = sample_props(store)
    data = b'{"flight": "BA117"}'
    receipt = await put(store, "dir/event.json", data, props)
    assert receipt.key == "dir/event.json"
    assert receipt.size == len(data)
    assert receipt.md5 == md5_hex(data)
    head = await store.head("dir/event.json")
    assert head.size == len(data)
    assert head.etag == receipt.etag
    assert head.content_md5 in (None, md5_hex(data))
    assert head.props is not None
    assert_props(store, head.props, props, "head")


@check
async def check_get_streams_bytes_and_props(store: ObjectStore) -> None:
    props = sample_props(store)
    data = bytes(range(256)) * 40
    await put(store, "bin", data, props)
    head = await store.head("bin")
    reader = await store.get("bin")
    assert b"".join([c async for c in reader.chunks()]) == data
    assert reader.meta.key == "bin"
    assert reader.meta.size == len(data)
    assert reader.meta.etag == head.etag
    if reader.meta.props is None:
        # Allowed only where the listing carries the props instead (Azure).
        assert store.capabilities.listing_has_props
    else:
        assert_props(store, reader.meta.props, props, "get")


@check
async def check_empty_object(store: ObjectStore) -> None:
    await put(store, "empty", b"")
    assert (await store.head("empty")).size == 0
    assert await read(store, "empty") == b""
    assert [(m.key, m.size) for m in await listing(store)] == [("empty", 0)]


@check
async def check_ranged_get(store: ObjectStore) -> None:
    data = bytes(i % 251 for i in range(10_000))
    await put(store, "r", data)
    for start, end in ((0, 1), (0, 10_000), (9_999, 10_000), (1234, 5678), (5000, 5001)):
        assert await read(store, "r", byte_range=(start, end)) == data[start:end], (start, end)
        reader = await store.get("r", byte_range=(start, end))
        assert reader.meta.size == len(data), "reader.meta describes the whole object"


@check
async def check_encoded_content_is_read_raw(store: ObjectStore) -> None:
    """``Content-Encoding: gzip`` describes the bytes; a store never decodes them
    (a copy must carry the bytes as stored, and sizes and MD5s are of those).
    Every read path: whole, chunks, ranges, and keys path libraries cannot hold."""
    raw = gzip.compress(b'{"flight": "BA117"}' * 200, mtime=0)
    props = ObjectProps(content_type="application/json", content_encoding="gzip")
    for key in ("enc/event.json.gz", "enc//odd", "enc/x/../y"):
        try:
            await put(store, key, raw, props)
        except InvalidKey:
            continue
        reader = await store.get(key)
        assert reader.meta.size == len(raw), key
        assert await reader.read_all() == raw, key
        assert await read(store, key) == raw, key
        for start, end in ((0, 10), (5, len(raw))):
            assert await read(store, key, byte_range=(start, end)) == raw[start:end], key
        assert (await store.head(key)).props.content_encoding == "gzip"  # type: ignore[union-attr]


@check
async def check_missing_key_is_not_found(store: ObjectStore) -> None:
    await expect(NotFound, store.head("nope"))
    await expect(NotFound, store.get("nope"))
    await put(store, "dir/x", b"x")
    await expect(NotFound, store.head("dir"))
    await expect(NotFound, store.get("dir/x/y"))


@check
async def check_if_match_pins_the_version(store: ObjectStore) -> None:
    await put(store, "v", b"first")
    old = (await store.head("v")).etag
    assert old is not None
    assert await read(store, "v", if_match=old) == b"first"
    await put(store, "v", b"other")  # same size, other bytes
    new = (await store.head("v")).etag
    assert new != old, "a rewrite with other bytes must change the etag"
    await expect(PreconditionFailed, store.get("v", if_match=old))
    await expect(PreconditionFailed, store.get("v", if_match=old, byte_range=(0, 2)))
    assert await read(store, "v", if_match=new) == b"other"


# -- put modes -------------------------------------------------------------------
@check
async def check_overwrite_replaces_bytes_and_props(store: ObjectStore) -> None:
    await put(store, "o", b"one", sample_props(store))
    props2 = ObjectProps(content_type="text/plain", metadata={"Second": "2"})
    await put(store, "o", b"two!", props2)
    assert await read(store, "o") == b"two!"
    head = await store.head("o")
    assert head.size == 4
    assert head.props is not None
    assert_props(store, head.props, props2, "head after overwrite")


@check
async def check_put_create_only_if_absent(store: ObjectStore) -> None:
    await put(store, "c", b"first", mode=PutMode.CREATE)
    await expect(AlreadyExists, put(store, "c", b"second", mode=PutMode.CREATE))
    assert await read(store, "c") == b"first"


@check
async def check_put_update_needs_current_etag(store: ObjectStore) -> None:
    await expect(PreconditionFailed, put(store, "u", b"x", mode=PutMode.UPDATE, if_match="nope"))
    await expect(NotFound, store.head("u"))
    r1 = await put(store, "u", b"one")
    r2 = await put(store, "u", b"two", mode=PutMode.UPDATE, if_match=r1.etag)
    assert await read(store, "u") == b"two"
    await expect(PreconditionFailed, put(store, "u", b"three", mode=PutMode.UPDATE,
                                         if_match=r1.etag))
    assert await read(store, "u") == b"two"
    assert (await store.head("u")).etag == r2.etag


@check
async def check_wrong_md5_is_refused_and_never_visible(store: ObjectStore) -> None:
    with pytest.raises(IntegrityError):
        await store.put("bad", b"payload", ObjectProps(), md5=WRONG_MD5)
    await expect(NotFound, store.head("bad"))
    assert await keys(store) == []
    # Over an existing object: either the old, verified bytes stay or nothing does.
    await put(store, "bad", b"old bytes")
    with pytest.raises(IntegrityError):
        await store.put("bad", b"new bytes", ObjectProps(), md5=WRONG_MD5)
    with contextlib.suppress(NotFound):
        assert await read(store, "bad") == b"old bytes"


# -- streamed writes (the optional StreamingPut ability) ---------------------------
class _Body:
    """A StreamBody over bytes: chunks, hashed as they are yielded; ``short``
    stops that many bytes early with the error a source would raise."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024, short: int = 0,
                 hashed: bool = True) -> None:
        self.data, self.chunk, self.short, self.hashed = data, chunk, short, hashed
        self.size = len(data)
        self._h = hashlib.md5(usedforsecurity=False)

    def md5(self) -> str | None:
        return self._h.hexdigest() if self.hashed else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        end = len(self.data) - self.short
        for i in range(0, end, self.chunk):
            piece = self.data[i:min(i + self.chunk, end)]
            self._h.update(piece)
            yield piece
            await asyncio.sleep(0)
        if self.short:
            raise IntegrityError("the source stopped short")


def _streams(store: ObjectStore) -> StreamingPut | None:
    if store.capabilities.streamed_put == "no" or not isinstance(store, StreamingPut):
        return None
    return store


@check
async def check_streamed_put_round_trips(store: ObjectStore) -> None:
    s = _streams(store)
    if s is None:
        return
    props = sample_props(store)
    data = bytes(range(256)) * 1200  # 300 KiB in 64 KiB chunks
    r = await s.put_stream("s/one", _Body(data), props, md5=md5_hex(data))
    assert r.md5 == md5_hex(data) and r.size == len(data)
    assert await read(store, "s/one") == data
    head = await store.head("s/one")
    assert head.etag == r.etag and head.props is not None
    assert_props(store, head.props, props, "head after a streamed put")
    await s.put_stream("s/empty", _Body(b""), ObjectProps(), md5=md5_hex(b""))
    assert await read(store, "s/empty") == b""
    if store.capabilities.streamed_put == "after":
        # The MD5 need not be known first: the store verifies what it stored.
        r = await s.put_stream("s/late", _Body(data), ObjectProps())
        assert r.md5 == md5_hex(data) and await read(store, "s/late") == data
    # Not hashed on the way: the store checks against the MD5 given.
    r = await s.put_stream("s/known", _Body(data, hashed=False), ObjectProps(),
                           md5=md5_hex(data))
    assert r.md5 == md5_hex(data)


@check
async def check_streamed_put_wrong_md5_is_refused_and_not_kept(store: ObjectStore) -> None:
    s = _streams(store)
    if s is None:
        return
    with pytest.raises(IntegrityError):
        await s.put_stream("s/bad", _Body(b"payload" * 1000, hashed=False), ObjectProps(),
                           md5=WRONG_MD5)
    await expect(NotFound, store.head("s/bad"))


@check
async def check_streamed_put_stopping_short_stores_nothing(store: ObjectStore) -> None:
    s = _streams(store)
    if s is None:
        return
    data = b"x" * 200_000
    with pytest.raises(CrosswindError):
        await s.put_stream("s/short", _Body(data, short=1000), ObjectProps(),
                           md5=md5_hex(data))
    await expect(NotFound, store.head("s/short"))


@check
async def check_streamed_put_create_mode(store: ObjectStore) -> None:
    s = _streams(store)
    if s is None:
        return
    await s.put_stream("s/c", _Body(b"first"), ObjectProps(), md5=md5_hex(b"first"),
                       mode=PutMode.CREATE)
    with pytest.raises(AlreadyExists):
        await s.put_stream("s/c", _Body(b"second"), ObjectProps(), md5=md5_hex(b"second"),
                           mode=PutMode.CREATE)
    assert await read(store, "s/c") == b"first"


# -- multipart -------------------------------------------------------------------
def _parts(store: ObjectStore) -> list[bytes]:
    size = max(store.capabilities.min_part_size, 7)
    return [b"a" * size, bytes(range(256)) * (size // 256 + 1), b"tail"]


@check
async def check_multipart_upload(store: ObjectStore) -> None:
    props = sample_props(store)
    parts = _parts(store)
    data = b"".join(parts)
    up = await store.start_upload("big/object", props)
    assert up.upload_id
    # Out of order on purpose: parts are numbered, not sequenced.
    for n in (2, 1, 3):
        await up.put_part(n, parts[n - 1], md5_hex(parts[n - 1]))
    await expect(NotFound, store.head("big/object"))  # nothing visible before complete
    assert await keys(store) == []
    flavor = store.capabilities.metadata_flavor
    late = {reserved_name(flavor, "md5"): md5_hex(data)}
    receipt = await up.complete(len(data), md5_hex(data), [md5_hex(p) for p in parts], late)
    assert receipt.size == len(data)
    assert receipt.md5 == md5_hex(data)
    assert await read(store, "big/object") == data
    head = await store.head("big/object")
    assert head.size == len(data)
    assert head.etag == receipt.etag
    assert head.content_md5 in (None, md5_hex(data))
    assert head.props is not None
    assert head.props.headers() == props.headers()
    user, ours = split_reserved(head.props.metadata)
    assert user == stored_metadata(flavor, props.metadata)
    if store.capabilities.late_metadata:
        assert ours.get("md5") == md5_hex(data)
    assert await keys(store) == ["big/object"]


@check
async def check_multipart_abort_leaves_nothing(store: ObjectStore) -> None:
    parts = _parts(store)
    up = await store.start_upload("aborted", ObjectProps())
    await up.put_part(1, parts[0], md5_hex(parts[0]))
    await up.abort()
    await expect(NotFound, store.head("aborted"))
    assert await keys(store) == []
    # An upload left open by a crashed run is aborted by id; unknown ids are no-ops.
    up2 = await store.start_upload("crashed", ObjectProps())
    await up2.put_part(1, parts[0], md5_hex(parts[0]))
    await store.abort_upload("crashed", up2.upload_id)
    await store.abort_upload("crashed", up2.upload_id)
    await expect(NotFound, store.head("crashed"))
    assert await keys(store) == []


@check
async def check_abort_uploads_of_one_key(store: ObjectStore) -> None:
    """An upload whose id was never recorded (the run was killed right after
    creating it) is found by its exact key; uploads of other keys are untouched."""
    lost = await store.start_upload("k", ObjectProps())
    other = await store.start_upload("k2", ObjectProps())
    aborted = await store.abort_uploads_of("k")
    assert aborted in (0, 1)  # 0: the store has nothing that stays open (Azure)
    await other.put_part(1, b"x", md5_hex(b"x"))
    await other.complete(1, md5_hex(b"x"), [md5_hex(b"x")], {})
    assert await read(store, "k2") == b"x"
    if aborted:
        with pytest.raises(CrosswindError):
            await lost.put_part(1, b"y", md5_hex(b"y"))
            await lost.complete(1, md5_hex(b"y"), [md5_hex(b"y")], {})
    await expect(NotFound, store.head("k"))
    assert await store.abort_uploads_of("nothing-here") == 0


@check
async def check_multipart_wrong_part_md5(store: ObjectStore) -> None:
    parts = _parts(store)
    up = await store.start_upload("badpart", ObjectProps())
    with pytest.raises(IntegrityError):
        await up.put_part(1, parts[0], WRONG_MD5)
    await up.abort()
    await expect(NotFound, store.head("badpart"))


@check
async def check_multipart_create_mode(store: ObjectStore) -> None:
    await put(store, "mc", b"existing")
    parts = _parts(store)
    data = b"".join(parts)
    # The refusal may come when the upload starts or when it completes.
    with pytest.raises(AlreadyExists):
        up = await store.start_upload("mc", ObjectProps(), mode=PutMode.CREATE)
        for n, p in enumerate(parts, 1):
            await up.put_part(n, p, md5_hex(p))
        await up.complete(len(data), md5_hex(data), [md5_hex(p) for p in parts], {})
    assert await read(store, "mc") == b"existing"
    assert await keys(store) == ["mc"]


# -- delete ----------------------------------------------------------------------
@check
async def check_delete_is_idempotent(store: ObjectStore) -> None:
    await put(store, "d/1", b"1")
    await put(store, "d/2", b"2")
    await store.delete("d/1")
    await store.delete("d/1")
    await store.delete("never-existed")
    await expect(NotFound, store.head("d/1"))
    assert await keys(store) == ["d/2"]


@check
async def check_delete_if_match(store: ObjectStore) -> None:
    r1 = await put(store, "dm", b"one")
    await put(store, "dm", b"two")
    await expect(PreconditionFailed, store.delete("dm", if_match=r1.etag))
    assert await read(store, "dm") == b"two"
    current = (await store.head("dm")).etag
    await store.delete("dm", if_match=current)
    await expect(NotFound, store.head("dm"))
    await store.delete("dm", if_match=current)  # gone already: not an error


@check
async def check_store_probe(store: ObjectStore) -> None:
    await store.check()
    await store.check(write=True)  # full credentials: writes are allowed
    assert store.name
