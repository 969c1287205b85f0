"""Object validation over in-memory stores: Property 29 without servers
(thousands of cases; the rig version is in tests/integration/validate), the
closer look, sampling bounds, listing order, filters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.errors import AuthError, ListingOrderError
from crosswind.model import ObjectMeta, ObjectProps
from crosswind.stores.base import ObjectStore
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import destination_props
from crosswind.validate.findings import Finding, Kind
from crosswind.validate.objects import ObjectCheckOptions, check_objects
from crosswind.validate.repair import _View


class S3LikeListing(_View):
    """A store whose listing carries no props (as S3 lists), and with
    ``hide_hash`` no service hash anywhere, as for S3 multipart objects: only
    the crosswind-md5 entry that HEAD returns claims one."""

    def __init__(self, inner: ObjectStore, hide_hash: bool) -> None:
        super().__init__(inner)
        self.hide_hash = hide_hash

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        async for m in self.inner.list(prefix):
            yield replace(m, props=None, content_md5=None if self.hide_hash else m.content_md5)

    async def head(self, key: str) -> ObjectMeta:
        m = await self.inner.head(key)
        return replace(m, content_md5=None) if self.hide_hash else m


async def put(store: MemoryStore, key: str, data: bytes, props: ObjectProps) -> None:
    await store.put(key, data, props, md5=md5_hex(data))


async def mirror(src: MemoryStore, dst: MemoryStore) -> None:
    """The destination as a crosswind copy leaves it."""
    async for m in src.list():
        assert m.props is not None and m.content_md5 is not None
        props, _, _ = destination_props(m.props, m, dst, "rename", m.content_md5)
        await dst.put(m.key, src.objects[m.key].data, props, md5=m.content_md5)


def run_check(src: ObjectStore, dst: ObjectStore, **kw: Any) -> tuple[Any, list[Finding]]:
    found: list[Finding] = []
    tally = asyncio.run(check_objects(src, dst, ObjectCheckOptions(**kw), found.extend))
    return tally, found


keys = st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]),
                        min_size=1, max_size=8), min_size=1, max_size=25, unique=True)


@settings(max_examples=300)
@given(keys=keys, data=st.data(), s3_like=st.booleans(), hide_hash=st.booleans(),
       deep=st.booleans())
def test_property_29_objects_in_memory(keys: list[str], data: st.DataObject, s3_like: bool,
                                       hide_hash: bool, deep: bool) -> None:
    """Equal sides + a random set of injected discrepancies: validation reports
    exactly the injected set."""
    src, dst = MemoryStore("src", "azure"), MemoryStore("dst", "s3")

    async def build() -> set[tuple[Kind, str]]:
        for i, k in enumerate(keys):
            await put(src, k, f"body-{i}".encode(),
                      ObjectProps(content_type="application/json", metadata={"Seq": str(i)}))
        await mirror(src, dst)
        kinds = data.draw(st.lists(st.sampled_from(
            [None, Kind.MISSING, Kind.EXTRA, Kind.SIZE, Kind.HASH, Kind.METADATA]),
            min_size=len(keys), max_size=len(keys)), label="injected")
        expected: set[tuple[Kind, str]] = set()
        for k, kind in zip(keys, kinds, strict=True):
            s = dst.objects.get(k)
            assert s is not None
            if kind is Kind.MISSING:
                await dst.delete(k)
            elif kind is Kind.EXTRA:
                await src.delete(k)  # at the destination only now
            elif kind is Kind.SIZE:
                await put(dst, k, s.data + b"+", s.props)
            elif kind is Kind.HASH:
                await put(dst, k, s.data[:-1] + bytes([s.data[-1] ^ 1]), s.props)
            elif kind is Kind.METADATA:
                md = {**s.props.metadata, "seq": "changed"}
                await put(dst, k, s.data, replace(s.props, metadata=md))
            if kind is not None:
                expected.add((kind, k))
        return expected

    expected = asyncio.run(build())
    d: ObjectStore = S3LikeListing(dst, hide_hash) if s3_like else dst
    tally, found = run_check(src, d, sample=None, deep=deep)
    # Bytes changed under an unchanged crosswind-md5 entry, with no service
    # hash to tell: only reading the bytes can see it.
    if s3_like and hide_hash and not deep:
        expected = {(k, key) for k, key in expected if k is not Kind.HASH}
    assert {(f.kind, f.key) for f in found} == expected
    assert tally.failed == len(expected)
    n_src = sum(1 for k in expected if k[0] is not Kind.EXTRA) + len(keys) - len(expected)
    assert tally.source_items == n_src
    assert tally.present == n_src - sum(1 for k, _ in expected if k is Kind.MISSING)


def test_closer_look_only_for_a_bounded_sample() -> None:
    src, dst = MemoryStore("src", "azure"), MemoryStore("dst", "s3")

    async def build() -> None:
        for i in range(200):
            await put(src, f"k{i:03d}", b"x", ObjectProps(metadata={"a": "1"}))
        await mirror(src, dst)

    asyncio.run(build())
    tally, found = run_check(src, S3LikeListing(dst, hide_hash=False), sample=17, seed=3)
    cov = tally.coverage
    assert cov["closer_look"] == 17 and cov["closer_look_candidates"] == 200
    assert cov["metadata_compared"] == 17 and cov["metadata_unknown"] == 183
    assert cov["hash_compared"] == 200  # listings had the hashes
    assert found == [] and tally.items == 200
    # Every object, when asked.
    tally, _ = run_check(src, S3LikeListing(dst, hide_hash=False), sample=None)
    assert tally.coverage["metadata_compared"] == 200


def test_a_metadata_fault_outside_the_sample_is_not_reported_but_counted_unknown() -> None:
    src, dst = MemoryStore("src", "azure"), MemoryStore("dst", "s3")

    async def build() -> None:
        for i in range(50):
            await put(src, f"k{i:02d}", b"x", ObjectProps(metadata={"a": "1"}))
        await mirror(src, dst)
        s = dst.objects["k07"]
        await put(dst, "k07", s.data, replace(s.props, metadata={"a": "2"}))

    asyncio.run(build())
    tally, found = run_check(src, S3LikeListing(dst, hide_hash=False), sample=0)
    assert found == [] and tally.coverage["metadata_unknown"] == 50
    tally, found = run_check(src, S3LikeListing(dst, hide_hash=False), sample=50)
    assert [(f.kind, f.key) for f in found] == [(Kind.METADATA, "k07")]


class Unordered(_View):
    def __init__(self, inner: ObjectStore, keys: list[str]) -> None:
        super().__init__(inner)
        self.keys = keys

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        for k in self.keys:
            yield ObjectMeta(k, 1)


def test_out_of_order_listing_is_refused() -> None:
    src = MemoryStore("src")
    with pytest.raises(ListingOrderError, match="out of order"):
        run_check(Unordered(src, ["b", "a"]), MemoryStore("dst"))


def test_filters_apply_to_both_sides() -> None:
    src, dst = MemoryStore("src"), MemoryStore("dst")

    async def build() -> None:
        await put(src, "events/a.json", b"a", ObjectProps())
        await put(src, "tmp/x", b"x", ObjectProps())
        await put(dst, "other/y", b"y", ObjectProps())

    asyncio.run(build())
    tally, found = run_check(src, dst, filter=KeyFilter(include=("events/*",)))
    assert [(f.kind, f.key) for f in found] == [(Kind.MISSING, "events/a.json")]
    assert tally.listed == {"source": 2, "destination": 1}


class RefusesReads(MemoryStore):
    """Credentials revoked (a SAS expired) after the listing: every read is refused."""

    async def get(self, key: str, **kw: Any) -> Any:
        raise AuthError(f"{self.name}/{key}: credentials rejected")


def test_an_error_in_the_full_closer_look_ends_the_run_instead_of_hanging() -> None:
    async def go() -> None:
        src, dst = MemoryStore("src"), RefusesReads("dst")
        for i in range(50):  # more than the workers' queue holds
            await put(src, f"k{i:03d}", b"x", ObjectProps())
        await mirror(src, dst)
        opts = ObjectCheckOptions(sample=None, deep=True, concurrency=2)
        await asyncio.wait_for(check_objects(src, dst, opts, lambda f: None), 10)

    with pytest.raises(AuthError):
        asyncio.run(go())


class SlowReads(MemoryStore):
    """Every read takes a while; records when each began."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.reads: list[float] = []

    async def get(self, key: str, **kw: Any) -> Any:
        self.reads.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.2)
        return await super().get(key, **kw)


def test_cancelled_validation_starts_no_queued_closer_look() -> None:
    """Ctrl-C during a --full --deep validation: the queued deep reads must not
    run first (issue 15 #8's pattern: stop sentinels queued behind the work)."""
    async def go() -> tuple[list[float], float, float]:
        src, dst = SlowReads("src"), MemoryStore("dst")
        for i in range(40):
            await put(src, f"k{i:02d}", b"x", ObjectProps())
        await mirror(src, dst)
        task = asyncio.create_task(check_objects(
            src, dst, ObjectCheckOptions(sample=None, deep=True, concurrency=2),
            lambda findings: None))
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return src.reads, cancelled_at, loop.time()

    reads, cancelled_at, ended = asyncio.run(go())
    assert [t for t in reads if t >= cancelled_at] == []
    assert ended - cancelled_at < 0.1
