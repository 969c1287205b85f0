"""The schedule of a load: which change happens when, to which key, of what
size, from the rate, the duration, the mix, a size histogram and a seed. Pure;
no I/O, no clock.

* Change *i* is due at ``i / rate`` seconds (open loop: it is due whether or
  not earlier ones finished); there are ``floor(rate * duration)`` of them.
* Kinds follow the mix exactly, not by chance: change *i* is of the kind
  furthest behind its share so far (the largest deficit, ties in mix order),
  so every kind's count ends within one of its share and stays within two on
  the way. A kind that needs an existing key when none exists yields to the
  next one behind.
* ``new`` creates key ordinal ``existing + n`` (0 .. existing-1 exist before
  the load); ``delete`` removes one; every other kind changes one that exists
  by then, picked at random (seeded). Sizes of new and rewritten objects are
  drawn from the histogram (seeded).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from crosswind.inventory import SIZE_BOUNDS

#: what ``crosswind loadtest`` writes: new objects with their rows, objects rewritten
#: (and their rows), metadata rows changed alone, objects and rows deleted
LOADTEST_KINDS = ("new", "overwrite", "meta", "delete")
CREATE, REMOVE = "new", "delete"
DEFAULT_MIX = "new=60,overwrite=20,meta=10,delete=10"


class ScheduleError(ValueError):
    """A bad rate, duration or mix; the message is one line naming the option."""


@dataclass(frozen=True, slots=True)
class Op:
    """Change ``index`` of the schedule."""

    index: int
    #: due this many seconds after the load starts
    at_s: float
    kind: str
    #: ordinal of the key it changes
    key: int
    #: bytes of the object it writes (0: it writes none)
    size: int = 0


def parse_mix(text: str, kinds: Sequence[str] = LOADTEST_KINDS) -> dict[str, float]:
    """``new=60,overwrite=20,...`` → weights; kinds left out weigh 0."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ScheduleError(f"--mix: {part.strip()!r} is not KIND=WEIGHT "
                                f"(kinds: {', '.join(kinds)})")
        if name not in kinds:
            raise ScheduleError(f"--mix: unknown kind {name!r} (one of {', '.join(kinds)})")
        if name in mix:
            raise ScheduleError(f"--mix: {name} is given twice")
        try:
            weight = float(value)
        except ValueError:
            raise ScheduleError(f"--mix: the weight of {name} is not a number: "
                                f"{value.strip()!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ScheduleError(f"--mix: the weight of {name} must be a number >= 0, "
                                f"not {value.strip()}")
        mix[name] = weight
    if mix.get(CREATE, 0) <= 0:
        raise ScheduleError(f"--mix: {CREATE} needs a weight > 0 (the other kinds change "
                            "keys the load created)")
    return mix


def check_load(rate: float, duration_s: float) -> None:
    if not math.isfinite(rate) or rate <= 0:
        raise ScheduleError(f"--rate must be a number of changes per second > 0, not {rate:g}")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ScheduleError(f"--duration must be a number of seconds > 0, not {duration_s:g}")
    if rate * duration_s < 1:
        raise ScheduleError(f"--rate {rate:g} for --duration {duration_s:g} s is less than one "
                            "change")


def planned_count(rate: float, duration_s: float) -> int:
    # (a hair of tolerance: 10/s for 3 s is 30 changes, though 10 * 3.0 may not be exact)
    return math.floor(rate * duration_s + 1e-9)


@dataclass(frozen=True, slots=True)
class SizeClass:
    """One class of the inventory's size histogram: ``[lo, hi)`` bytes."""

    count: int
    mean: int
    lo: int
    hi: int


class SizeHistogram:
    """Object sizes as an estate has them: a class by its share of the objects,
    then a size around the class's mean size (±25 %, within the class)."""

    def __init__(self, classes: Sequence[SizeClass]) -> None:
        self.classes = tuple(c for c in classes if c.count > 0)
        if not self.classes:
            raise ScheduleError("the size histogram has no objects")
        self._cum: list[int] = []
        total = 0
        for c in self.classes:
            total += c.count
            self._cum.append(total)

    @classmethod
    def from_counts(cls, counts: Sequence[tuple[int, int]]) -> SizeHistogram:
        """From (objects, bytes) per class, from the inventory's class bounds (an
        ``Inventory.histogram``, or a report's ``size_histogram``, whose class a
        mean size tells)."""
        classes = []
        for n, total in counts:
            if n <= 0:
                continue
            mean = total // n
            i = bisect.bisect_right(SIZE_BOUNDS, mean)
            lo = SIZE_BOUNDS[i - 1] if i > 0 else 0
            hi = SIZE_BOUNDS[i] if i < len(SIZE_BOUNDS) else max(mean * 2, lo + 1)
            classes.append(SizeClass(n, mean, lo, hi))
        return cls(classes)

    @classmethod
    def from_report(cls, report: Mapping[str, object]) -> SizeHistogram:
        """From an inventory report (``crosswind inventory --json``)."""
        rows = report.get("size_histogram")
        if not isinstance(rows, list):
            raise ScheduleError("the histogram file is not an inventory report (no "
                                "size_histogram list; write one with crosswind inventory "
                                "--json)")
        try:
            counts = [(int(r["objects"]), int(r["bytes"])) for r in rows]
        except (KeyError, TypeError, ValueError):
            raise ScheduleError("the histogram file's size_histogram entries need objects "
                                "and bytes") from None
        return cls.from_counts(counts)

    def sample(self, rng: random.Random, cap: int | None = None) -> int:
        c = self.classes[bisect.bisect_right(self._cum, rng.randrange(self._cum[-1]))]
        size = int(c.mean * rng.uniform(0.75, 1.25))
        size = min(max(size, c.lo), c.hi - 1) if c.hi > c.lo else c.lo
        return min(size, cap) if cap is not None else size

    def as_dict(self) -> list[dict[str, int]]:
        return [{"objects": c.count, "mean_bytes": c.mean, "from": c.lo, "below": c.hi}
                for c in self.classes]


#: sizes of the reference flight-event estate, for a primary with no objects yet:
#: mostly 1-16 KiB events, a few tracks and raw dumps up to 256 KiB
FLIGHT_EVENT_SIZES = SizeHistogram.from_counts(
    [(0, 0), (0, 0), (30, 30 * 2500), (60, 60 * 7000), (8, 8 * 30_000), (2, 2 * 120_000)])


class _Live:
    """Existing key ordinals: O(1) random pick and removal (seeded)."""

    def __init__(self, existing: int) -> None:
        self.items = list(range(existing))
        self.index = {k: k for k in self.items}

    def add(self, key: int) -> None:
        self.index[key] = len(self.items)
        self.items.append(key)

    def remove(self, key: int) -> None:
        i = self.index.pop(key)
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.index[last] = i

    def pick(self, rng: random.Random) -> int:
        return self.items[rng.randrange(len(self.items))]

    def __len__(self) -> int:
        return len(self.items)


def plan(rate: float, duration_s: float, mix: Mapping[str, float], sizes: SizeHistogram,
         seed: int, *, existing: int = 0, max_size: int | None = None,
         sized: Sequence[str] = ("new", "overwrite")) -> Iterator[Op]:
    """The schedule, streamed (memory: the existing keys, not the changes).
    ``sized``: the kinds that write an object's bytes (they get a size)."""
    check_load(rate, duration_s)
    kinds = [k for k, w in mix.items() if w > 0]
    if CREATE not in kinds:
        raise ScheduleError(f"--mix: {CREATE} needs a weight > 0")
    total = sum(mix[k] for k in kinds)
    share = {k: mix[k] / total for k in kinds}
    done = dict.fromkeys(kinds, 0)
    rng = random.Random(seed)
    live = _Live(existing)
    next_key = existing
    for i in range(planned_count(rate, duration_s)):
        # the kind furthest behind its share; ties in mix order (max keeps the first)
        order = sorted(kinds, key=lambda k: (i + 1) * share[k] - done[k], reverse=True)
        kind = next(k for k in order if k == CREATE or len(live) > 0)
        done[kind] += 1
        if kind == CREATE:
            key = next_key
            next_key += 1
            live.add(key)
        else:
            key = live.pick(rng)
            if kind == REMOVE:
                live.remove(key)
        size = sizes.sample(rng, max_size) if kind in sized else 0
        yield Op(i, i / rate, kind, key, size)
