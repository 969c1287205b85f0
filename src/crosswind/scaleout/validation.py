"""``validate objects --full --workers …``: the closer looks on a Dask cluster.

The coordinator lists both sides and marches them as a single-process
validation does, and decides every pair whose listings answer every question
itself (missing, extra, a size or hash that differs): that needs no request.
The pairs that need a closer look (a HEAD, or reading the bytes with
``--deep``) go to the cluster in batches of ``[scaleout] shard_objects``; each
worker looks at its batch with ``[validation] concurrency`` requests at a time
and sends back the verdicts, which the coordinator records (findings into the
state store, counts into the tally) exactly as its own workers would have.
Secrets travel as references, as for the sync (``task.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from distributed import Client, Future

from crosswind.config import Config
from crosswind.errors import CrosswindError
from crosswind.model import Direction
from crosswind.scaleout.cluster import dask_client, worker_count
from crosswind.scaleout.coordinator import ShardLost, ShardStopped
from crosswind.scaleout.spec import WorkersSpec
from crosswind.secrets import configure, redact
from crosswind.stores.base import ObjectStore
from crosswind.sync.objects import opened_stores
from crosswind.validate.findings import Check, Finding
from crosswind.validate.objects import ObjectCheckOptions, ObjectValidator, Pair, Sink
from crosswind.validate.objects_compare import PairResult
from crosswind.validate.tally import CheckTally

#: the coverage counts a closer look itself keeps
_LOOK_COUNTS = ("closer_look", "changed_during_validation", "closer_look_errors")


@dataclass(frozen=True)
class LookTask:
    config: Config
    direction: str
    options: ObjectCheckOptions
    index: int
    pairs: tuple[Pair, ...]


@dataclass
class LookOutcome:
    index: int
    results: list[PairResult]
    coverage: dict[str, int]
    #: what stopped the batch (e.g. credentials refused), if anything
    stopped: tuple[str, int] | None = None


def _ignore(_: Sequence[Finding]) -> None:
    pass


async def look_outcome(task: LookTask) -> LookOutcome:
    """Run ``task`` here (the body of ``run_looks``)."""
    configure(task.config)
    d = Direction(task.direction)
    # Opened as validation opens them (read only, as for a sync into AWS), then by side.
    async with opened_stores(task.config, Direction.AZURE_TO_AWS) as (azure, aws):
        sides = {"azure": azure, "aws": aws}
        v = ObjectValidator(sides[d.source_side], sides[d.destination_side], task.options,
                            _ignore, CheckTally(Check.OBJECTS))
        slots = asyncio.Semaphore(task.options.concurrency)

        async def one(p: Pair) -> PairResult:
            async with slots:
                return await v._closer_look(p)

        try:
            results = list(await asyncio.gather(*(one(p) for p in task.pairs)))
        except CrosswindError as exc:
            return LookOutcome(task.index, [], {}, (redact(str(exc)), exc.exit_code))
        # Only the counts that happened: the report lists a coverage count once it is
        # non-zero, as one process's tally does
        return LookOutcome(task.index, results,
                           {k: v.tally.coverage[k] for k in _LOOK_COUNTS if v.tally.coverage[k]})


def run_looks(task: LookTask) -> LookOutcome:
    """What the coordinator submits: the process edge where the async code starts."""
    return asyncio.run(look_outcome(task))


class DistributedValidator(ObjectValidator):
    """``ObjectValidator`` whose closer-look workers hand batches to Dask. It
    runs as many of them as the cluster has shard slots; each takes pairs from
    the march's queue until its batch is full (or the march ends), submits it
    and records the verdicts."""

    def __init__(self, src: ObjectStore, dst: ObjectStore, opts: ObjectCheckOptions,
                 sink: Sink, tally: CheckTally | None, *, client: Client, cfg: Config,
                 direction: Direction, slots: int) -> None:
        # The queue and the number of local workers follow the cluster's slots;
        # the workers look with the configured concurrency.
        super().__init__(src, dst, replace(opts, concurrency=slots), sink, tally)
        self.client, self.cfg, self.direction = client, cfg, direction
        self.worker_opts = opts
        self.batch = cfg.scaleout.shard_objects
        self.batches = 0
        self._token = uuid.uuid4().hex[:12]  # Dask keys are cluster-wide

    async def _worker(self, queue: asyncio.Queue[Pair | None]) -> None:
        batch: list[Pair] = []
        while True:
            p = await queue.get()
            if p is not None and self._error is None:
                batch.append(p)
            if batch and (p is None or len(batch) >= self.batch):
                await self._look(tuple(batch))
                batch = []
            if p is None:
                return

    async def _look(self, pairs: tuple[Pair, ...]) -> None:
        index = self.batches
        self.batches += 1
        task = LookTask(self.cfg, self.direction.value, self.worker_opts, index, pairs)
        fut: Future[LookOutcome] = self.client.submit(run_looks, task, pure=False,
                                                      key=f"crosswind-looks-{self._token}-{index}")
        try:
            outcome: LookOutcome = await fut
        except asyncio.CancelledError:
            await self.client.cancel([fut])  # type: ignore[no-untyped-call]
            raise
        except Exception as exc:
            self._error = ShardLost(f"closer looks batch {index} could not be run: "
                                    f"{type(exc).__name__}: {exc}")
            return
        if outcome.stopped is not None:
            self._error = self._error or ShardStopped(*outcome.stopped)
            return
        for r in outcome.results:
            self._record_pair(r)
        self.tally.coverage.update(outcome.coverage)


async def check_objects_distributed(
    cfg: Config, direction: Direction, workers: WorkersSpec, src: ObjectStore,
    dst: ObjectStore, opts: ObjectCheckOptions, sink: Sink, tally: CheckTally,
) -> CheckTally:
    """``crosswind.validate.objects.check_objects`` with the closer looks on ``workers``
    (``--full`` only: a sample's few looks are not worth a cluster)."""
    if opts.sample is not None:
        raise CrosswindError("validation on --workers needs --full")
    async with dask_client(workers, cfg.scaleout.connect_timeout_s) as client:
        n = max(1, await worker_count(client))
        return await DistributedValidator(
            src, dst, opts, sink, tally, client=client, cfg=cfg, direction=direction,
            slots=n * cfg.scaleout.shards_per_worker).run()
