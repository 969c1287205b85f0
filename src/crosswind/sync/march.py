"""Sorted merge of a source listing, a destination listing and the verified
copies recorded in the state store. Pure: it only awaits the iterators it is
given and reports, key by key, what each side holds.

All three inputs must be strictly increasing in code-point order (the store
contract); anything else raises ``ListingOrderError`` instead of producing a
wrong plan (rclone's march refuses out-of-order input the same way).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

from crosswind.errors import ListingOrderError
from crosswind.model import ObjectMeta
from crosswind.state import VerifiedCopy


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    src: ObjectMeta | None
    dst: ObjectMeta | None
    record: VerifiedCopy | None


def _out_of_order(side: str, key: str, last: str) -> ListingOrderError:
    return ListingOrderError(f"{side} listing is out of order: {key!r} came after {last!r}")


async def march(
    src: AsyncIterable[ObjectMeta],
    dst: AsyncIterable[ObjectMeta],
    records: Iterable[VerifiedCopy] = (),
) -> AsyncIterator[Match]:
    # The order checks are inline rather than a wrapping generator: one
    # generator hop less per listed key (a plan over millions of keys).
    s_it = aiter(src)
    d_it = aiter(dst)
    r_it = iter(records)
    s = await anext(s_it, None)
    d = await anext(d_it, None)
    r = next(r_it, None)
    last_r: str | None = None
    while s is not None or d is not None:
        if d is None or (s is not None and s.key < d.key):
            key = s.key  # type: ignore[union-attr]
            cur_s, cur_d = s, None
        elif s is None or d.key < s.key:
            key = d.key
            cur_s, cur_d = None, d
        else:
            key = s.key
            cur_s, cur_d = s, d
        # Records are only needed for keys some listing holds; skip the others.
        while r is not None and r.key < key:
            if last_r is not None and r.key <= last_r:
                raise ListingOrderError(f"verified records out of order at {r.key!r}")
            last_r = r.key
            r = next(r_it, None)
        rec = r if r is not None and r.key == key else None
        yield Match(key, cur_s, cur_d, rec)
        if cur_s is not None:
            s = await anext(s_it, None)
            if s is not None and s.key <= key:
                raise _out_of_order("source", s.key, key)
        if cur_d is not None:
            d = await anext(d_it, None)
            if d is not None and d.key <= key:
                raise _out_of_order("destination", d.key, key)
