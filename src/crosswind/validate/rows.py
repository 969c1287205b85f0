"""Metadata-row validation: both row listings merged in (PartitionKey, RowKey)
order (the metadata engine's own ``march_rows``), compared row by row after
mapping. Streams; memory holds only the examples."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crosswind.metasync.march import march_rows
from crosswind.stores.base import RecordStore
from crosswind.validate.findings import Check, Finding
from crosswind.validate.rows_compare import compare_rows
from crosswind.validate.tally import CheckTally

Sink = Callable[[Sequence[Finding]], None]


async def check_rows(src: RecordStore, dst: RecordStore, sink: Sink,
                     tally: CheckTally | None = None) -> CheckTally:
    tally = tally or CheckTally(Check.METADATA)
    async for m in march_rows(src.list(), dst.list()):
        if m.src is not None:
            tally.listed["source"] += 1
        if m.dst is not None:
            tally.listed["destination"] += 1
        findings = compare_rows(m.src, m.dst)
        if m.src is not None and m.dst is not None:
            tally.coverage["fields_compared"] += 1
        tally.record(at_source=m.src is not None, at_destination=m.dst is not None,
                     findings=findings)
        if findings:
            sink(findings)
    return tally
