"""Replaying the DLQ entries of objects (keys the service could not bring in step,
poison queue messages), next to the metadata rows' (``metasync/repair.py``), so
that ``crosswind dlq replay`` handles every kind.

A replay reads the key's *current* source version, as every apply does: the fix
may have been made at the source. Without a service running, the command does
it itself with a one-shot applier; while the service runs, the command asks it
(``crosswind.control``) and the service hands the keys to its scheduler, so a
replay never races a live change of the same key.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime

from crosswind.config import Config
from crosswind.deleteguard import DeleteGuard
from crosswind.errors import CrosswindError
from crosswind.governance.gate import SchemaGate, SchemaRejected
from crosswind.live.changes import Change, ParsedMessage
from crosswind.live.events import PoisonMessage, parse_azure_message, parse_s3_message
from crosswind.live.objects import DeleteHeld, ObjectApplier
from crosswind.live.scheduler import EVENT, KeyScheduler
from crosswind.metasync.ledger import DlqItem, Ledger
from crosswind.metasync.repair import ReplayResult, settle
from crosswind.model import Direction
from crosswind.observability.stats import SyncStats
from crosswind.secrets import redact
from crosswind.state import StateStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.budget import ByteBudget
from crosswind.sync.engine import StateJournal
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import Transfer, TransferSettings

OBJECT_ITEM_KINDS = ("object-key", "queue-message")
STREAM = "dlq-replay"


def object_delete_guard(cfg: Config, window_s: float | None = None) -> DeleteGuard:
    """The replica objects' delete limits: ``[replicate]``'s, else ``[sync]``'s."""
    rc, s = cfg.replicate, cfg.sync
    return DeleteGuard(s.max_delete_count if rc.max_delete_count is None else rc.max_delete_count,
                       s.max_delete_percent if rc.max_delete_percent is None
                       else rc.max_delete_percent, window_s=window_s)


def parser_for(cfg: Config, direction: Direction) -> Callable[[str], ParsedMessage]:
    if direction is Direction.AZURE_TO_AWS:
        return lambda body: parse_azure_message(body, container=cfg.azure.container)
    return lambda body: parse_s3_message(body, bucket=cfg.aws.bucket)


def keys_of(cfg: Config, item: DlqItem, ledger: Ledger) -> list[str] | None:
    """The object keys an entry is about; None (and the entry's reason renewed)
    when a poison message still does not parse."""
    if item.item_kind == "object-key":
        return [item.item]
    try:
        parsed = parser_for(cfg, Direction(item.direction))(item.payload or "")
    except PoisonMessage as exc:
        ledger.dlq_put(item.direction, "queue-message", item.item, pk=None, rk=None,
                       kind=item.kind, reason=str(exc), payload=None, run_id=item.run_id)
        return None
    return [ev.key for ev in parsed.events]


def verified_count(state: StateStore, direction: str) -> int:
    row = state.db.execute("SELECT count(*) FROM verified WHERE direction=?",
                           (direction,)).fetchone()
    return int(row[0])


async def replay_objects(cfg: Config, state: StateStore, ledger: Ledger, items: list[DlqItem],
                         *, guard: DeleteGuard | None = None) -> ReplayResult:
    """Without the service: apply each entry's keys here, one after the other."""
    result = ReplayResult()
    items = [i for i in items if i.item_kind in OBJECT_ITEM_KINDS]
    result.replayed = len(items)
    s = cfg.sync
    for d in (Direction.AZURE_TO_AWS, Direction.AWS_TO_AZURE):
        mine = [i for i in items if i.direction == d.value]
        if not mine:
            continue
        g = guard or object_delete_guard(cfg)  # one window for the whole command
        src = await open_object_store(cfg, d.source_side)
        try:
            dst = await open_object_store(cfg, d.destination_side)
            try:
                transfer = Transfer(src, dst, TransferSettings(
                    s.multipart_threshold, s.part_size, s.part_concurrency,
                    s.metadata_key_policy, schemas=SchemaGate.from_state(
                        state, cfg.governance.enforce)), ByteBudget(s.memory_budget), SyncStats(),
                    StateJournal(state, dst.name))
                applier = ObjectApplier(src, dst, state, d.value, transfer, g,
                                        functools.partial(verified_count, state, d.value),
                                        KeyFilter(s.include, s.exclude, s.prefix),
                                        attempts=s.attempts)
                for item in mine:
                    keys = keys_of(cfg, item, ledger)
                    if keys is None:
                        continue
                    ok = True
                    for key in keys:
                        try:
                            await applier.apply(key, trust_record=False)
                        except CrosswindError as exc:
                            ok = False
                            held = isinstance(exc, DeleteHeld)
                            kind = ("delete-held" if held else "schema"
                                    if isinstance(exc, SchemaRejected) else type(exc).__name__)
                            if held:
                                result.blocked = redact(str(exc))
                            ledger.dlq_put(d.value, "object-key", key, pk=None, rk=None,
                                           kind=kind, reason=redact(str(exc)), payload=None,
                                           run_id=None)
                        else:
                            ledger.dlq_resolve(d.value, "object-key", [key], "replayed")
                    if ok and item.item_kind == "queue-message":
                        ledger.dlq_resolve(d.value, "queue-message", [item.item], "replayed")
            finally:
                await dst.close()
        finally:
            await src.close()
    settle(ledger, items, result)
    return result


class _Done:
    def __init__(self, left: int, fut: asyncio.Future[None]) -> None:
        self.left = left
        self.fut = fut

    def done(self) -> None:
        self.left -= 1
        if self.left <= 0 and not self.fut.done():
            self.fut.set_result(None)


async def replay_through(cfg: Config, ledger: Ledger, scheduler: KeyScheduler,
                         items: list[DlqItem], direction: Direction, *,
                         timeout_s: float = 600.0) -> ReplayResult:
    """In the service: the entries' keys go through its scheduler (the workers
    resolve or renew each key's entry); returns when all are done."""
    result = ReplayResult()
    items = [i for i in items if i.item_kind in OBJECT_ITEM_KINDS
             and i.direction == direction.value]
    result.replayed = len(items)
    waits: list[tuple[DlqItem, asyncio.Future[None]]] = []
    loop = asyncio.get_running_loop()
    for item in items:
        keys = keys_of(cfg, item, ledger)
        if not keys:
            continue
        fut: asyncio.Future[None] = loop.create_future()
        ticket = _Done(len(keys), fut)
        for key in keys:
            scheduler.submit(Change("object", "upsert", key, STREAM, datetime.now(UTC)),
                             ticket, priority=EVENT)
        waits.append((item, fut))
    if waits:
        await asyncio.wait_for(asyncio.gather(*(f for _, f in waits)), timeout=timeout_s)
    for item, _ in waits:
        if item.item_kind == "queue-message":
            keys = keys_of(cfg, item, ledger) or []
            still = ledger.dlq_list(direction=direction.value, kind=None, limit=None)
            if not any(i.item_kind == "object-key" and i.item in keys for i in still):
                ledger.dlq_resolve(direction.value, "queue-message", [item.item], "replayed")
    settle(ledger, items, result)
    return result


def merged(a: ReplayResult, b: ReplayResult) -> ReplayResult:
    return ReplayResult(a.replayed + b.replayed, a.resolved + b.resolved,
                        a.still_open + b.still_open, a.blocked or b.blocked)


async def replay_all(cfg: Config, state: StateStore, ledger: Ledger, items: list[DlqItem], *,
                     guard: DeleteGuard | None = None) -> ReplayResult:
    """Every kind, with a state store the caller holds and no service running."""
    from crosswind.metasync.repair import replay_items

    rows = await replay_items(cfg, state, ledger, items, guard=guard)
    objs = await replay_objects(cfg, state, ledger, items, guard=guard)
    return merged(rows, objs)
