"""Both record stores on their real servers (Azurite, SecantusDB): one set of
contract checks, then what each backend does beyond it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crosswind.entities import Edm, EdmDateTime, Entity, Prop
from crosswind.errors import NotFound
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_tables import AzureTableStore
from crosswind.stores.base import BadRecord, RecordStore, RecordWrite
from crosswind.stores.documentdb import DocumentDBStore
from tests.integration.metadata.conftest import MetaEnv, arun
from tests.unit.test_entities import PROPS, names

pytestmark = pytest.mark.integration


def open_store(env: MetaEnv, which: str) -> RecordStore:
    if which == "azure":
        return AzureTableStore(resolve_auth(env.config.azure), env.config.azure.table or "")
    return DocumentDBStore.open(env.config.aws)


async def listed(store: RecordStore, **kw: Any) -> list[Entity | BadRecord]:
    return [r async for r in store.list(**kw)]


@pytest.fixture(params=["azure", "documentdb"])
def store_env(request: pytest.FixtureRequest, make_meta_env: Callable[..., MetaEnv]
              ) -> Iterator[tuple[str, MetaEnv]]:
    yield request.param, make_meta_env()


def row(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, MappingProxyType(props))


# Keys whose UTF-16 order differs from code-point order ("\uffee" vs an astral
# character), and keys that are prefixes of each other.
KEYS = [("a", "1"), ("a", "10"), ("a", "2"), ("a!", "1"), ("ab", "x"), ("\uffee", "1"),
        ("\U0001f600", "1"), ("\U0001f600", "\uffee"), ("\U0001f600", "\U0001f601"), ("", "")]


def test_contract(store_env: tuple[str, MetaEnv]) -> None:
    which, env = store_env

    async def go() -> None:
        store = open_store(env, which)
        try:
            await store.check()
            rows = [row(pk, rk, v=Prop(Edm.INT64, i)) for i, (pk, rk) in enumerate(KEYS)]
            batch = rows if which == "documentdb" else [r for r in rows if r.partition_key == "a"]
            results = await store.write_batch([RecordWrite("upsert", r) for r in batch])
            assert [r.status for r in results] == ["ok"] * len(batch)
            for r in rows:
                if r not in batch:
                    [res] = await store.write_batch([RecordWrite("upsert", r)])
                    assert res.status == "ok"
            got = await listed(store)
            assert [g.key for g in got if isinstance(g, Entity)] == sorted(k for k in KEYS)
            one = await store.get("a", "10")
            assert one.properties == {"v": Prop(Edm.INT64, 1)}
            with pytest.raises(NotFound):
                await store.get("a", "nope")
            part = await listed(store, partition="a")
            assert [p.key for p in part if isinstance(p, Entity)] == [("a", "1"), ("a", "10"),
                                                                       ("a", "2")]
            await store.delete("a", "10")
            await store.delete("a", "10")  # absent: not an error
            with pytest.raises(NotFound):
                await store.get("a", "10")
            results = await store.write_batch([RecordWrite("delete", row("a", "2")),
                                               RecordWrite("delete", row("a", "gone"))])
            assert {r.status for r in results} <= {"ok", "missing"}
            assert len(await listed(store)) == len(KEYS) - 2
        finally:
            await store.close()

    arun(go())


@st.composite
def typed_rows(draw: st.DrawFn) -> list[Entity]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        props = draw(st.dictionaries(names, st.sampled_from(list(Edm)).flatmap(
            lambda e: PROPS[e].map(lambda v, e=e: Prop(e, v))), max_size=10))
        # Azurite turns -0.0 into 0.0 (Azure keeps it); not a crosswind mapping.
        props = {n: p for n, p in props.items()
                 if not (p.edm is Edm.DOUBLE and str(p.value) == "-0.0")}
        out.append(row("p", f"r{i}", **props))
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=typed_rows())
def test_every_edm_type_survives_each_server(store_env: tuple[str, MetaEnv],
                                             rows: list[Entity]) -> None:
    which, env = store_env

    async def go() -> None:
        store = open_store(env, which)
        try:
            results = await store.write_batch([RecordWrite("upsert", r) for r in rows])
            assert all(r.status == "ok" for r in results), results
            for r in rows:
                back = await store.get(r.partition_key, r.row_key)
                assert back.same_content(r), (back, r)
            listed_rows = await listed(store, partition="p")
            assert all(isinstance(i, Entity) for i in listed_rows)
            if isinstance(store, AzureTableStore):
                # the fast JSON listing reads exactly what the SDK's pager reads
                store.fast_listing = False
                assert await listed(store, partition="p") == listed_rows
                store.fast_listing = True
        finally:
            await store.close()

    arun(go())


def test_azure_transaction_isolates_the_failing_write(make_meta_env: Callable[..., MetaEnv]
                                                      ) -> None:
    env = make_meta_env()
    env.put_rows(row("p", "exists", v=Prop(Edm.STRING, "old")))

    async def go() -> None:
        store = open_store(env, "azure")
        assert isinstance(store, AzureTableStore)
        try:
            first = await store.get("p", "exists")
            writes = [
                RecordWrite("upsert", row("p", "a", v=Prop(Edm.INT32, 1))),
                RecordWrite("create", row("p", "exists", v=Prop(Edm.STRING, "new"))),
                RecordWrite("upsert", row("p", "big", s=Prop(Edm.STRING, "x" * 40_000))),
                RecordWrite("upsert", row("p", "b", v=Prop(Edm.INT32, 2))),
                RecordWrite("delete", row("p", "never-there")),
            ]
            results = await store.write_batch(writes)
            assert [r.status for r in results] == ["ok", "conflict", "failed", "ok", "missing"]
            assert results[2].error is not None and getattr(
                results[2].error, "kind", None) == "oversize"
            assert results[0].etag and results[3].etag
            assert (await store.get("p", "exists")).properties["v"].value == "old"
            # etag preconditions: the etag read earlier holds until someone writes
            ok = await store.write_batch([RecordWrite(
                "upsert", row("p", "exists", v=Prop(Edm.STRING, "mine")), if_match=first.etag)])
            assert ok[0].status == "ok"
            again = await store.write_batch([RecordWrite(
                "upsert", row("p", "exists", v=Prop(Edm.STRING, "late")), if_match=first.etag)])
            assert again[0].status == "conflict"
            assert (await store.get("p", "exists")).properties["v"].value == "mine"
            gone = await store.write_batch([RecordWrite(
                "upsert", row("p", "vanished"), if_match=first.etag)])
            assert gone[0].status == "conflict"  # updating a row deleted on this side
        finally:
            await store.close()

    arun(go())


def test_azure_since_filter_uses_the_timestamp(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    env.put_rows(row("p", "old"))

    async def go() -> list[str]:
        store = open_store(env, "azure")
        try:
            old = await store.get("p", "old")
            assert old.timestamp is not None
            await asyncio.sleep(0.02)
            env.put_rows(row("p", "new"))
            # Azurite compares Timestamps at millisecond precision: a bound in the
            # same millisecond as a row still returns it (safe for a watermark).
            after = EdmDateTime(old.timestamp.ticks + 10_000)
            return [r.row_key or "" async for r in store.list(since=after)]
        finally:
            await store.close()

    assert arun(go()) == ["new"]


def test_documentdb_never_moves_a_row_back(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    t1 = EdmDateTime.from_iso("2026-01-01T00:00:00.0000001Z")
    t2 = EdmDateTime.from_iso("2026-01-01T00:00:00.0000002Z")
    newer = Entity("p", "r", {"v": Prop(Edm.STRING, "new")}, "e2", t2)
    older = Entity("p", "r", {"v": Prop(Edm.STRING, "old")}, "e1", t1)

    async def go() -> None:
        store = open_store(env, "documentdb")
        assert isinstance(store, DocumentDBStore)
        try:
            await store.ensure_index()
            await store.ensure_index()  # idempotent
            assert [r.status for r in await store.write_batch([RecordWrite("upsert", newer)])
                    ] == ["ok"]
            results = await store.write_batch([
                RecordWrite("upsert", older, newer_only=True),
                RecordWrite("upsert", Entity("p", "r2"), newer_only=True)])
            assert [r.status for r in results] == ["stale", "ok"]
            assert (await store.get("p", "r")).properties["v"].value == "new"
            # the same version again is fine (idempotent re-run)
            assert (await store.write_batch([RecordWrite("upsert", newer, newer_only=True)])
                    )[0].status == "ok"
            # without newer_only, an upsert replaces whatever is there
            assert (await store.write_batch([RecordWrite("upsert", older)]))[0].status == "ok"
            assert (await store.get("p", "r")).properties["v"].value == "old"
            # another _id holding the same keys (an application's own document)
            await store.coll.insert_one({"_id": uuid.uuid4(), "PartitionKey": "q",
                                         "RowKey": "r"})
            [dup] = await store.write_batch([RecordWrite("upsert", Entity("q", "r"))])
            assert dup.status == "failed" and "another document" in str(dup.error)
            # a document that cannot map is listed in place, as a BadRecord
            await store.coll.insert_one({"_id": "p/s", "PartitionKey": "p", "RowKey": "s",
                                         "tags": ["a", "b"]})
            got = await listed(store, partition="p")
            bad = [g for g in got if isinstance(g, BadRecord)]
            assert [b.record_id for b in bad] == ["p/s"]
            assert bad[0].error.kind == "unmappable" and "'tags'" in str(bad[0].error)
            assert await store.enable_change_streams() is False  # error 59: always on here
        finally:
            await store.close()

    arun(go())


def test_server_time_is_never_later_than_the_clock_that_stamps_rows(
    store_env: tuple[str, MetaEnv],
) -> None:
    """What a scan's watermark is bounded by: Azure's clock (its Date header, whole
    seconds rounded down) is at or before the Timestamp of a write made after it."""
    which, env = store_env

    async def go() -> tuple[EdmDateTime | None, EdmDateTime | None]:
        store = open_store(env, which)
        try:
            before = await store.server_time()
            env.put_rows(row("p", "after"))
            stamped = (await store.get("p", "after")).timestamp if which == "azure" else None
            return before, stamped
        finally:
            await store.close()

    before, stamped = arun(go())
    if which == "documentdb" and before is None:
        return  # the server does not say (hello has no localTime): nothing depends on it
    assert before is not None
    if stamped is not None:
        assert before <= stamped
        assert stamped.ticks - before.ticks < 5 * 10_000_000
