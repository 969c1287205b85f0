"""The store contract (``tests/store_contract.py``) against MemoryStore and LocalStore,
plus what only the local filesystem store has to get right: keys never escape its root."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crosswind.errors import InvalidKey, NotFound
from crosswind.model import ObjectProps
from crosswind.stores.base import ObjectStore
from crosswind.stores.common import md5_hex
from crosswind.stores.local import LocalStore
from crosswind.stores.memory import MemoryStore
from tests.store_contract import CHECKS, StoreFactory, parametrize_checks, run_check


def _factories(tmp: Path) -> dict[str, StoreFactory]:
    @contextlib.asynccontextmanager
    async def memory() -> AsyncIterator[ObjectStore]:
        store = MemoryStore("conformance")
        yield store
        await store.close()

    @contextlib.asynccontextmanager
    async def local() -> AsyncIterator[ObjectStore]:
        store = LocalStore(tmp / "root")
        yield store
        await store.close()

    return {"memory": memory, "local": local}


@pytest.mark.parametrize("backend", ["memory", "local"])
@parametrize_checks()
def test_contract(backend: str, check_name: str, tmp_path: Path) -> None:
    run_check(_factories(tmp_path)[backend], CHECKS[check_name])


def test_every_backend_implements_the_protocol(tmp_path: Path) -> None:
    for store in (MemoryStore(), LocalStore(tmp_path)):
        assert isinstance(store, ObjectStore)


# -- LocalStore: keys that would escape the root or cannot be file names -----------
REFUSED_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "a/../../outside",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\x00b",
    ".cwmeta/a.json",  # the sidecar folder is not an object
    "d/" + "x" * 235,  # with its sidecar and temporary names, longer than a file name
    "é" * 118,
]


@pytest.mark.parametrize("key", REFUSED_KEYS)
def test_local_store_refuses_keys_it_cannot_hold_under_its_root(key: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalStore(root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    async def go() -> None:
        for op in (
            store.put(key, b"x", ObjectProps(), md5=md5_hex(b"x")),
            store.start_upload(key, ObjectProps()),
            store.head(key),
            store.get(key),
            store.delete(key),
        ):
            with pytest.raises(InvalidKey):
                await op

    asyncio.run(go())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "outside").exists()


def test_local_store_refuses_a_symlink_out_of_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalStore(root)
    os.symlink(outside, root / "link")

    async def go() -> None:
        with pytest.raises(InvalidKey):
            await store.put("link/x", b"x", ObjectProps(), md5=md5_hex(b"x"))
        with pytest.raises(InvalidKey):
            await store.head("link/x")

    asyncio.run(go())
    assert list(outside.iterdir()) == []


def test_local_store_key_under_an_existing_file_is_an_invalid_key(tmp_path: Path) -> None:
    """"a" and "a/b" cannot both be files: the second is refused with a crosswind
    error, and the first stays as it was."""
    store = LocalStore(tmp_path / "root")

    async def go() -> None:
        await store.put("a", b"file", ObjectProps(), md5=md5_hex(b"file"))
        with pytest.raises(InvalidKey):
            await store.put("a/b", b"x", ObjectProps(), md5=md5_hex(b"x"))
        with pytest.raises(NotFound):
            await store.head("a/b")
        reader = await store.get("a")
        assert b"".join([c async for c in reader.chunks()]) == b"file"
        await store.put("d/e", b"x", ObjectProps(), md5=md5_hex(b"x"))
        with pytest.raises(InvalidKey):
            await store.put("d", b"y", ObjectProps(), md5=md5_hex(b"y"))
        assert [m.key async for m in store.list()] == ["a", "d/e"]
        await store.delete("a/b")  # absent: a no-op, as for any other missing key
        await store.delete("d")
        assert [m.key async for m in store.list()] == ["a", "d/e"]

    asyncio.run(go())


def test_local_store_sidecars_of_different_keys_never_collide(tmp_path: Path) -> None:
    """Key "a" and key "a.json/x" are distinct files; so must their metadata be."""
    store = LocalStore(tmp_path / "root")
    p1 = ObjectProps(content_type="text/a", metadata={"k": "1"})
    p2 = ObjectProps(content_type="text/b", metadata={"k": "2"})

    async def go() -> None:
        for first, second in (("a", "a.json/x"), ("b.json/x", "b")):
            await store.put(first, b"1", p1, md5=md5_hex(b"1"))
            await store.put(second, b"22", p2, md5=md5_hex(b"22"))
            assert (await store.head(first)).props == p1
            assert (await store.head(second)).props == p2
            assert (await store.head(second)).content_md5 == md5_hex(b"22")
            await store.delete(first)
            assert (await store.head(second)).props == p2
        assert [m.key async for m in store.list()] == ["a.json/x", "b"]

    asyncio.run(go())
