"""Cutting the merged listing into key-range shards. Pure; no I/O.

The coordinator feeds the march's matches (both listings and the verified
records, merged in code-point order) to a ``ShardCutter`` one by one; it closes
a shard when the shard holds ``max_objects`` keys or ``max_bytes`` of source
bytes, whichever comes first, so shards are balanced by count and by bytes
without knowing the estate's size in advance (the listing is streamed, never
held whole). Shard ``i`` covers the keys ``after < key <= upto``; the first has
no lower bound, the last no upper bound, and each starts where the one before
ended, so the ranges cover the whole key space, are disjoint and ordered: a key
listed at either side belongs to exactly one shard.
"""

from __future__ import annotations

from dataclasses import dataclass

from crosswind.errors import ListingOrderError
from crosswind.sync.march import Match


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys ``after < key <= upto`` in code-point order; ``None`` is unbounded."""

    after: str | None = None
    upto: str | None = None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return (self.after is None or key > self.after) and (
            self.upto is None or key <= self.upto)

    def __str__(self) -> str:
        lo = "(start" if self.after is None else f"({self.after!r}"
        hi = "end)" if self.upto is None else f"{self.upto!r}]"
        return f"{lo}, {hi}"


@dataclass(frozen=True, slots=True)
class Shard:
    """One key range and what the listings and the state hold in it."""

    index: int
    range: KeyRange
    matches: tuple[Match, ...]

    @property
    def count(self) -> int:
        return len(self.matches)

    @property
    def bytes(self) -> int:
        return sum(m.src.size for m in self.matches if m.src is not None)


def balanced_limits(count: int, total_bytes: int, parts: int, max_objects: int,
                    max_bytes: int) -> tuple[int, int]:
    """Shard limits that cut a *known* listing of ``count`` keys holding
    ``total_bytes`` into at least ``parts`` shards (when it has that many keys),
    never above the configured limits. For an estate smaller than what the
    cluster takes at once: with the configured 1,000 keys a shard, 800 keys would
    be one shard and every worker but one would wait."""
    parts = max(1, parts)
    objects = max(1, min(max_objects, count // parts))
    # A shard closes once its bytes reach the limit: at most ``parts`` close so.
    limit_bytes = max(1, min(max_bytes, -(-total_bytes // parts))) if total_bytes else max_bytes
    return objects, limit_bytes


class ShardCutter:
    """Matches in, shards out (see the module docstring)."""

    def __init__(self, max_objects: int, max_bytes: int) -> None:
        if max_objects < 1 or max_bytes < 1:
            raise ValueError("a shard needs room for at least one object and one byte")
        self.max_objects, self.max_bytes = max_objects, max_bytes
        self._index = 0
        self._after: str | None = None
        self._last: str | None = None
        self._matches: list[Match] = []
        self._bytes = 0

    def add(self, m: Match) -> Shard | None:
        """Take the next match; a shard when this one closed it."""
        if self._last is not None and m.key <= self._last:
            raise ListingOrderError(f"shard input out of order: {m.key!r} came after "
                                    f"{self._last!r}")
        self._last = m.key
        self._matches.append(m)
        if m.src is not None:
            self._bytes += m.src.size
        if len(self._matches) >= self.max_objects or self._bytes >= self.max_bytes:
            return self._close(m.key)
        return None

    def finish(self) -> Shard:
        """The last shard: to the end of the key space (possibly empty)."""
        return self._close(None)

    def _close(self, upto: str | None) -> Shard:
        shard = Shard(self._index, KeyRange(self._after, upto), tuple(self._matches))
        self._index += 1
        self._after = upto
        self._matches, self._bytes = [], 0
        return shard
