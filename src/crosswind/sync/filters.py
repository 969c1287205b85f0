"""Include/exclude filters on keys. Pure.

Patterns are shell globs matched against the whole key (``fnmatchcase``:
``*`` also crosses ``/``, ``?`` is one character, ``[..]`` a set). A key is
selected when it matches at least one include (or there are none) and no
exclude. Filters apply to both sides, so an excluded key is never copied and
never deleted. Keys under ``PROBE_PREFIX`` (``crosswind preflight``'s
probe objects, removed right after they are written) are never selected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import translate

#: reserved for the permission probes of ``crosswind preflight``
PROBE_PREFIX = ".crosswind-probe/"


@dataclass(frozen=True)
class KeyFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prefix: str = ""
    _inc: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _exc: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def compile_all(globs: tuple[str, ...]) -> re.Pattern[str] | None:
            if not globs:
                return None
            return re.compile("|".join(f"(?:{translate(g)})" for g in globs), re.DOTALL)

        object.__setattr__(self, "_inc", compile_all(self.include))
        object.__setattr__(self, "_exc", compile_all(self.exclude))

    def __call__(self, key: str) -> bool:
        if not key.startswith(self.prefix) or key.startswith(PROBE_PREFIX):
            return False
        if self._inc is not None and not self._inc.match(key):
            return False
        return not (self._exc is not None and self._exc.match(key))

    @property
    def selects_all(self) -> bool:
        return not (self.include or self.exclude or self.prefix)
