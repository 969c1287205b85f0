"""What every metadata engine of one run shares: options, counters, the ledger,
the max-delete guard, retries, and the DLQ with failure examples for the report."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from crosswind.config import Config
from crosswind.deleteguard import DeleteGuard
from crosswind.entities import EdmDateTime
from crosswind.errors import CrosswindError, EntityMappingError, StoreError
from crosswind.metasync.ledger import ItemKind, RowLedger
from crosswind.metasync.stats import MetaStats
from crosswind.model import Direction

T = TypeVar("T")


@dataclass(frozen=True)
class MetaOptions:
    direction: Direction
    batch_size: int = 500
    concurrency: int = 4
    attempts: int = 3
    dry_run: bool = False
    #: every row, whatever the watermark and the recorded etags say
    full: bool = False
    #: scan rows changed at or after this (overrides the watermark)
    since: EdmDateTime | None = None
    propagate_deletes: bool = False
    max_delete_count: int = 1000
    max_delete_percent: float = 10.0
    overlap_s: float = 300.0
    conflict_policy: Literal["record", "overwrite"] = "record"
    idle_timeout_s: float = 2.0
    flush_interval_s: float = 0.5
    enable_change_streams: bool = True
    #: reverse sync: keep following the change stream until interrupted
    follow: bool = False
    examples: int = 20

    @classmethod
    def from_config(cls, cfg: Config, direction: Direction, **overrides: Any) -> MetaOptions:
        m = cfg.metadata
        opts = cls(
            direction=direction, batch_size=m.batch_size, concurrency=m.concurrency,
            attempts=m.attempts, full=m.scan == "full", propagate_deletes=m.propagate_deletes,
            max_delete_count=m.max_delete_count, max_delete_percent=m.max_delete_percent,
            overlap_s=m.watermark_overlap_s, conflict_policy=m.conflict_policy,
            idle_timeout_s=m.idle_timeout_s, flush_interval_s=m.flush_interval_s,
            enable_change_streams=m.enable_change_streams,
        )
        return replace(opts, **{k: v for k, v in overrides.items() if v is not None})

    def one_run_guard(self) -> DeleteGuard:
        """The guard of a one-shot run: its limits, one window for the whole run."""
        return DeleteGuard(self.max_delete_count, self.max_delete_percent, window_s=None)


def scope_of(cfg: Config) -> str:
    """One table ⇄ collection pair: the key of everything the ledger keeps."""
    return f"{cfg.azure.table}|{cfg.aws.database}.{cfg.aws.collection}"


@dataclass
class RunContext:
    """One run's shared state.

    ``guard`` is the one max-delete guard every delete of the run asks first
    (stream, reconcile, replay, overwrite-policy conflicts). It is given, never
    made here: a one-shot run passes ``opts.one_run_guard()``; the replication
    service passes its own long-lived sliding-window guard, so that its limits
    hold across all the runs and engines it drives.
    """

    ledger: RowLedger
    run_id: int | None
    opts: MetaOptions
    stats: MetaStats = field(default_factory=MetaStats)
    failures: list[dict[str, Any]] = field(default_factory=list)
    would_write: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    conflict_examples: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    guard: DeleteGuard = field(kw_only=True)

    @property
    def direction(self) -> str:
        return self.opts.direction.value

    def dlq(self, item_kind: ItemKind, item: str, *, pk: str | None, rk: str | None,
            error: CrosswindError | str, kind: str | None = None,
            payload: str | None = None) -> None:
        """A row/object/document that failed: counted, shown in the report, and
        (unless a dry run) kept in the DLQ for ``crosswind dlq replay``."""
        if kind is None:
            kind = error.kind if isinstance(error, EntityMappingError) else (
                "store-error" if isinstance(error, StoreError) else "error")
        reason = str(error)
        self.stats.fail(kind)
        if len(self.failures) < 100:
            self.failures.append({"item": item, "item_kind": item_kind, "kind": kind,
                                  "reason": reason})
        if not self.opts.dry_run:
            self.ledger.dlq_put(self.direction, item_kind, item, pk=pk, rk=rk, kind=kind,
                                reason=reason, payload=payload, run_id=self.run_id)

    def example(self, bucket: list[str], text: str) -> None:
        if len(bucket) < self.opts.examples:
            bucket.append(text)

    async def retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn`` again on retryable store errors, with exponential backoff and jitter."""
        attempt = 1
        while True:
            try:
                return await fn()
            except StoreError as exc:
                if not exc.retryable or attempt >= self.opts.attempts:
                    raise
            self.stats.retries += 1
            await asyncio.sleep(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random()))
            attempt += 1
