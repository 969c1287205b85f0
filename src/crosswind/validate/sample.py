"""A uniform random sample of a stream of unknown length, in bounded memory. Pure.

Reservoir sampling, Vitter's/Li's "Algorithm L": after the first ``size``
items, the gap to the next item that enters the sample is drawn from a
geometric distribution, so a million-item stream costs a few hundred random
draws instead of a million. Seeded: the same seed and stream give the same
sample, and reports record the seed.
"""

from __future__ import annotations

import math
import random
from typing import Generic, TypeVar

T = TypeVar("T")


class Reservoir(Generic[T]):
    def __init__(self, size: int, seed: int) -> None:
        if size < 0:
            raise ValueError("sample size must be >= 0")
        self.size = size
        self.seen = 0
        self._items: list[T] = []
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = 0

    def _u(self) -> float:
        return 1.0 - self._rng.random()  # in (0, 1]: safe to take the log of

    def _advance(self) -> None:
        self._w *= math.exp(math.log(self._u()) / self.size)
        if self._w >= 1.0:  # only when size is huge relative to float precision
            self._next = self.seen
            return
        self._next = self.seen + math.floor(math.log(self._u()) / math.log1p(-self._w))

    def offer(self, item: T) -> tuple[bool, T | None]:
        """Offer the next item of the stream. Returns (kept, dropped): whether
        ``item`` entered the sample, and the item that left it or was not
        taken (None while the sample is still filling)."""
        index = self.seen
        self.seen += 1
        if self.size == 0:
            return False, item
        if index < self.size:
            self._items.append(item)
            if index == self.size - 1:
                self._advance()
            return True, None
        if index < self._next:
            return False, item
        slot = self._rng.randrange(self.size)
        out = self._items[slot]
        self._items[slot] = item
        self._advance()
        return True, out

    def items(self) -> list[T]:
        return list(self._items)
