"""The replication service's apply logic on memory stores: random writes and
deletes on the primary, their events duplicated, reordered and lost, applied by
the real scheduler, workers and applier; after a reconcile the replica equals
the primary (and without lost events it already does before it)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.deleteguard import DeleteGuard
from crosswind.errors import AuthError, TransientError
from crosswind.live.breakers import Breakers, GuardedObjectStore
from crosswind.live.changes import Change
from crosswind.live.lag import LagTracker
from crosswind.live.objects import ObjectApplier
from crosswind.live.reconcile import STREAM as RECONCILE
from crosswind.live.reconcile import reconcile_objects
from crosswind.live.scheduler import KeyScheduler
from crosswind.live.streams import StreamState
from crosswind.live.workers import ApplyWorkers
from crosswind.mapping import split_reserved
from crosswind.metasync.ledger import Ledger
from crosswind.model import ObjectProps
from crosswind.observability.stats import SyncStats
from crosswind.state import StateStore
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.budget import ByteBudget
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import Transfer, TransferSettings

EVENTS = "events"
KEYS = ["a", "a/b", "b", "c/d/e", "é", "z"]


class Yielding:
    """A memory store whose every call gives other tasks a chance to run (a
    seeded number of times, before and after), so applies really overlap with
    writes to the primary and with each other, as they do on a network."""

    def __init__(self, inner: MemoryStore, rnd: random.Random) -> None:
        self.inner = inner
        self.rnd = rnd
        self.name = inner.name
        self.capabilities = inner.capabilities

    async def _pause(self) -> None:
        for _ in range(self.rnd.randrange(3)):
            await asyncio.sleep(0)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kw: Any) -> Any:
            await self._pause()
            try:
                return await attr(*args, **kw)
            finally:
                await self._pause()

        return call

    def list(self, prefix: str = "") -> Any:
        return self.inner.list(prefix)


@dataclass
class Rig:
    src: MemoryStore
    dst: MemoryStore
    state: StateStore
    scheduler: KeyScheduler
    workers: ApplyWorkers
    streams: dict[str, StreamState]
    ledger: Ledger
    guard: DeleteGuard

    @contextlib.asynccontextmanager
    async def running(self, n_workers: int = 3) -> AsyncIterator[Rig]:
        tasks = [asyncio.create_task(self.workers.worker()) for _ in range(n_workers)]
        try:
            yield self
        finally:
            self.scheduler.close()
            await asyncio.gather(*tasks)

    async def settle(self) -> None:
        for _ in range(5000):
            if self.scheduler.idle:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"{self.scheduler.pending} keys still pending")

    async def reconcile(self) -> int:
        res = await reconcile_objects(self.src, self.dst, self.state, "azure-to-aws",
                                      KeyFilter(), self.scheduler, drift_grace_s=0,
                                      is_pending=self.scheduler.is_pending)
        await self.settle()
        return res.drift


@contextlib.contextmanager
def live_rig(max_delete: int = 10_000, percent: float = 100.0, rnd: random.Random | None = None
             ) -> Iterator[Rig]:
    src, dst = MemoryStore("primary"), MemoryStore("replica")
    tmp = tempfile.mkdtemp(prefix="cw-live-")
    state = StateStore(Path(tmp))
    try:
        ledger = Ledger(state, "t")
        sched = KeyScheduler(backoff=lambda attempt: 0.001)
        r_src: Any = src if rnd is None else Yielding(src, rnd)
        r_dst: Any = dst if rnd is None else Yielding(dst, rnd)
        transfer = Transfer(r_src, r_dst, TransferSettings(), ByteBudget(64 << 20), SyncStats())
        guard = DeleteGuard(max_delete, percent)
        applier = ObjectApplier(r_src, r_dst, state, "azure-to-aws", transfer, guard,
                                lambda: max(1, len(dst.objects)), KeyFilter())
        streams = {n: StreamState(n, "objects", n, LagTracker()) for n in (EVENTS, RECONCILE)}
        workers = ApplyWorkers(sched, applier, ledger, "azure-to-aws", streams, attempts=3)
        yield Rig(src, dst, state, sched, workers, streams, ledger, guard)
    finally:
        state.close()
        shutil.rmtree(tmp, ignore_errors=True)


def user_view(store: MemoryStore) -> dict[str, tuple[bytes, dict[str, str], str | None]]:
    return {k: (o.data, split_reserved(o.props.metadata)[0], o.props.content_type)
            for k, o in store.objects.items()}


async def write(store: MemoryStore, key: str, body: bytes, tag: str) -> None:
    props = ObjectProps(content_type="application/json", metadata={"tag": tag})
    await store.put(key, body, props, md5=md5_hex(body))


ops_strategy = st.lists(
    st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=64)),
              st.text("xyz", max_size=3)),
    min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(ops=ops_strategy, seed=st.integers(0, 2**32 - 1), lose=st.sampled_from([0.0, 0.0, 0.2]),
       dup=st.floats(0, 0.5))
def test_replica_converges_whatever_happens_to_the_events(
        ops: list[tuple[str, bytes | None, str]], seed: int, lose: float, dup: float) -> None:
    rnd = random.Random(seed)
    with live_rig(rnd=rnd) as rig:
        asyncio.run(converge(rig, ops, rnd, lose, dup))


async def converge(rig: Rig, ops: list[tuple[str, bytes | None, str]], rnd: random.Random,
                   lose: float, dup: float) -> None:
    async with rig.running():
        delivered: list[Change] = []
        lost = False
        for key, body, tag in ops:
            if body is None:
                await rig.src.delete(key)
            else:
                await write(rig.src, key, body, tag)
            ev = Change("object", "delete" if body is None else "upsert", key, EVENTS,
                        datetime.now(UTC))
            if rnd.random() < lose:
                lost = True
            else:
                delivered.append(ev)
                if rnd.random() < dup:
                    delivered.append(ev)
            # Deliver some events now, in any order, while workers run and later
            # writes still come.
            rnd.shuffle(delivered)
            while delivered and rnd.random() < 0.6:
                rig.scheduler.submit(delivered.pop())
            for _ in range(rnd.randrange(4)):
                await asyncio.sleep(0)
        for ev in delivered:
            rig.scheduler.submit(ev)
        await rig.settle()
        if not lost:
            assert user_view(rig.dst) == user_view(rig.src)
        await rig.reconcile()
        assert user_view(rig.dst) == user_view(rig.src)
        # ... and a second reconcile finds nothing more.
        assert await rig.reconcile() == 0


async def run_in(rig: Rig, body: Callable[[Rig], Awaitable[None]]) -> None:
    async with rig.running():
        await body(rig)


def test_lost_events_are_drift_and_lag_is_recorded() -> None:
    async def go(rig: Rig) -> None:
        await write(rig.src, "seen", b"1", "x")
        await write(rig.src, "missed", b"2", "x")
        rig.scheduler.submit(Change("object", "upsert", "seen", EVENTS, datetime.now(UTC)))
        await rig.settle()
        assert set(rig.dst.objects) == {"seen"}
        assert await rig.reconcile() == 1
        assert set(rig.dst.objects) == {"seen", "missed"}
        assert rig.streams[EVENTS].applied == 1
        assert rig.streams[EVENTS].lag.count == 1
        assert rig.streams[RECONCILE].applied == 1

    with live_rig() as rig:
        asyncio.run(run_in(rig, go))


def test_deletes_beyond_the_guard_are_held_in_the_dlq() -> None:
    async def go(rig: Rig) -> None:
        for k in KEYS:
            await write(rig.src, k, b"v", "t")
            rig.scheduler.submit(Change("object", "upsert", k, EVENTS, None))
        await rig.settle()
        for k in KEYS:
            await rig.src.delete(k)
            rig.scheduler.submit(Change("object", "delete", k, EVENTS, None))
        await rig.settle()
        assert len(rig.dst.objects) == len(KEYS) - 2
        held = rig.ledger.dlq_list(kind="delete-held")
        assert len(held) == len(KEYS) - 2
        assert all("max_delete_count = 2" in h.reason for h in held)
        assert rig.streams[EVENTS].held == len(KEYS) - 2

    with live_rig(max_delete=2) as rig:
        asyncio.run(run_in(rig, go))


def test_a_stale_delete_event_never_removes_a_live_object() -> None:
    async def go(rig: Rig) -> None:
        await write(rig.src, "k", b"old", "1")
        rig.scheduler.submit(Change("object", "upsert", "k", EVENTS, None))
        await rig.settle()
        # deleted, then written again; the delete's event arrives last
        await rig.src.delete("k")
        await write(rig.src, "k", b"new", "2")
        rig.scheduler.submit(Change("object", "delete", "k", EVENTS, None))
        await rig.settle()
        assert rig.dst.objects["k"].data == b"new"

    with live_rig() as rig:
        asyncio.run(run_in(rig, go))


class FlakyStore(MemoryStore):
    """Fails the first ``n`` puts as an unwell endpoint would."""

    def __init__(self, n: int) -> None:
        super().__init__("flaky")
        self.left = n

    async def put(self, *args: Any, **kw: Any) -> Any:
        if self.left > 0:
            self.left -= 1
            raise TransientError("503 Slow Down")
        return await super().put(*args, **kw)


def test_endpoint_failures_wait_and_never_reach_the_dlq() -> None:
    async def go(rig: Rig) -> None:
        flaky = FlakyStore(7)  # more failures than attempts = 3
        rig.workers.applier.dst = flaky
        rig.workers.applier.transfer.dst = flaky
        await write(rig.src, "k", b"data", "t")
        rig.scheduler.submit(Change("object", "upsert", "k", EVENTS, None))
        await rig.settle()
        assert flaky.objects["k"].data == b"data"
        assert rig.ledger.dlq_open_count() == 0

    with live_rig() as rig:
        asyncio.run(run_in(rig, go))


class RefusingStore(MemoryStore):
    """Serves every key but one, which it refuses as a bucket policy would."""

    def __init__(self, refused: str) -> None:
        super().__init__("refusing")
        self.refused = refused

    async def put(self, key: str, *args: Any, **kw: Any) -> Any:
        if key == self.refused:
            raise AuthError(f"{self.name}/{key}: AccessDenied")
        return await super().put(key, *args, **kw)


def test_a_key_the_endpoint_keeps_refusing_goes_to_the_dlq_not_the_breaker() -> None:
    async def go(rig: Rig) -> None:
        breakers = Breakers(threshold=50, ttl_s=0.05)
        refusing = RefusingStore("secret/x")
        guarded = GuardedObjectStore(refusing, "s3", breakers)
        rig.workers.applier.dst = guarded
        rig.workers.applier.transfer.dst = guarded
        rig.workers.breakers = breakers
        rig.workers.probe = lambda endpoint: guarded.check(write=True)
        for k in ("secret/x", "a", "b", "c"):
            await write(rig.src, k, b"v", "t")
            rig.scheduler.submit(Change("object", "upsert", k, EVENTS, None))
        await rig.settle()
        assert set(refusing.objects) == {"a", "b", "c"}
        [dead] = rig.ledger.dlq_list(kind="refused")
        assert dead.item == "secret/x" and "AccessDenied" in dead.reason
        assert breakers.states()["s3"] == "closed"

    with live_rig() as rig:
        asyncio.run(run_in(rig, go))
