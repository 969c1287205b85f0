"""Object validation: stream both sorted listings through the march, compare
pair by pair, and look closer (HEAD, or read the bytes with ``deep``) where the
listings do not say enough.

Memory stays bounded whatever the estate: listings are streamed, findings go
to a sink (the state store) as they are made and only a capped number of
examples is kept. The closer look is done for every object (``sample=None``,
``--full``) through a bounded queue of workers, or for a uniform random
sample of the objects that need it (reservoir; at most ``sample`` held).
Objects whose listings already answer every question (both sides' listings
carry hashes and props) never need a closer look.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from crosswind.errors import NotFound, PreconditionFailed, TransientError
from crosswind.mapping import Policy
from crosswind.model import ObjectMeta
from crosswind.stores.base import ObjectStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.march import march
from crosswind.validate.findings import Check, Finding
from crosswind.validate.objects_compare import (
    PairResult,
    claimed_md5,
    compare_pair,
    extra,
    missing,
)
from crosswind.validate.sample import Reservoir
from crosswind.validate.tally import CheckTally

MiB = 1024 * 1024
Sink = Callable[[Sequence[Finding]], None]


@dataclass(frozen=True)
class ObjectCheckOptions:
    filter: KeyFilter = field(default_factory=KeyFilter)
    #: objects to look at closely; None looks at every object (``--full``)
    sample: int | None = 1000
    #: read and hash the bytes of both sides for the objects looked at closely
    deep: bool = False
    policy: Policy = "rename"
    concurrency: int = 32
    seed: int = 0
    max_examples: int = 20
    #: cap on bytes held by deep reads at once (each read holds up to 8 MiB)
    memory_budget: int = 512 * MiB


@dataclass(frozen=True, slots=True)
class Pair:
    """An object at both sides whose listings did not say enough: it waits for a
    closer look (``ObjectValidator._closer_look``)."""

    src: ObjectMeta
    dst: ObjectMeta
    quick: PairResult


async def _counted(items: AsyncIterable[ObjectMeta], keep: KeyFilter, tally: CheckTally,
                   side: str) -> AsyncIterator[ObjectMeta]:
    select_all = keep.selects_all
    n = 0
    try:
        async for m in items:
            n += 1
            if select_all or keep(m.key):
                yield m
    finally:
        tally.listed[side] += n


async def _read_md5(store: ObjectStore, m: ObjectMeta) -> str:
    reader = await store.get(m.key, if_match=m.etag)
    h = hashlib.md5(usedforsecurity=False)
    async for chunk in reader.chunks():
        h.update(chunk)
    return h.hexdigest()


class ObjectValidator:
    def __init__(self, src: ObjectStore, dst: ObjectStore, opts: ObjectCheckOptions,
                 sink: Sink, tally: CheckTally | None = None) -> None:
        self.src = src
        self.dst = dst
        self.opts = opts
        self.sink = sink
        self.tally = tally or CheckTally(Check.OBJECTS, max_examples=opts.max_examples)
        self.flavor = dst.capabilities.metadata_flavor
        self._deep_slots = asyncio.Semaphore(
            max(1, min(opts.concurrency, opts.memory_budget // (2 * 8 * MiB))))
        #: what stopped a worker of the full closer look; the run ends with it
        self._error: Exception | None = None

    # -- recording -------------------------------------------------------------
    def _record(self, at_source: bool, at_destination: bool,
                findings: Sequence[Finding]) -> None:
        self.tally.record(at_source=at_source, at_destination=at_destination, findings=findings)
        if findings:
            self.sink(findings)

    def _record_pair(self, r: PairResult) -> None:
        cov = self.tally.coverage
        cov["size_compared"] += 1
        if r.sizes_equal:  # nothing else is compared when the sizes differ
            cov["hash_compared" if r.hash != "unknown" else "hash_unknown"] += 1
            cov["metadata_compared" if r.metadata != "unknown" else "metadata_unknown"] += 1
        if r.deep:
            cov["deep_read"] += 1
        self._record(True, True, r.findings)

    # -- the run ---------------------------------------------------------------
    def _needs_closer_look(self, r: PairResult) -> bool:
        if not r.sizes_equal:
            return False
        return self.opts.deep or r.hash == "unknown" or r.metadata == "unknown"

    async def run(self) -> CheckTally:
        keep = self.opts.filter
        # Without a filter every listed entry reaches the march and is counted
        # there; a filter needs a wrapper that counts what it drops too.
        counted_here = keep.selects_all
        src: AsyncIterable[ObjectMeta] = self.src.list(keep.prefix)
        dst: AsyncIterable[ObjectMeta] = self.dst.list(keep.prefix)
        if not counted_here:
            src = _counted(src, keep, self.tally, "source")
            dst = _counted(dst, keep, self.tally, "destination")
        n_src = n_dst = 0
        full = self.opts.sample is None
        reservoir: Reservoir[Pair] = Reservoir(self.opts.sample or 0, self.opts.seed)
        queue: asyncio.Queue[Pair | None] = asyncio.Queue(self.opts.concurrency * 4)
        workers = ([asyncio.create_task(self._worker(queue))
                    for _ in range(self.opts.concurrency)] if full else [])
        flavor, policy = self.flavor, self.opts.policy
        try:
            async for m in march(src, dst):
                if self._error is not None:
                    break
                s, d = m.src, m.dst
                if counted_here:
                    n_src += s is not None
                    n_dst += d is not None
                if d is None:
                    assert s is not None
                    self._record(True, False, (missing(s),))
                    continue
                if s is None:
                    self._record(False, True, (extra(d),))
                    continue
                quick = compare_pair(s, d, flavor, policy)
                if not self._needs_closer_look(quick):
                    self._record_pair(quick)
                    continue
                self.tally.coverage["closer_look_candidates"] += 1
                if full:
                    await queue.put(Pair(s, d, quick))
                else:
                    _, dropped = reservoir.offer(Pair(s, d, quick))
                    if dropped is not None:
                        self._record_pair(dropped.quick)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        except BaseException:
            # Cancelled (Ctrl-C) or the listing failed: the queued closer looks
            # must not run (sentinels behind them would let every one of them
            # run first, deep reads included). Stop the workers now.
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            if counted_here:
                self.tally.listed["source"] += n_src
                self.tally.listed["destination"] += n_dst
        if self._error is not None:
            raise self._error
        sampled = reservoir.items()
        slots = asyncio.Semaphore(self.opts.concurrency)

        async def one(p: Pair) -> None:
            async with slots:
                self._record_pair(await self._closer_look(p))

        await asyncio.gather(*(one(p) for p in sampled))
        return self.tally

    async def _worker(self, queue: asyncio.Queue[Pair | None]) -> None:
        # A worker must outlive an error: the march would wait forever on a
        # full queue. It keeps draining; the run raises the error at the end.
        while (p := await queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._record_pair(await self._closer_look(p))
            except Exception as exc:
                self._error = exc

    async def _closer_look(self, p: Pair) -> PairResult:
        """HEAD where the listing lacked props or a hash; read bytes when deep.
        An object that changed or vanished meanwhile keeps its listing verdict."""
        cov = self.tally.coverage
        s, d = p.src, p.dst
        try:
            if s.props is None or (claimed_md5(s) is None and not self.opts.deep):
                s = await self._fresh(self.src, s)
            if d.props is None or (claimed_md5(d) is None and not self.opts.deep):
                d = await self._fresh(self.dst, d)
            read = None
            if self.opts.deep:
                async with self._deep_slots:
                    read = (await _read_md5(self.src, s), await _read_md5(self.dst, d))
        except (NotFound, PreconditionFailed):
            cov["changed_during_validation"] += 1
            return p.quick
        except TransientError:
            cov["closer_look_errors"] += 1
            return p.quick
        cov["closer_look"] += 1
        return compare_pair(s, d, self.flavor, self.opts.policy, read)

    @staticmethod
    async def _fresh(store: ObjectStore, listed: ObjectMeta) -> ObjectMeta:
        head = await store.head(listed.key)
        if listed.etag and head.etag and head.etag != listed.etag:
            raise PreconditionFailed(f"{store.name}/{listed.key}: changed since listed")
        return head


async def check_objects(src: ObjectStore, dst: ObjectStore, opts: ObjectCheckOptions,
                        sink: Sink, tally: CheckTally | None = None) -> CheckTally:
    return await ObjectValidator(src, dst, opts, sink, tally).run()
