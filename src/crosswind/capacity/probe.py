"""The measurements behind a capacity plan, against the real endpoints.

For each request class: the latency of one request alone (median of a few,
after one to open the connection), then a short burst with many in flight
for the rate the endpoint sustains. Little's law turns the burst into the
latency under load (``in flight / rate``); when that is clearly worse than
the latency alone (``SATURATED``×), the endpoint was the limit and the
burst's rate is its ceiling, otherwise the rate is only a lower bound and the
model does not cap that resource. The client's CPU per request is this
process's CPU time over the burst.

Reads at the source use objects the inventory listed (small ones whole, the
largest with a ranged GET for bytes/s); the source is never written.
Writes go to the destination only, to probe objects under
``.crosswind-probe/`` (which no sync, replication or validation selects),
each burst worker overwriting its own key, all removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from crosswind.capacity.model import Endpoint, RequestClass
from crosswind.errors import NotFound
from crosswind.model import ObjectProps
from crosswind.stores.base import ObjectStore
from crosswind.sync.filters import PROBE_PREFIX

KiB = 1024
MiB = 1024 * KiB
#: a burst whose latency under load is this much worse than alone was saturated
SATURATED = 1.5


@dataclass(frozen=True)
class ProbeOptions:
    #: seconds of bursts in all, shared among the request classes probed
    seconds: float = 6.0
    #: requests in flight in a burst of small requests
    burst_concurrency: int = 64
    #: requests in flight in a burst of large ones (bytes/s saturate with fewer)
    large_concurrency: int = 16
    #: single requests timed per class (the median is kept)
    samples: int = 5
    small_size: int = 4 * KiB
    large_size: int = 1 * MiB


@dataclass
class Evidence:
    """What was measured, for the report (seconds, requests, rates)."""

    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    probe_objects_written: int = 0
    probe_objects_removed: int = 0


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


async def _alone(fn: Callable[[int], Awaitable[Any]], samples: int) -> float:
    await fn(0)  # opens the connection: not a request of the steady state
    out = []
    for i in range(samples):
        t0 = time.perf_counter()
        await fn(i + 1)
        out.append(time.perf_counter() - t0)
    return _median(out)


async def _burst(fn: Callable[[int], Awaitable[Any]], concurrency: int,
                 seconds: float) -> tuple[int, float, float]:
    """(requests done, wall seconds, CPU seconds) with ``concurrency`` in flight."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await fn(w)
            done += 1

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done, time.perf_counter() - t0, time.process_time() - c0


async def measure(name: str, fn: Callable[[int], Awaitable[Any]], concurrency: int,
                  seconds: float, samples: int, ev: Evidence, size: int = 0) -> RequestClass:
    alone = await _alone(fn, samples)
    done, wall, cpu = await _burst(fn, concurrency, seconds)
    rate = done / wall if wall > 0 else 0.0
    loaded = concurrency / rate if rate > 0 else float("inf")
    saturated = loaded > SATURATED * alone
    ev.figures[name] = {
        "latency_alone_ms": round(alone * 1000, 2), "burst_in_flight": concurrency,
        "burst_requests": done, "burst_s": round(wall, 3),
        "burst_requests_per_s": round(rate, 1),
        "burst_bytes_per_s": round(rate * size, 1),
        "latency_under_load_ms": round(loaded * 1000, 2),
        "saturated": saturated,
        "client_cpu_ms_per_request": round(cpu / max(done, 1) * 1000, 3),
    }
    return RequestClass(alone, rate if saturated else None, rate, concurrency,
                        cpu / max(done, 1))


async def list_page_latency(store: ObjectStore, prefix: str, samples: int) -> float:
    async def one(_: int) -> None:
        async for _m in store.list(prefix):
            break

    return await _alone(one, samples)


Kind = Literal["azure", "aws"]


def _stream_rate(small: RequestClass, large: RequestClass, small_size: int,
                 large_size: int) -> float:
    """Bytes/s of one connection: the extra time a larger request takes alone."""
    extra = large.latency_s - small.latency_s
    return (large_size - small_size) / extra if extra > 1e-6 else float("inf")


async def probe_source(store: ObjectStore, kind: Kind, small_keys: list[str],
                       large: tuple[str, int] | None, list_per_key_s: float,
                       opts: ProbeOptions, ev: Evidence, share: float) -> Endpoint:
    """Read-only: listing, HEAD and GET of listed objects."""
    page = await list_page_latency(store, f"{PROBE_PREFIX}{uuid.uuid4().hex}/", opts.samples)
    ev.figures[f"{store.name} list page (empty)"] = {"latency_alone_ms": round(page * 1000, 2)}
    if not small_keys and large is not None and large[1] > 0:
        # only large objects: the small reads are ranged reads of the largest
        small_keys = []
        ranged: tuple[int, int] | None = (0, min(large[1], opts.small_size))
    else:
        ranged = None
    if not small_keys and ranged is None:
        missing = f"{PROBE_PREFIX}{uuid.uuid4().hex}"

        async def head_missing(_: int) -> None:
            with contextlib.suppress(NotFound):
                await store.head(missing)

        head = await measure(f"{store.name} HEAD", head_missing, opts.burst_concurrency,
                             share, opts.samples, ev)
        return Endpoint(store.name, kind, RequestClass(page), list_per_key_s, head, head)

    keys = (small_keys or [large[0]]) if large is not None else small_keys

    async def head_one(i: int) -> None:
        await store.head(keys[i % len(keys)])

    async def get_one(i: int) -> None:
        reader = await store.get(keys[i % len(keys)], byte_range=ranged)
        await reader.read_all()

    head = await measure(f"{store.name} HEAD", head_one, opts.burst_concurrency, share,
                         opts.samples, ev)
    get = await measure(f"{store.name} GET (small)", get_one, opts.burst_concurrency, share,
                        opts.samples, ev, opts.small_size)
    read_bps: float | None = None
    stream = float("inf")
    if large is not None and large[1] >= 4 * opts.small_size:
        size = min(large[1], opts.large_size)

        async def get_large(_: int) -> None:
            reader = await store.get(large[0], byte_range=(0, size))
            await reader.read_all()

        big = await measure(f"{store.name} GET ({size} B range)", get_large,
                            opts.large_concurrency, share, opts.samples, ev, size)
        stream = _stream_rate(get, big, opts.small_size, size)
        read_bps = big.ceiling * size if big.ceiling else None
    return Endpoint(store.name, kind, RequestClass(page), list_per_key_s, head, get,
                    read_bytes_per_s=read_bps, stream_read_bytes_per_s=stream)


async def probe_destination(store: ObjectStore, kind: Kind, list_per_key_s: float,
                            opts: ProbeOptions, ev: Evidence, share: float) -> Endpoint:
    """Listing, PUT, HEAD and GET of probe objects, then their removal."""
    run = f"{PROBE_PREFIX}capacity-{uuid.uuid4().hex}/"
    page = await list_page_latency(store, run, opts.samples)
    ev.figures[f"{store.name} list page (empty)"] = {"latency_alone_ms": round(page * 1000, 2)}
    written: set[str] = set()
    small = bytes(opts.small_size)
    big = bytes(opts.large_size)
    md5_small = hashlib.md5(small, usedforsecurity=False).hexdigest()
    md5_big = hashlib.md5(big, usedforsecurity=False).hexdigest()
    props = ObjectProps(content_type="application/octet-stream")

    async def put_small(w: int) -> None:
        key = f"{run}s{w}"
        written.add(key)
        await store.put(key, small, props, md5=md5_small)

    async def put_large(w: int) -> None:
        key = f"{run}l{w}"
        written.add(key)
        await store.put(key, big, props, md5=md5_big)

    async def head_one(w: int) -> None:
        await store.head(f"{run}s{w % opts.burst_concurrency}")

    async def get_one(w: int) -> None:
        reader = await store.get(f"{run}s{w % opts.burst_concurrency}")
        await reader.read_all()

    try:
        put = await measure(f"{store.name} PUT (small)", put_small, opts.burst_concurrency,
                            share, opts.samples, ev, opts.small_size)
        # every key the HEAD and GET bursts read exists now
        await asyncio.gather(*(put_small(w) for w in range(opts.burst_concurrency)))
        head = await measure(f"{store.name} HEAD", head_one, opts.burst_concurrency, share,
                             opts.samples, ev)
        get = await measure(f"{store.name} GET (small)", get_one, opts.burst_concurrency,
                            share, opts.samples, ev, opts.small_size)
        put_big = await measure(f"{store.name} PUT ({opts.large_size} B)", put_large,
                                opts.large_concurrency, share, opts.samples, ev,
                                opts.large_size)
    finally:
        await _remove(store, written, ev)
    return Endpoint(
        store.name, kind, RequestClass(page), list_per_key_s, head, get, put=put,
        write_bytes_per_s=put_big.ceiling * opts.large_size if put_big.ceiling else None,
        stream_write_bytes_per_s=_stream_rate(put, put_big, opts.small_size,
                                              opts.large_size))


async def _remove(store: ObjectStore, keys: set[str], ev: Evidence,
                  concurrency: int = 16) -> None:
    """Delete the probe objects, several at once (one by one is a round trip each)."""
    ev.probe_objects_written += len(keys)
    slots = asyncio.Semaphore(concurrency)

    async def one(key: str) -> None:
        async with slots:
            await store.delete(key)
            ev.probe_objects_removed += 1

    await asyncio.gather(*(one(k) for k in sorted(keys)))


async def probe_copy(source: ObjectStore, destination: ObjectStore, small_keys: list[str],
                     opts: ProbeOptions, ev: Evidence, share: float) -> RequestClass | None:
    """The copy itself, end to end: a listed source object read whole and
    written to a probe key at the destination, many at once. Where both
    endpoints share something (the client's CPU and network; on the rig, the
    host's two cores) its ceiling is lower than either endpoint's alone, and
    only this burst sees it. None without small source objects."""
    if not small_keys:
        return None
    run = f"{PROBE_PREFIX}capacity-{uuid.uuid4().hex}/"
    written: set[str] = set()
    props = ObjectProps(content_type="application/octet-stream")

    async def copy_one(w: int) -> None:
        reader = await source.get(small_keys[w % len(small_keys)])
        data = await reader.read_all()
        key = f"{run}c{w}"
        written.add(key)
        await destination.put(key, data, props,
                              md5=hashlib.md5(data, usedforsecurity=False).hexdigest())

    try:
        return await measure(f"copy {source.name} → {destination.name} (GET → PUT)",
                             copy_one, opts.burst_concurrency, share, opts.samples, ev)
    finally:
        await _remove(destination, written, ev)


async def record_seconds(cfg: Any, samples: int, ev: Evidence) -> float:
    """The metadata handler's time per record: its Azure row read plus two
    DocumentDB round trips (the document's upsert and the ledger's), each
    measured as the latency of one request alone (a point read of a probe row
    that does not exist, a find in the probe partition)."""
    from crosswind.stores.azure_common import resolve_auth
    from crosswind.stores.azure_tables import open_table_store
    from crosswind.stores.documentdb import DocumentDBStore

    part = PROBE_PREFIX.rstrip("/")
    table = open_table_store(resolve_auth(cfg.azure), cfg.azure.table, writable=False)
    try:
        async def row(_: int) -> None:
            with contextlib.suppress(NotFound):
                await table.get(part, uuid.uuid4().hex)

        t_row = await _alone(row, samples)
    finally:
        await table.close()
    docs = DocumentDBStore.open(cfg.aws)
    try:
        async def find(_: int) -> None:
            async for _d in docs.list(partition=part):
                break

        t_doc = await _alone(find, samples)
    finally:
        await docs.close()
    ev.figures["azure table point read"] = {"latency_alone_ms": round(t_row * 1000, 2)}
    ev.figures["documentdb find"] = {"latency_alone_ms": round(t_doc * 1000, 2)}
    return t_row + 2 * t_doc
