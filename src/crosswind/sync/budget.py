"""A cap on object bytes held in memory across all transfers.

Bytes are taken as a ``Lease``, an ownership object: whoever holds it gives it
back with ``release()``, which is synchronous and idempotent, so it is safe in
``finally`` blocks, on cancellation and when two owners (the part that read the
bytes and the task that writes them) both try. Code that takes a lease puts it
in a ``LeaseSet`` (or uses ``hold``), whose exit releases whatever is still out:
a lease can be released early, but never forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Lease:
    """``size`` bytes of a ``ByteBudget``, owned until ``release()``."""

    __slots__ = ("_budget", "size")

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self._budget: ByteBudget | None = budget
        self.size = size

    @property
    def held(self) -> bool:
        return self._budget is not None

    def release(self) -> None:
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self.size)


class ByteBudget:
    """Counting semaphore over bytes. Each object acquires its pieces in order
    and every piece is released once written, whatever happens to others, so
    waiting for budget never closes a cycle (see ``transfer.py``)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        #: the most bytes held at once so far (what a run's copies needed)
        self.peak_held = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, n: int) -> Lease:
        """Take ``n`` bytes (at most the whole budget) as a lease."""
        n = min(n, self.total)
        while self.free < n:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        # No await between the check and the taking: nobody else can take them.
        self.free -= n
        self.peak_held = max(self.peak_held, self.total - self.free)
        return Lease(self, n)

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[Lease]:
        """``acquire`` for the duration of a block."""
        lease = await self.acquire(n)
        try:
            yield lease
        finally:
            lease.release()

    def _give_back(self, n: int) -> None:
        self.free += n
        # Wake every waiter; each checks again whether its size fits now.
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


class LeaseSet:
    """Every lease one operation took; ``release_all`` (or leaving the ``with``
    block) returns those not released yet, on every path out."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self._leases: list[Lease] = []

    async def acquire(self, n: int) -> Lease:
        lease = await self.budget.acquire(n)
        self._leases.append(lease)
        return lease

    def release_all(self) -> None:
        for lease in self._leases:
            lease.release()
        self._leases.clear()

    def __enter__(self) -> LeaseSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()
