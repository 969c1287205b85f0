"""Comparing the two copies of one metadata row. Pure; no I/O.

Both record stores present rows as ``entities.Entity`` (each maps its own
form — SDK entity, BSON document — at its boundary), so rows are compared
after mapping: the same property names, each with the same EDM type and the
same value (``Prop`` equality: exact, NaN equal to NaN, -0.0 not 0.0,
DateTimes to the 100 ns tick). Etag and Timestamp are versions, not content.
A row a store cannot present as an entity (``BadRecord``) is a metadata
mismatch that says why.
"""

from __future__ import annotations

from crosswind.entities import Entity, Prop, doc_id
from crosswind.stores.base import BadRecord
from crosswind.validate.findings import Check, Finding, Kind

Row = Entity | BadRecord
MAX_LISTED = 5


def row_label(r: Row) -> str:
    if isinstance(r, Entity):
        return doc_id(*r.key)
    if r.partition_key is not None and r.row_key is not None:
        return doc_id(r.partition_key, r.row_key)
    return r.record_id


def _show(p: Prop | None) -> str:
    if p is None:
        return "absent"
    text = p.canonical()
    return f"{p.edm.value} {text if len(text) <= 60 else text[:57] + '...'!r}"


def property_differences(src: Entity, dst: Entity) -> list[str]:
    diffs = []
    for name in sorted(src.properties.keys() | dst.properties.keys()):
        a, b = src.properties.get(name), dst.properties.get(name)
        if a != b:
            diffs.append(f"{name}: {_show(a)} at source, {_show(b)} at destination")
    return diffs


def compare_rows(src: Row | None, dst: Row | None) -> tuple[Finding, ...]:
    """The findings for one row key (one of the two may be absent, not both)."""
    some = src if src is not None else dst
    assert some is not None
    key = row_label(some)
    if dst is None:
        return (Finding(Check.METADATA, Kind.MISSING, key, "row at source only"),)
    if src is None:
        return (Finding(Check.METADATA, Kind.EXTRA, key, "row at destination only"),)
    bad = [(side, r) for side, r in (("source", src), ("destination", dst))
           if isinstance(r, BadRecord)]
    if bad:
        why = "; ".join(f"cannot be read at the {side}: {r.error}" for side, r in bad
                        if isinstance(r, BadRecord))
        return (Finding(Check.METADATA, Kind.METADATA, key, why),)
    assert isinstance(src, Entity) and isinstance(dst, Entity)
    diffs = property_differences(src, dst)
    if not diffs:
        return ()
    more = len(diffs) - MAX_LISTED
    detail = "; ".join(diffs[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
    return (Finding(Check.METADATA, Kind.METADATA, key, detail),)
