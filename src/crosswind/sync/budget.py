"""A cap on object bytes held in memory across all transfers."""

from __future__ import annotations

import asyncio


class ByteBudget:
    """Counting semaphore over bytes. Each object acquires its pieces in order
    and every piece is released once written, whatever happens to others, so
    waiting for budget never closes a cycle (see ``transfer.py``)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        """Take ``n`` bytes (at most the whole budget) and return what was taken."""
        n = min(n, self.total)
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        return n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.free += n
            self._cond.notify_all()
