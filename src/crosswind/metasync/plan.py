"""Pure decisions of metadata sync: batching, what to do with a row, the scan
window. No I/O; property-tested. (The max-delete guard is ``crosswind.deleteguard``,
one for every delete path.)"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from crosswind.entities import EdmDateTime, Entity
from crosswind.metasync.ledger import RowRecord
from crosswind.stores.base import RecordWrite


def by_partition(writes: Iterable[RecordWrite], max_ops: int) -> list[list[RecordWrite]]:
    """Batches for Azure transactions: one PartitionKey each, at most ``max_ops``
    writes, one write per row (the last one given wins), partitions in the order
    first seen."""
    groups: dict[str, dict[str, RecordWrite]] = {}
    for w in writes:
        group = groups.setdefault(w.entity.partition_key, {})
        group.pop(w.entity.row_key, None)  # the later write replaces it, at the end
        group[w.entity.row_key] = w
    out: list[list[RecordWrite]] = []
    for group in groups.values():
        items = list(group.values())
        out.extend(items[i : i + max_ops] for i in range(0, len(items), max_ops))
    return out


def chunks(items: Sequence[RecordWrite], size: int) -> list[list[RecordWrite]]:
    """Batches for a store that takes any mix of partitions; one write per row,
    the last one given wins."""
    unique: dict[tuple[str, str], RecordWrite] = {}
    for w in items:
        unique.pop(w.entity.key, None)
        unique[w.entity.key] = w
    flat = list(unique.values())
    return [flat[i : i + size] for i in range(0, len(flat), size)]


def needs_write(entity: Entity, record: RowRecord | None, *, full: bool) -> bool:
    """Azure → AWS: a row is written unless it was synced at this very etag."""
    if full or record is None or entity.etag is None:
        return True
    return record.azure_etag != entity.etag


def scan_since(watermark: str | None, overlap_s: float) -> EdmDateTime | None:
    """Start of an incremental scan: the watermark minus the overlap (None: all rows)."""
    if not watermark:
        return None
    mark = EdmDateTime.from_iso(watermark)
    return EdmDateTime(max(0, mark.ticks - int(timedelta(seconds=overlap_s).total_seconds()
                                              * 10_000_000)))


def next_watermark(before: str | None, started: EdmDateTime, since: EdmDateTime | None,
                   overlap_s: float) -> str | None:
    """The watermark after a finished scan that started at ``started`` (by the
    source's clock) and read rows changed at or after ``since`` (None: all), or
    None to keep ``before``.

    Bounded by the start, never by the Timestamps seen: a row changed while the
    scan ran, behind its position, is older than rows read after it. Kept when
    the scan began later than the incremental start would have (a later
    ``--since``: rows in between were never read). An earlier mark than
    ``before`` (the source's clock stepped back) is taken as it is: re-reading
    rows is safe, skipping them is not."""
    incremental_start = scan_since(before, overlap_s)
    if since is not None and (incremental_start is None or since > incremental_start):
        return None
    return started.iso


Action = Literal["write", "create", "delete", "conflict", "baseline", "skip"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: the etag the write is conditional on (the replica row as listed)
    if_match: str | None = None
    why: str = ""


def reverse_decision(doc: Entity | None, row: Entity | None, rec: RowRecord | None
                     ) -> Decision:
    """AWS (primary) → Azure (replica) for one key, both sides listed.

    The replica row may be overwritten or deleted only if it is still the
    version crosswind last synced (its etag is the recorded one); anything else
    means it was written on the replica side: a conflict, never overwritten.
    """
    if doc is not None and row is not None:
        if doc.same_content(row):
            if rec is not None and rec.azure_etag == row.etag:
                return Decision("skip", why="in step")
            return Decision("baseline", why="same content on both sides")
        if rec is not None and rec.azure_etag == row.etag:
            return Decision("write", if_match=row.etag, why="changed on AWS")
        return Decision("conflict", why="changed on Azure since the last sync" if rec
                        else "differs and was never synced")
    if doc is not None:
        if rec is None:
            return Decision("create", why="new on AWS")
        return Decision("conflict", why="deleted on Azure since the last sync")
    if row is not None:
        if rec is not None and rec.azure_etag == row.etag:
            return Decision("delete", if_match=row.etag, why="deleted on AWS")
        return Decision("conflict", why="changed on Azure since the last sync" if rec
                        else "exists only on Azure and was never synced")
    return Decision("skip", why="on neither side")
