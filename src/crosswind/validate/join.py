"""The join on one side: every object has its row, every row its object.

Object names are read into keys with the ``[keys]`` pattern (``keys.KeySpec``):
a name that does not fit is an ``unparseable_name`` finding, never a crash.
Rows come in (PartitionKey, RowKey) order, object names in name order, and
the two orders differ; so (row key, name) pairs are sorted on disk
(``extsort.Spill``) and merged with the row listing. Memory stays bounded.

Items: every object (it passes when its row exists; several objects may map
to one row, and each of them has its row) and every row no object maps to
(an ``orphan_row``). Completeness is objects with their row ÷ objects.

Objects outside the ``[sync]`` prefix and filters are not items, but their
rows are theirs all the same: the whole side is listed, and a row whose only
objects are out of scope is counted (``rows_of_objects_out_of_scope``), never
reported as an orphan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

from crosswind.entities import Entity, doc_id, sort_key
from crosswind.errors import ListingOrderError, NameParseError
from crosswind.keys import KeySpec
from crosswind.stores.base import BadRecord, ObjectStore, RecordStore
from crosswind.sync.filters import KeyFilter
from crosswind.validate.extsort import Spill
from crosswind.validate.findings import Check, Finding, Kind
from crosswind.validate.tally import CheckTally

Sink = Callable[[Sequence[Finding]], None]
IN_SCOPE, OUT_OF_SCOPE = "i", "o"


def _split(sk: str) -> tuple[str, str]:
    pk, rk = sk.split("\x00", 1)
    return pk, rk


async def _row_keys(rows: RecordStore, tally: CheckTally) -> AsyncIterator[str]:
    """Sort keys of the rows, strictly increasing (else ``ListingOrderError``)."""
    last: str | None = None
    async for r in rows.list():
        tally.listed["rows"] += 1
        if isinstance(r, BadRecord) and (r.partition_key is None or r.row_key is None):
            tally.coverage["rows_without_keys"] += 1  # the metadata check reports them
            continue
        pk, rk = (r.key if isinstance(r, Entity) else (r.partition_key, r.row_key))
        assert pk is not None and rk is not None
        sk = sort_key(pk, rk)
        if last is not None and sk <= last:
            raise ListingOrderError(f"{rows.name}: rows out of order: {doc_id(pk, rk)!r} came "
                                    f"after {doc_id(*_split(last))!r}")
        last = sk
        yield sk


async def check_join(check: Check, objects: ObjectStore, rows: RecordStore, spec: KeySpec,
                     keep: KeyFilter, sink: Sink, tally: CheckTally | None = None,
                     workdir: Path | None = None) -> CheckTally:
    tally = tally or CheckTally(check)

    def record(at_source: bool, at_destination: bool, *found: Finding) -> None:
        tally.record(at_source=at_source, at_destination=at_destination, findings=found)
        if found:
            sink(found)

    # Values are tagged: IN_SCOPE + name, or OUT_OF_SCOPE + name for an object
    # the filters leave out (listed only so its row is not taken for an orphan).
    with Spill(workdir) as spill:
        async for m in objects.list(""):
            tally.listed["objects"] += 1
            in_scope = keep(m.key)
            try:
                keys = spec.keys(m.key)
            except NameParseError as exc:
                if in_scope:
                    record(True, False, Finding(check, Kind.UNPARSEABLE, m.key, str(exc)))
                continue
            spill.add(sort_key(keys.partition_key, keys.row_key),
                      (IN_SCOPE if in_scope else OUT_OF_SCOPE) + m.key)
        by_row: Iterator[tuple[str, str]] = spill.sorted()
        obj = next(by_row, None)
        row_keys = _row_keys(rows, tally).__aiter__()
        row = await anext(row_keys, None)
        while obj is not None or row is not None:
            if row is None or (obj is not None and obj[0] < row):
                assert obj is not None
                if obj[1].startswith(IN_SCOPE):
                    pk, rk = _split(obj[0])
                    record(True, False, Finding(check, Kind.ORPHAN_OBJECT, obj[1][1:],
                                                f"no row {doc_id(pk, rk)!r} in {rows.name}"))
                obj = next(by_row, None)
            elif obj is None or row < obj[0]:
                record(False, True, Finding(check, Kind.ORPHAN_ROW, doc_id(*_split(row)),
                                            f"no object in {objects.name} maps to this row"))
                row = await anext(row_keys, None)
            else:
                shared = outside = 0
                while obj is not None and obj[0] == row:
                    if obj[1].startswith(IN_SCOPE):
                        record(True, True)
                        shared += 1
                    else:
                        outside += 1
                    obj = next(by_row, None)
                if shared > 1:
                    tally.coverage["objects_sharing_a_row"] += shared
                if not shared and outside:
                    tally.coverage["rows_of_objects_out_of_scope"] += 1
                row = await anext(row_keys, None)
    return tally
