"""The max-delete guard: one for every delete path. Pure (the clock is injected).

A bad listing, a wrong prefix or one careless ``deleteMany`` on the primary must
never wipe the replica. Every path that deletes on a replica — the object sync's
``--delete``, the metadata reconciles, the change-stream deletes, DLQ replays,
conflict resolution and the replication service — asks one ``DeleteGuard``
before it deletes. The guard counts the deletes it allowed within a window (a
one-shot run is one window; the service slides a window of ``window_s``) and
refuses a request that would take the count over ``max_count``, or over
``max_percent`` of ``base`` (the replica items in scope, as last listed).

Refused deletes are never dropped by the caller: a run aborts with nothing of
the refused batch deleted; the service holds them for an operator.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from crosswind.errors import DeleteLimitExceeded


def guard_reason(deletes: int, base: int, max_count: int, max_percent: float) -> str | None:
    """Why ``deletes`` out of ``base`` replica items is too many, or None."""
    if deletes > max_count:
        return f"{deletes} deletes exceed max_delete_count = {max_count}"
    if max_percent >= 100:
        # "Everything may go": over a window the base shrinks as deletes land, so a
        # ratio of the deletes to what is left could pass 100 % and refuse anyway.
        return None
    if base > 0 and deletes * 100.0 / base > max_percent:
        return (f"{deletes} deletes are {deletes * 100.0 / base:.1f}% of {base} items, over "
                f"max_delete_percent = {max_percent:g}")
    if base <= 0 and deletes > 0:
        # Nothing known to be there: any delete is 100 % of what was seen.
        return (f"{deletes} deletes with no replica items counted in scope, over "
                f"max_delete_percent = {max_percent:g}")
    return None


@dataclass
class DeleteGuard:
    """Counts allowed deletes in a sliding window (``window_s = None``: forever,
    i.e. one run) and refuses what would exceed the limits."""

    max_count: int
    max_percent: float
    window_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    _allowed: deque[tuple[float, int]] = field(default_factory=deque, repr=False)
    _total: int = 0

    def _expire(self) -> None:
        if self.window_s is None:
            return
        horizon = self.clock() - self.window_s
        while self._allowed and self._allowed[0][0] <= horizon:
            self._total -= self._allowed.popleft()[1]

    @property
    def counted(self) -> int:
        """Deletes allowed within the current window."""
        self._expire()
        return self._total

    def check(self, n: int, base: int) -> str | None:
        """Why ``n`` more deletes now would be too many (counting those already
        allowed in the window), or None. Counts nothing."""
        if n <= 0:
            return None
        return guard_reason(self.counted + n, base, self.max_count, self.max_percent)

    def admit(self, n: int, base: int) -> str | None:
        """``check``, and count the ``n`` deletes when they are allowed."""
        reason = self.check(n, base)
        if reason is None and n > 0:
            self._allowed.append((self.clock(), n))
            self._total += n
        return reason

    def require(self, n: int, base: int, what: str = "deletes") -> None:
        """``admit`` or raise ``DeleteLimitExceeded`` naming the reason."""
        reason = self.admit(n, base)
        if reason is not None:
            raise DeleteLimitExceeded(f"refusing {what}: {reason}; nothing was deleted")
