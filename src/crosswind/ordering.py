"""Bring a listing into Unicode code-point order. Pure; no I/O.

S3 and our own stores list keys in UTF-8 byte order, which equals code-point
order. Azure (and Azurite) list in UTF-16 code-unit order. The two orders
disagree only where one key has a character above U+FFFF (a surrogate pair,
code units D800-DFFF) and the other a character in U+E000-U+FFFF at the first
position where they differ: UTF-16 puts the astral key first.

So an *astral* key (one with any character above U+FFFF) can arrive too early,
never too late, relative to keys without such characters, whose relative order
is the same in both. ``utf16_to_codepoint`` holds astral keys in a heap and
releases each one as soon as a non-astral key at or after it arrives. Memory is
bounded by the number of astral keys waiting, which is tiny in real estates.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


def is_astral(key: str) -> bool:
    return any(ord(c) > 0xFFFF for c in key) if not key.isascii() else False


def utf16_sort_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


async def utf16_to_codepoint(
    items: AsyncIterable[T], key: Callable[[T], str]
) -> AsyncIterator[T]:
    waiting: list[tuple[str, int, T]] = []
    seq = 0  # tie-breaker so items themselves are never compared
    async for item in items:
        k = key(item)
        if is_astral(k):
            heapq.heappush(waiting, (k, seq, item))
            seq += 1
            continue
        while waiting and waiting[0][0] < k:
            yield heapq.heappop(waiting)[2]
        yield item
    while waiting:
        yield heapq.heappop(waiting)[2]
