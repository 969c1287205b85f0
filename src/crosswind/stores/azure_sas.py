"""Azure SAS tokens: what one allows, checked before it is used (pure).

A token's fields: ``sv`` version, ``st`` start, ``se`` expiry, ``sp`` permissions,
``spr`` allowed protocols, and for an account SAS ``ss`` (services: b blob,
t table, q queue, f file) and ``srt`` (resource types: s service, c
container, o object); a service SAS names its resource in ``sr`` (container,
blob) or ``tn`` (a table).

Refused: an expired or not yet valid token, one without a permission the work
needs (the missing letters are named), an account SAS that does not cover the
service or resource types, and — outside local emulators — one that allows
plain http (``spr=https,http``). A token expiring within
``[security] sas_min_validity_h`` is warned about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qs

from crosswind.errors import AuthError

Service = Literal["blob", "table", "queue"]
_SERVICE_LETTER = {"blob": "b", "table": "t", "queue": "q"}
#: the resource types an account SAS needs per service: containers/tables/queues
#: are listed or read (c), and objects (blobs, entities, messages) touched (o)
_RESOURCE_TYPES = {"blob": "co", "table": "co", "queue": "co"}

#: permissions per service and kind of work (letters as Azure spells them)
NEEDS: dict[tuple[Service, str], str] = {
    ("blob", "read"): "rl",        # list the container, read blobs
    ("blob", "write"): "rlcw",     # + create and write blobs (read/list: compare, verify)
    ("blob", "delete"): "d",       # deletes propagated to the replica
    ("table", "read"): "r",        # query entities
    ("table", "write"): "raud",    # + add, update, delete entities
    ("queue", "read"): "rp",       # peek/get (r), delete after processing (p)
    ("queue", "write"): "rpu",     # + update (visibility) messages
}
LETTER_NAMES = {"r": "read", "l": "list", "c": "create", "w": "write", "d": "delete",
                "a": "add", "u": "update", "p": "process"}


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:  # a date alone: "2026-12-31"
            t = datetime.strptime(raw, "%Y-%m-%d")
        except ValueError:
            return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SasToken:
    version: str | None
    start: datetime | None
    expires: datetime | None
    permissions: str
    protocols: str | None
    services: str | None
    resource_types: str | None
    resource: str | None
    #: a field that is present but does not parse (shown, refused)
    unreadable: tuple[str, ...] = ()

    @property
    def is_account_sas(self) -> bool:
        return self.services is not None or self.resource_types is not None

    def describe(self) -> str:
        """One line, no signature: what the token allows, for preflight output."""
        parts = [f"sp={self.permissions or '-'}"]
        for name, v in (("ss", self.services), ("srt", self.resource_types),
                        ("spr", self.protocols)):
            if v:
                parts.append(f"{name}={v}")
        if self.expires:
            parts.append(f"se={self.expires.isoformat(timespec='seconds')}")
        return " ".join(parts)


def parse_sas(token: str) -> SasToken:
    q = {k: v[0] for k, v in parse_qs(token.lstrip("?"), keep_blank_values=True).items()}
    bad = tuple(n for n in ("st", "se") if q.get(n) and _time(q.get(n)) is None)
    return SasToken(q.get("sv"), _time(q.get("st")), _time(q.get("se")), q.get("sp", ""),
                    q.get("spr"), q.get("ss"), q.get("srt"), q.get("sr") or q.get("tn"), bad)


def sas_problems(token: SasToken, service: Service, needed: str, *, emulator: bool,
                 now: datetime | None = None) -> list[str]:
    """Why ``token`` cannot do the work (empty: it can)."""
    now = now or datetime.now(UTC)
    out: list[str] = []
    for name in token.unreadable:
        out.append(f"its {name} is not a date/time")
    if token.expires is not None and token.expires <= now:
        out.append(f"it expired at {token.expires.isoformat(timespec='seconds')}")
    if token.start is not None and token.start > now:
        out.append(f"it is not valid before {token.start.isoformat(timespec='seconds')}")
    missing = "".join(p for p in dict.fromkeys(needed) if p not in token.permissions)
    if missing:
        names = ", ".join(f"{p} ({LETTER_NAMES.get(p, p)})" for p in missing)
        out.append(f"it lacks permission {names}: has sp={token.permissions or '-'}, "
                   f"needs {needed}")
    if token.services is not None and _SERVICE_LETTER[service] not in token.services:
        out.append(f"it is an account SAS for services ss={token.services}, not the "
                   f"{service} service ({_SERVICE_LETTER[service]})")
    if token.resource_types is not None:
        lacking = "".join(r for r in _RESOURCE_TYPES[service] if r not in token.resource_types)
        if lacking:
            out.append(f"its resource types srt={token.resource_types} lack {lacking} "
                       "(c: containers/tables/queues, o: objects)")
    if token.protocols and "http" in [p.strip() for p in token.protocols.split(",")] \
            and not emulator:
        out.append(f"it allows plain http (spr={token.protocols}); issue it for https only "
                   "(spr=https)")
    return out


def sas_warnings(token: SasToken, min_validity_h: float, now: datetime | None = None
                 ) -> list[str]:
    now = now or datetime.now(UTC)
    if token.expires is None:
        return []
    left = token.expires - now
    if timedelta(0) < left < timedelta(hours=min_validity_h):
        hours = left.total_seconds() / 3600
        return [f"it expires in {hours:.1f} h (at {token.expires.isoformat(timespec='seconds')}"
                f"), sooner than [security] sas_min_validity_h = {min_validity_h:g}"]
    return []


def check_sas_token(raw: str, service: Service, needed: str, what: str, *,
                    emulator: bool) -> SasToken:
    """``AuthError`` (one line, naming the missing letters) when the token cannot do
    the work; the parsed token otherwise."""
    token = parse_sas(raw)
    problems = sas_problems(token, service, needed, emulator=emulator)
    if problems:
        raise AuthError(f"{what}: the SAS token is refused: {'; '.join(problems)}")
    return token
