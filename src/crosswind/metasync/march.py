"""Sorted merge of two row listings (source, destination). Pure: it only awaits
the iterators it is given. Both must be strictly increasing in (PartitionKey,
RowKey) code-point order (the ``RecordStore`` contract); anything else raises
``ListingOrderError`` rather than producing a wrong plan. Rows a store could
not map and that have no keys (``BadRecord`` without keys) come out on their
own, with ``key`` None, wherever they appear."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from crosswind.entities import Entity
from crosswind.errors import ListingOrderError
from crosswind.stores.base import BadRecord

Row = Entity | BadRecord


@dataclass(frozen=True, slots=True)
class RowMatch:
    key: tuple[str, str] | None
    src: Row | None
    dst: Row | None


def _key(r: Row) -> tuple[str, str] | None:
    if isinstance(r, Entity):
        return r.key
    if r.partition_key is None or r.row_key is None:
        return None
    return (r.partition_key, r.row_key)


async def _ordered(rows: AsyncIterable[Row], side: str, keyless: list[RowMatch]
                   ) -> AsyncIterator[tuple[tuple[str, str], Row]]:
    last: tuple[str, str] | None = None
    async for r in rows:
        k = _key(r)
        if k is None:
            keyless.append(RowMatch(None, r if side == "source" else None,
                                    r if side == "destination" else None))
            continue
        if last is not None and k <= last:
            raise ListingOrderError(f"{side} listing is out of order: {k!r} came after {last!r}")
        last = k
        yield k, r


async def march_rows(src: AsyncIterable[Row], dst: AsyncIterable[Row]
                     ) -> AsyncIterator[RowMatch]:
    keyless: list[RowMatch] = []
    s_it = _ordered(src, "source", keyless).__aiter__()
    d_it = _ordered(dst, "destination", keyless).__aiter__()
    s = await anext(s_it, None)
    d = await anext(d_it, None)
    while s is not None or d is not None:
        while keyless:
            yield keyless.pop(0)
        if d is None or (s is not None and s[0] < d[0]):
            assert s is not None
            yield RowMatch(s[0], s[1], None)
            s = await anext(s_it, None)
        elif s is None or d[0] < s[0]:
            yield RowMatch(d[0], None, d[1])
            d = await anext(d_it, None)
        else:
            yield RowMatch(s[0], s[1], d[1])
            s = await anext(s_it, None)
            d = await anext(d_it, None)
    while keyless:
        yield keyless.pop(0)
