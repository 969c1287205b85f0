"""The open-loop executor of a schedule: change *i* starts at ``t0 + at_s``
whether or not earlier ones finished (a load that waits for the system under
test hides how slow it got). How late each change starts is measured, so a
generator that falls behind is reported, never hidden.

Changes of one key run in schedule order: a change waits for the previous one
of its key (a delete never overtakes the write it deletes). At most
``max_in_flight`` run at once; a full house delays the next start, and that
delay is lateness too. What a change does is the caller's ``do``; an exception
from it is counted, never stops the load.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crosswind.loadtest.schedule import Op
from crosswind.secrets import redact

#: a generator is "behind" when its p99 start is this late, or any start this late
BEHIND_P99_S, BEHIND_MAX_S = 1.0, 5.0


def q(sorted_values: Sequence[float], quantile: float, scale: float = 1.0) -> float:
    """Nearest-rank quantile of an ascending list (0 for an empty one), rounded."""
    if not sorted_values:
        return 0.0
    return round(sorted_values[max(0, math.ceil(quantile * len(sorted_values)) - 1)] * scale, 3)


@dataclass
class PaceStats:
    target_rate: float
    duration_s: float
    launched: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    started_at: float = 0.0
    last_launch_at: float = 0.0
    finished_at: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def achieved_rate(self) -> float:
        """Changes done over the time they took (first start to last end)."""
        span = self.finished_at - self.started_at
        return round(self.completed / span, 2) if span > 0 else 0.0

    def fell_behind(self) -> bool:
        late = sorted(self.lateness)
        return bool(late) and (q(late, 0.99) > BEHIND_P99_S or late[-1] > BEHIND_MAX_S)

    def summary(self) -> dict[str, Any]:
        late = sorted(self.lateness)
        launch_span = self.last_launch_at - self.started_at
        return {
            "target_rate_per_s": self.target_rate, "duration_s": self.duration_s,
            "launched": self.launched, "completed": self.completed,
            "achieved_rate_per_s": self.achieved_rate(),
            "launch_rate_per_s": round((self.launched - 1) / launch_span, 2)
            if self.launched > 1 and launch_span > 0 else 0.0,
            "by_kind": dict(self.by_kind), "errors": dict(self.errors),
            "error_examples": self.error_examples[:10],
            "lateness_s": {"p50": q(late, 0.5), "p99": q(late, 0.99),
                           "max": round(late[-1], 3) if late else 0.0,
                           "over_1s": sum(1 for x in late if x > 1.0)},
            "fell_behind": self.fell_behind(),
            "latency_ms": {k: {"p50": q(sorted(v), 0.5, 1000), "p99": q(sorted(v), 0.99, 1000)}
                           for k, v in sorted(self.latency.items())},
            "max_in_flight": self.max_in_flight,
        }


Do = Callable[[Op], Awaitable[object]]


async def run_schedule(ops: Iterable[Op], do: Do, *, rate: float, duration_s: float,
                       max_in_flight: int = 64,
                       clock: Callable[[], float] = time.monotonic,
                       stats: PaceStats | None = None) -> PaceStats:
    """Run every op of ``ops`` at its time; returns when all have finished.
    ``stats`` (optional) is filled as it goes, for a caller that watches."""
    st = stats if stats is not None else PaceStats(rate, duration_s)
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    last_of_key: dict[int, asyncio.Task[None]] = {}
    t0 = clock()
    st.started_at = time.time()
    wall0 = st.started_at - t0

    async def one(op: Op, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.shield(before)
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            t = clock()
            try:
                await do(op)
            except Exception as exc:  # counted; the load goes on
                st.errors[f"{op.kind}: {type(exc).__name__}"] += 1
                if len(st.error_examples) < 10:
                    st.error_examples.append(redact(f"{op.kind} #{op.index}: "
                                                    f"{type(exc).__name__}: {exc}")[:300])
            else:
                st.by_kind[op.kind] += 1
                st.latency.setdefault(op.kind, []).append(clock() - t)
            finally:
                st.in_flight -= 1
        finally:
            st.completed += 1
            slots.release()
            if last_of_key.get(op.key) is asyncio.current_task():
                del last_of_key[op.key]

    for op in ops:
        due = t0 + op.at_s
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        now = clock()
        st.lateness.append(max(0.0, now - due))
        st.last_launch_at = wall0 + now
        st.launched += 1
        task = asyncio.create_task(one(op, last_of_key.get(op.key)))
        last_of_key[op.key] = task
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    st.finished_at = time.time()
    return st
