"""Resolving references: the provider of each scheme, values cached for
``[security] secret_ttl_s``, and a refresh that fetches again now (when a
store's credentials were refused: a rotated key, SAS or password).

Every value is registered with the redactor before it is returned. A refresh
asked for within ``MIN_REFRESH_S`` of the last fetch returns that fetch (many
requests failing at once refresh once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from crosswind.errors import SecretError
from crosswind.secrets import settings as _settings
from crosswind.secrets.redaction import REDACTOR
from crosswind.secrets.references import Reference, Scheme, parse_reference
from crosswind.secrets.settings import SecretSettings

if TYPE_CHECKING:
    from crosswind.config import Config


class Provider(Protocol):
    """What a scheme's provider does (``providers.py``): the value now, or
    ``SecretError`` naming ``where`` and the reference (never a value)."""

    def fetch(self, ref: Reference, where: str) -> str: ...


#: scheme -> provider factory; ``crosswind.secrets`` registers the providers
FACTORIES: dict[Scheme, Callable[[SecretSettings], Provider]] = {}

MIN_REFRESH_S = 5.0


@dataclass
class _Entry:
    value: str
    fetched_at: float
    #: how often the value changed since it was first fetched (a rotation)
    changes: int = 0


class SecretCache:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._ref_locks: dict[str, threading.Lock] = {}
        #: fetches made, per scheme (tests and status read it)
        self.fetches: dict[str, int] = {}

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._providers.clear()

    def _provider(self, scheme: str) -> Provider:
        with self._lock:
            p = self._providers.get(scheme)
            if p is None:
                p = FACTORIES[scheme](_settings.current())  # type: ignore[index]
                self._providers[scheme] = p
            return p

    def get(self, ref: Reference, where: str, *, refresh: bool = False) -> str:
        with self._lock:
            lock = self._ref_locks.setdefault(ref.text, threading.Lock())
        with lock:
            now = time.monotonic()
            entry = self._entries.get(ref.text)
            if entry is not None:
                age = now - entry.fetched_at
                if (not refresh and age < _settings.current().ttl_s) or \
                        (refresh and age < MIN_REFRESH_S):
                    return entry.value
            value = self._provider(ref.scheme).fetch(ref, where)
            REDACTOR.register(value)
            with self._lock:
                self.fetches[ref.scheme] = self.fetches.get(ref.scheme, 0) + 1
                changes = entry.changes + (entry.value != value) if entry else 0
                self._entries[ref.text] = _Entry(value, time.monotonic(), changes)
            return value

    def rotations(self, text: str) -> int:
        """How often the value of reference ``text`` was seen to change."""
        entry = self._entries.get(text)
        return entry.changes if entry else 0


CACHE = SecretCache()


def resolve(value: str, *, where: str, allow_literal: bool, refresh: bool = False
            ) -> SecretStr:
    """The secret a setting names; ``where`` names the setting for errors.

    A reference is resolved through its provider (cached; ``refresh`` fetches
    again); a literal is refused unless ``allow_literal`` (a local emulator's
    public keys). Error messages name the setting and the reference, never a value.
    """
    ref = parse_reference(value, where=where)
    if ref is None:
        if not allow_literal:
            raise SecretError(
                f"{where}: a literal secret is refused; give a reference (env:NAME, "
                "file:PATH, keyvault://VAULT/NAME or secretsmanager:NAME), or set "
                "emulator = true in this section for a local emulator")
        REDACTOR.register(value)
        return SecretStr(value)
    return SecretStr(CACHE.get(ref, where, refresh=refresh))


def configure(cfg: Config | SecretSettings) -> SecretSettings:
    """Make ``cfg``'s settings the process's (``settings.current()``). Changed
    settings drop the cached values and the providers' clients (they may
    depend on them)."""
    if _settings.install(cfg):
        CACHE.reset()
    return _settings.current()
