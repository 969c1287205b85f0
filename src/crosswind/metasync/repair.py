"""Second chances: replaying DLQ entries and resolving conflicts.

A replay reads the item's *current* source version again (the fix may have
been made at the source: a renamed property, a corrected name, a row that
now exists) and sends it through the same engine as a sync, so the same
checks, conflict rules and bookkeeping apply; success resolves the entry, a
new failure updates its reason and counts an attempt.

Deletes here (a replayed document that is gone now, a conflict resolved for
the side that has no row) ask the same max-delete guard as a sync: one per
command by default (one window), or the caller's (the replication service's).
A refused delete is not done: the DLQ entry stays open, the conflict stays
open, and the command exits 4.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from crosswind.config import Config
from crosswind.deleteguard import DeleteGuard
from crosswind.entities import (
    Entity,
    document_to_entity,
    entity_from_json,
    entity_to_document,
    entity_to_json,
    id_text,
    parse_doc_id,
)
from crosswind.errors import ConfigError, EntityMappingError, NotFound
from crosswind.governance.context import Governance
from crosswind.governance.gate import SchemaGate
from crosswind.metasync.context import MetaOptions, RunContext, scope_of
from crosswind.metasync.forward import ForwardSync
from crosswind.metasync.ledger import DlqItem, Ledger, RowRecord
from crosswind.metasync.reverse import ReverseSync
from crosswind.metasync.runner import key_spec, opened_row_stores
from crosswind.model import Direction
from crosswind.state import RunStatus, StateStore
from crosswind.stores.azure_tables import AzureTableStore
from crosswind.stores.base import RecordWrite
from crosswind.stores.documentdb import DocumentDBStore, RecordChange, raw_text
from crosswind.version import crosswind_version


@dataclass
class ReplayResult:
    replayed: int = 0
    resolved: list[int] = field(default_factory=list)
    still_open: list[dict[str, Any]] = field(default_factory=list)
    #: why the max-delete guard held deletes back (their entries stay open), or None
    blocked: str | None = None
    #: entries named by id that something else resolved first (e.g. the
    #: replication service's reconcile): {id, item, when, how}
    already_resolved: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {"kind": "dlq-replay", "crosswind_version": crosswind_version(),
                "replayed": self.replayed, "resolved": len(self.resolved),
                "resolved_ids": self.resolved, "still_failing": self.still_open,
                "deletes_blocked": self.blocked, "already_resolved": self.already_resolved}


@contextlib.contextmanager
def _state(cfg: Config) -> Iterator[tuple[StateStore, Ledger]]:
    state = StateStore(cfg.state_dir)
    try:
        state.lock()
        yield state, Ledger(state, scope_of(cfg))
    finally:
        state.close()


def select_items(ledger: Ledger, ids: Iterable[int] | None, *, every: bool,
                 direction: str | None, kind: str | None) -> list[DlqItem]:
    id_list = list(ids or [])
    if not id_list and not every:
        raise ConfigError("name DLQ entries by id, or give --all")
    items = ledger.dlq_list(status="open", direction=direction, kind=kind,
                            ids=id_list or None, limit=None)
    missing = set(id_list) - {i.id for i in items} - {
        d["id"] for d in already_resolved(ledger, id_list)}
    if missing:
        raise ConfigError(f"no open DLQ entries with id {', '.join(map(str, sorted(missing)))}")
    return items


def already_resolved(ledger: Ledger, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The entries among ``ids`` that are resolved already: naming one is not an
    error (while ``replicate`` runs, its reconcile may well get there first), but
    the replay says so rather than counting it as replayed."""
    id_list = list(ids)
    if not id_list:
        return []
    return [{"id": i.id, "item": i.item, "when": i.last_seen,
             "how": i.reason.removeprefix("resolved: ")}
            for i in ledger.dlq_list(status="resolved", ids=id_list, limit=None)]


async def replay(cfg: Config, ids: Iterable[int] | None = None, *, every: bool = False,
                 direction: str | None = None, kind: str | None = None,
                 guard: DeleteGuard | None = None) -> ReplayResult:
    """Replay DLQ entries; ``guard``: the max-delete guard to ask (default: one
    for this replay, with the ``[metadata]`` limits)."""
    with _state(cfg) as (state, ledger):
        items = select_items(ledger, ids, every=every, direction=direction, kind=kind)
        result = await replay_items(cfg, state, ledger, items, guard=guard)
        result.already_resolved = already_resolved(ledger, ids or [])
        return result


ROW_ITEM_KINDS = ("row", "object", "document")


async def replay_items(cfg: Config, state: StateStore, ledger: Ledger, items: list[DlqItem], *,
                       guard: DeleteGuard | None = None) -> ReplayResult:
    """Replay these entries (of the row kinds) with a state store the caller holds:
    a command that took the lock, or the replication service."""
    result = ReplayResult()
    items = [i for i in items if i.item_kind in ROW_ITEM_KINDS]
    result.replayed = len(items)
    for d in (Direction.AZURE_TO_AWS, Direction.AWS_TO_AZURE):
        mine = [i for i in items if i.direction == d.value]
        if not mine:
            continue
        run_id = state.start_run("metadata-replay", d.value, False)
        opts = MetaOptions.from_config(cfg, d, full=True)
        if guard is None:
            guard = opts.one_run_guard()  # one window for the whole command
        # The same validation before write as a sync: a row rejected by its schema
        # passes once a version that accepts it is registered.
        ctx = RunContext(ledger, run_id, opts, guard=guard, governance=Governance(
            schemas=SchemaGate.from_state(state, cfg.governance.enforce)))
        blocked: str | None = None
        async with opened_row_stores(cfg, d) as (table, docs):
            if d is Direction.AZURE_TO_AWS:
                await _replay_forward(cfg, ForwardSync(table, docs, ctx), table, mine)
            else:
                rev = ReverseSync(docs, table, ctx)
                await _replay_reverse(rev, docs, mine)
                blocked = rev.delete_blocked
        result.blocked = result.blocked or blocked
        status: RunStatus = ("aborted" if blocked else "failed" if ctx.stats.failed
                             else "succeeded")
        state.finish_run(run_id, status,
                         {"kind": "dlq-replay", "crosswind_version": crosswind_version(),
                          "items": [i.id for i in mine],
                          "failed": ctx.stats.failed, "error": blocked})
    settle(ledger, items, result)
    return result


def settle(ledger: Ledger, items: list[DlqItem], result: ReplayResult) -> None:
    """Which of ``items`` are resolved now, and which still fail (and why)."""
    after = {i.id: i for i in ledger.dlq_list(status=None, ids=[i.id for i in items],
                                              limit=None)}
    for i in items:
        now = after.get(i.id)
        if now is not None and now.status == "resolved":
            result.resolved.append(i.id)
        elif now is not None:
            result.still_open.append({"id": i.id, "item": i.item, "kind": now.kind,
                                      "reason": now.reason, "attempts": now.attempts})


async def _names(names: list[str]) -> AsyncIterator[str]:
    for n in names:
        yield n


async def _replay_forward(cfg: Config, fwd: ForwardSync, table: AzureTableStore,
                          items: list[DlqItem]) -> None:
    fwd.dlq_open = True
    names = [i.item for i in items if i.item_kind == "object"]
    if names:
        await fwd.objects(_names(names), key_spec(cfg))
    rows: list[Entity] = []
    for i in items:
        if i.item_kind == "object":
            continue
        key = (i.pk, i.rk) if i.pk is not None and i.rk is not None else parse_doc_id(i.item)
        if key is None:
            continue
        try:
            rows.append(await table.get(*key))
        except NotFound:
            fwd.ledger.dlq_resolve(fwd.ctx.direction, "row", [i.item],
                                   "the row no longer exists at the source")
        except EntityMappingError as exc:
            fwd.ctx.dlq("row", i.item, pk=key[0], rk=key[1], error=exc)
    if rows:
        await fwd.write_rows(rows, force=True, newer_only=True)


async def _replay_reverse(rev: ReverseSync, docs: DocumentDBStore, items: list[DlqItem]
                          ) -> None:
    rev.dlq_open = True
    changes: list[RecordChange] = []
    token: dict[str, Any] = {}
    for i in items:
        # Entries are filed under the document's _id (id_text); older ones may be
        # filed under its keys, which is also where a document is found that
        # replaced the one that failed.
        doc = await _document_of(docs, i)
        if doc is None:
            key = (i.pk, i.rk) if i.pk is not None and i.rk is not None else parse_doc_id(i.item)
            changes.append(RecordChange("delete", i.item, key, None, None, None, token))
            continue
        doc_key = id_text(doc.get("_id"))
        try:
            e = document_to_entity(doc)
        except EntityMappingError as exc:
            if doc_key != i.item:  # the entry was filed under the keys; keep it there
                rev.ctx.dlq("document", i.item, pk=i.pk, rk=i.rk, error=exc, payload=raw_text(doc))
                continue
            changes.append(RecordChange("upsert", doc_key, None, None, exc, raw_text(doc), token))
            continue
        if doc_key != i.item:
            rev.dlq_aliases.setdefault(doc_key, []).append(i.item)
        # Recorded under the document's real _id, so its later delete finds the row.
        changes.append(RecordChange("upsert", doc_key, e.key, e, None, None, token))
    await rev.apply(changes)


async def _document_of(docs: DocumentDBStore, item: DlqItem) -> dict[str, Any] | None:
    """The document a DLQ entry is about now: by its _id, else by its keys."""
    with contextlib.suppress(NotFound):
        return await docs.get_by_id(item.item)
    if item.pk is not None and item.rk is not None:
        with contextlib.suppress(NotFound):
            return await docs.get_document(item.pk, item.rk)
    return None


# -- conflicts -------------------------------------------------------------------------


def _same(current: Entity | None, shown: dict[str, Any] | None) -> bool:
    if current is None or shown is None:
        return current is None and shown is None
    return current.same_content(entity_from_json(shown))


Keep = Literal["aws", "azure"]


async def resolve_conflict(cfg: Config, conflict_id: int, keep: Keep,
                           guard: DeleteGuard | None = None) -> dict[str, Any]:
    """Make both sides hold the *current* version of one side, then record the
    new baseline and mark the conflict resolved. Keeping a side that has no row
    deletes it on the other side: only if ``guard`` (default: one for this
    command, with the ``[metadata]`` limits) allows, else ``DeleteLimitExceeded``."""
    if guard is None:
        guard = MetaOptions.from_config(cfg, Direction.AWS_TO_AZURE).one_run_guard()
    with _state(cfg) as (_state_store, ledger):
        found = ledger.conflicts(status="open", ids=[conflict_id], limit=1)
        if not found:
            raise ConfigError(f"no open conflict with id {conflict_id}")
        c = found[0]
        async with opened_row_stores(cfg, Direction.AWS_TO_AZURE) as (table, docs):
            doc_row: Entity | None = None
            with contextlib.suppress(NotFound):
                doc_row = await docs.get(c.pk, c.rk)
            az_row: Entity | None = None
            with contextlib.suppress(NotFound):
                az_row = await table.get(c.pk, c.rk)
            # The operator chose from the versions the conflict shows: the side
            # being overwritten must still hold the version shown there.
            loser_changed = (
                (az_row.etag if az_row else None) != c.azure_etag if keep == "aws"
                else not _same(doc_row, c.aws_version))
            if loser_changed:
                ledger.refresh_conflict(
                    conflict_id, azure_etag=az_row.etag if az_row else None,
                    azure_version=entity_to_json(az_row) if az_row else None,
                    aws_version=entity_to_json(doc_row) if doc_row else None)
                side = "Azure" if keep == "aws" else "AWS"
                raise ConfigError(
                    f"conflict {conflict_id}: the {side} version changed since the conflict "
                    f"was recorded; it now shows the current versions (crosswind conflicts "
                    f"show {conflict_id}): check them, then resolve again")
            winner = doc_row if keep == "aws" else az_row
            loser = az_row if keep == "aws" else doc_row
            if winner is None and loser is not None:
                # Base: the rows the ledger has in step, and this one if it is not
                # among them (a row never synced is still on the replica).
                base = ledger.row_count() + (ledger.row(c.pk, c.rk) is None)
                side = "Azure" if keep == "aws" else "DocumentDB"
                guard.require(1, base, what=f"the delete of ({c.pk!r}, {c.rk!r}) on {side} "
                                            f"(conflict {conflict_id})")
            if keep == "aws":
                # Conditional on the Azure row just read: an edit racing this one stays.
                w = (RecordWrite("upsert" if az_row else "create", winner,
                                 if_match=az_row.etag if az_row else None) if winner
                     else RecordWrite("delete", Entity(c.pk, c.rk),
                                      if_match=az_row.etag if az_row else None))
                [r] = await table.write_batch([w])
                if r.status not in ("ok", "missing"):
                    raise r.error or ConfigError(f"writing to Azure: {r.status}")
                etag = r.etag
            else:
                if winner is None:
                    await docs.delete(c.pk, c.rk)
                else:
                    # Into the document that is there (its own _id, whatever it is).
                    [r] = await docs.write_batch([RecordWrite("upsert", Entity(
                        winner.partition_key, winner.row_key, winner.properties, winner.etag,
                        record_id=doc_row.record_id if doc_row else None))])
                    if r.status != "ok":
                        raise r.error or ConfigError(f"writing to DocumentDB: {r.status}")
                etag = az_row.etag if az_row else None
            if winner is None:
                ledger.forget_rows([(c.pk, c.rk)])
            else:
                # The _id of the document both sides now match (a new one: ours).
                ledger.record_rows([RowRecord(
                    c.pk, c.rk, etag, winner.content_hash(),
                    doc_row.record_id if doc_row is not None and doc_row.record_id
                    else id_text(entity_to_document(winner)["_id"]))])
            ledger.resolve_conflict(conflict_id, f"kept the {keep} version"
                                    + ("" if winner else " (absent: deleted on the other side)"))
    return {"kind": "conflict-resolve", "crosswind_version": crosswind_version(),
            "id": conflict_id, "kept": keep,
            "key": [c.pk, c.rk], "deleted": winner is None}
