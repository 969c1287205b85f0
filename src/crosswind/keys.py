"""Partition and row keys from object names: a small pattern language. Pure; no I/O.

A *pattern* is literal text with fields in braces; it reads an object name into
named, typed fields. Two *templates* (same brace syntax) format the Azure Table
PartitionKey and RowKey from those fields::

    pattern       = "events/{date:%Y/%m/%d}/{carrier:[A-Z0-9]{2}}{flight:int}/"
                    "{origin:[A-Z]{3}}-{dest:[A-Z]{3}}/{event_type}-{event_id}.json"
                    (one string in the config; split here to fit)
    partition_key = "{carrier}{flight}_{date:%Y%m%d}"
    row_key       = "{event_id}"

Field kinds (the part after the first ``:``):

=================  ============================================================
``{f}``/``{f:str}`` free segment: one or more characters except ``/``
``{f:path}``        one or more characters, ``/`` included (several segments)
``{f:int}``         non-negative integer, canonical decimal (no sign, no leading 0)
``{f:int:N}``       non-negative integer written with exactly N digits (``0042``)
``{f:code:N}``      fixed-width code: exactly N ASCII letters or digits
``{f:uuid}``        UUID, canonical lower-case ``8-4-4-4-12`` form
``{f:%Y/%m/%d}``    date/time; directives ``%Y %m %d %H %M %S %f %%``, any
                    other text literal. Value: a ``date``, or a UTC ``datetime``
                    when a time directive is present; missing parts default to
                    the first day / midnight
``{f:re:REGEX}``    regex-constrained segment; any other spec is a regex too
                    (``{carrier:[A-Z0-9]{2}}``). No named groups or backrefs
=================  ============================================================

``{{`` and ``}}`` are literal braces. Free and path fields take the *shortest*
text that lets the rest of the pattern match, so ``{event_type}-{event_id}``
splits ``departure-6f1c-…`` at the first ``-``.

In templates a field is ``{f}``; a date field may be re-formatted with a
subset of the directives its pattern gives (``{date:%Y%m%d}``), an integer
zero-padded (``{flight:int:4}``).

Guarantees (property-tested): ``parse`` either returns fields that ``format``
back to exactly the same name, or raises ``NameParseError`` naming the
segment, the offset and the reason; it raises nothing else. Keys are checked
against the Azure Table rules (at most 1024 UTF-16 units; no ``/ \\ # ?`` and
no control characters), failures again as ``NameParseError``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from crosswind.errors import InvalidKey, KeyPatternError, NameParseError

FieldValue = str | int | date | datetime
Fields = Mapping[str, FieldValue]

#: Azure Blob and S3 both cap object names near 1024; longer input is refused
#: before any matching, which also bounds regex work on hostile names.
MAX_NAME_LENGTH = 1024
#: PartitionKey / RowKey: at most 1 KiB, counted in UTF-16 code units (Azure, Azurite)
MAX_KEY_LENGTH = 1024
_FORBIDDEN_IN_KEY = re.compile(r"[\x00-\x1f\x7f-\x9f/\\#?]")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def _snippet(text: str, limit: int = 40) -> str:
    if not text:
        return "the end of the name"
    seg = text.split("/", 1)[0] or text[:1]
    return repr(seg if len(seg) <= limit else seg[: limit - 3] + "...")


# -- field kinds ---------------------------------------------------------------------


class Kind(Protocol):
    """How one field reads from and writes to text."""

    def regex(self, *, lazy: bool) -> str: ...

    def describe(self) -> str: ...

    def convert(self, text: str) -> FieldValue:
        """Text the regex matched → value; ``ValueError`` says why it is invalid."""
        ...

    def render(self, value: FieldValue) -> str:
        """Value → text; ``ValueError`` says why the value cannot be written."""
        ...


@dataclass(frozen=True)
class FreeKind:
    multi_segment: bool = False

    def regex(self, *, lazy: bool) -> str:
        base = "." if self.multi_segment else "[^/]"
        return base + ("+?" if lazy else "+")

    def describe(self) -> str:
        return "one or more characters" if self.multi_segment else (
            "one or more characters other than '/'")

    def convert(self, text: str) -> FieldValue:
        return text

    def render(self, value: FieldValue) -> str:
        if not isinstance(value, str):
            raise ValueError(f"needs text, got {type(value).__name__}")
        if not value:
            raise ValueError("may not be empty")
        if not self.multi_segment and "/" in value:
            raise ValueError("may not contain '/'")
        return value


@dataclass(frozen=True)
class IntKind:
    width: int | None = None

    def regex(self, *, lazy: bool) -> str:
        return r"0|[1-9][0-9]*" if self.width is None else f"[0-9]{{{self.width}}}"

    def describe(self) -> str:
        if self.width is None:
            return "an integer without sign or leading zeros"
        return f"an integer of exactly {self.width} digits"

    def convert(self, text: str) -> FieldValue:
        return int(text)

    def render(self, value: FieldValue) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"needs an integer, got {type(value).__name__}")
        if value < 0:
            raise ValueError("needs a non-negative integer")
        text = str(value) if self.width is None else f"{value:0{self.width}d}"
        if self.width is not None and len(text) != self.width:
            raise ValueError(f"{value} does not fit in {self.width} digits")
        return text


@dataclass(frozen=True)
class CodeKind:
    width: int

    def regex(self, *, lazy: bool) -> str:
        return f"[A-Za-z0-9]{{{self.width}}}"

    def describe(self) -> str:
        return f"exactly {self.width} letters or digits"

    def convert(self, text: str) -> FieldValue:
        return text

    def render(self, value: FieldValue) -> str:
        if not isinstance(value, str) or not re.fullmatch(self.regex(lazy=False), value):
            raise ValueError(f"needs {self.describe()}")
        return value


@dataclass(frozen=True)
class UuidKind:
    _RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

    def regex(self, *, lazy: bool) -> str:
        return self._RE

    def describe(self) -> str:
        return "a lower-case UUID (8-4-4-4-12 hex digits)"

    def convert(self, text: str) -> FieldValue:
        return text

    def render(self, value: FieldValue) -> str:
        if not isinstance(value, str) or not re.fullmatch(self._RE, value):
            raise ValueError(f"needs {self.describe()}")
        return value


@dataclass(frozen=True)
class RegexKind:
    source: str

    @functools.cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.source, re.DOTALL)

    def regex(self, *, lazy: bool) -> str:
        return f"(?:{self.source})"

    def describe(self) -> str:
        return f"text matching /{self.source}/"

    def convert(self, text: str) -> FieldValue:
        return text

    def render(self, value: FieldValue) -> str:
        if not isinstance(value, str) or not self.compiled.fullmatch(value):
            raise ValueError(f"needs {self.describe()}")
        return value


# Date directives: regex of the digits, the component they set, width.
_DIRECTIVES: dict[str, tuple[str, str, int]] = {
    "Y": (r"[0-9]{4}", "year", 4),
    "m": (r"0[1-9]|1[0-2]", "month", 2),
    "d": (r"0[1-9]|[12][0-9]|3[01]", "day", 2),
    "H": (r"[01][0-9]|2[0-3]", "hour", 2),
    "M": (r"[0-5][0-9]", "minute", 2),
    "S": (r"[0-5][0-9]", "second", 2),
    "f": (r"[0-9]{6}", "microsecond", 6),
}
_RANGES = {"Y": "0001..9999", "m": "01..12", "d": "01..31", "H": "00..23", "M": "00..59",
           "S": "00..59", "f": "000000..999999"}
_TIME_DIRECTIVES = frozenset("HMSf")


def _date_tokens(fmt: str, where: str) -> tuple[tuple[str, str], ...]:
    """``%Y/%m`` → (("dir", "Y"), ("lit", "/"), ("dir", "m"))."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(("lit", c))
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise KeyPatternError(f"{where}: date format {fmt!r} ends with a lone '%'")
        d = fmt[i + 1]
        if d == "%":
            out.append(("lit", "%"))
        elif d in _DIRECTIVES:
            out.append(("dir", d))
        else:
            raise KeyPatternError(
                f"{where}: date directive %{d} is not supported (use %Y %m %d %H %M %S %f %%)"
            )
        i += 2
    return tuple(out)


@dataclass(frozen=True)
class DateKind:
    fmt: str
    tokens: tuple[tuple[str, str], ...]

    @property
    def directives(self) -> frozenset[str]:
        return frozenset(v for t, v in self.tokens if t == "dir")

    @property
    def has_time(self) -> bool:
        return bool(self.directives & _TIME_DIRECTIVES)

    def regex(self, *, lazy: bool) -> str:
        parts = []
        for t, v in self.tokens:
            if t == "lit":
                parts.append(re.escape(v))
            else:
                parts.append(f"(?:{_DIRECTIVES[v][0]})")
        return "".join(parts)

    def describe(self) -> str:
        return f"a date as {self.fmt!r}"

    def why(self, text: str) -> str:
        """Which part of ``text`` breaks the format (for error messages)."""
        i = 0
        for t, v in self.tokens:
            if t == "lit":
                if not text.startswith(v, i):
                    return f"expected {v!r} at position {i} of the date, found {text[i:i + 4]!r}"
                i += len(v)
                continue
            rx, comp, width = _DIRECTIVES[v]
            piece = text[i : i + width]
            if not re.fullmatch(rx, piece):
                return f"{comp} (%{v}) is {piece!r}; expected {width} digits {_RANGES[v]}"
            i += width
        return f"expected {self.describe()}"

    def convert(self, text: str) -> FieldValue:
        parts: dict[str, int] = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0,
                                 "second": 0, "microsecond": 0}
        i = 0
        for t, v in self.tokens:
            if t == "lit":
                i += len(v)
                continue
            _, comp, width = _DIRECTIVES[v]
            parts[comp] = int(text[i : i + width])
            i += width
        if parts["year"] == 0:
            raise ValueError(f"{text!r} has year 0000, which no calendar date has")
        try:
            dt = datetime(**parts, tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a real date ({exc})") from None
        return dt if self.has_time else dt.date()

    def render(self, value: FieldValue) -> str:
        return render_date(value, self.tokens, needs_time=self.has_time)


def render_date(value: FieldValue, tokens: tuple[tuple[str, str], ...], *,
                needs_time: bool) -> str:
    if not isinstance(value, date):
        raise ValueError(f"needs a date, got {type(value).__name__}")
    if needs_time and not isinstance(value, datetime):
        raise ValueError("needs a datetime (the format has a time)")
    out: list[str] = []
    for t, v in tokens:
        if t == "lit":
            out.append(v)
            continue
        _, comp, width = _DIRECTIVES[v]
        out.append(f"{getattr(value, comp):0{width}d}")
    return "".join(out)


def _kind(spec: str | None, where: str) -> Kind:
    if spec is None or spec in ("str", ""):
        return FreeKind()
    if spec == "path":
        return FreeKind(multi_segment=True)
    if spec == "uuid":
        return UuidKind()
    if spec == "int":
        return IntKind()
    if spec.startswith(("int:", "code:")) or spec == "code":
        kind, _, width = spec.partition(":")
        if not width.isdigit() or not 1 <= int(width) <= 64:
            raise KeyPatternError(f"{where}: {spec!r} needs a width 1..64, like {kind}:4")
        return IntKind(int(width)) if kind == "int" else CodeKind(int(width))
    if spec.startswith("%"):
        return DateKind(spec, _date_tokens(spec, where))
    source = spec[3:] if spec.startswith("re:") else spec
    if re.search(r"\(\?P[<=]|\\[1-9]|\\g<|\(\?P>", source):
        raise KeyPatternError(f"{where}: regex {source!r} may not use named groups or backrefs")
    try:
        compiled = re.compile(source, re.DOTALL)
    except re.error as exc:
        raise KeyPatternError(f"{where}: regex {source!r} is not valid: {exc}") from None
    if compiled.groups > 50:
        raise KeyPatternError(f"{where}: regex {source!r} has too many groups")
    return RegexKind(source)


# -- the brace syntax ----------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    text: str

    @property
    def label(self) -> str:
        return f"literal {self.text!r}"


@dataclass(frozen=True)
class Field:
    name: str
    spec: str | None

    @property
    def label(self) -> str:
        return "{" + self.name + (f":{self.spec}" if self.spec is not None else "") + "}"


Element = Literal | Field


def split_braces(text: str, where: str) -> list[Element]:
    """Literal text and ``{name[:spec]}`` fields; braces inside a spec must balance."""
    out: list[Element] = []
    lit: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "{" and text.startswith("{{", i):
            lit.append("{")
            i += 2
        elif c == "}" and text.startswith("}}", i):
            lit.append("}")
            i += 2
        elif c == "}":
            raise KeyPatternError(f"{where}: unmatched '}}' at offset {i} (write '}}}}' for a "
                                  "literal brace)")
        elif c == "{":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise KeyPatternError(f"{where}: field opened at offset {i} is never closed")
            body = text[i + 1 : j - 1]
            name, sep, spec = body.partition(":")
            if not _FIELD_NAME.match(name):
                raise KeyPatternError(
                    f"{where}: field name {name!r} at offset {i} must be letters, digits or _"
                )
            if lit:
                out.append(Literal("".join(lit)))
                lit = []
            out.append(Field(name, spec if sep else None))
            i = j
        else:
            lit.append(c)
            i += 1
    if lit:
        out.append(Literal("".join(lit)))
    return out


# -- patterns: name → fields ---------------------------------------------------------


class NamePattern:
    """A compiled ``[keys].pattern``."""

    def __init__(self, pattern: str) -> None:
        where = "[keys].pattern"
        if not pattern:
            raise KeyPatternError(f"{where} is empty")
        self.source = pattern
        self.elements = split_braces(pattern, where)
        self.kinds: dict[str, Kind] = {}
        for e in self.elements:
            if isinstance(e, Field):
                if e.name in self.kinds:
                    raise KeyPatternError(f"{where}: field {{{e.name}}} appears twice")
                self.kinds[e.name] = _kind(e.spec, f"{where} field {{{e.name}}}")
        if not self.kinds:
            raise KeyPatternError(f"{where}: {pattern!r} has no fields")
        self._full = re.compile(self._regex(self.elements, lazy=True) + r"\Z", re.DOTALL)
        self._prefixes: dict[tuple[int, bool], re.Pattern[str]] = {}

    def _regex(self, elements: list[Element], *, lazy: bool) -> str:
        parts = []
        for e in elements:
            if isinstance(e, Literal):
                parts.append(re.escape(e.text))
            else:
                parts.append(f"(?P<f_{e.name}>{self.kinds[e.name].regex(lazy=lazy)})")
        return "".join(parts)

    def _prefix(self, n: int, lazy: bool) -> re.Pattern[str]:
        """The first ``n`` elements, unanchored at the end (only for explaining failures)."""
        key = (n, lazy)
        if key not in self._prefixes:
            self._prefixes[key] = re.compile(self._regex(self.elements[:n], lazy=lazy), re.DOTALL)
        return self._prefixes[key]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def describe(self) -> dict[str, str]:
        return {name: kind.describe() for name, kind in self.kinds.items()}

    def parse(self, name: str) -> dict[str, FieldValue]:
        """Fields of ``name``; ``NameParseError`` if it does not fit."""
        if not name:
            raise NameParseError(name, "the name", 0, "the name is empty")
        if len(name) > MAX_NAME_LENGTH:
            raise NameParseError(
                name, "the name", MAX_NAME_LENGTH,
                f"the name is {len(name)} characters long; object names hold at most "
                f"{MAX_NAME_LENGTH}",
            )
        m = self._full.match(name)
        if m is None:
            raise self._explain(name)
        out: dict[str, FieldValue] = {}
        for e in self.elements:
            if isinstance(e, Field):
                text = m.group(f"f_{e.name}")
                try:
                    out[e.name] = self.kinds[e.name].convert(text)
                except ValueError as exc:
                    raise NameParseError(name, e.label, m.start(f"f_{e.name}"), str(exc)) from None
        # An ambiguous pattern ({a}-{b} on "x-y-z") has several readings; the
        # shortest-match rule picks one, and it must read back as the same name.
        try:
            again = self.format(out)
        except InvalidKey as exc:
            raise NameParseError(name, "the pattern", 0, f"fields do not write back: {exc}"
                                 ) from None
        if again != name:
            raise NameParseError(name, "the pattern", 0,
                                 f"ambiguous: the fields read back as {again!r}")
        return out

    def _explain(self, name: str) -> NameParseError:
        """Which element stopped the match, where, and why."""
        n = len(self.elements)
        for k in range(n):
            if self._prefix(k + 1, True).match(name):
                continue
            prev = self._prefix(k, False).match(name) if k else None
            at = prev.end() if prev else 0
            e = self.elements[k]
            rest = name[at:]
            if isinstance(e, Literal):
                why = f"expected {e.text!r}, found {_snippet(rest)}"
                before = self.elements[k - 1] if k else None
                if isinstance(before, Field) and prev is not None:
                    taken = prev.group(f"f_{before.name}")
                    why += f" (after {before.label} took {taken[-40:]!r}"
                    if (isinstance(self.kinds[before.name], IntKind) and taken == "0"
                            and rest[:1].isdigit()):
                        why += "; integers are written without leading zeros"
                    why += ")"
                return NameParseError(name, e.label, at, why)
            kind = self.kinds[e.name]
            if isinstance(kind, DateKind):
                return NameParseError(name, e.label, at, kind.why(rest))
            return NameParseError(name, e.label, at,
                                  f"expected {kind.describe()}, found {_snippet(rest)}")
        whole = self._prefix(n, False).match(name)
        at = whole.end() if whole else 0
        return NameParseError(name, "the end of the pattern", at,
                              f"unexpected text {_snippet(name[at:])} after the pattern")

    def format(self, fields: Fields) -> str:
        """The name these fields make; ``InvalidKey`` if a value does not fit its field."""
        out: list[str] = []
        for e in self.elements:
            if isinstance(e, Literal):
                out.append(e.text)
                continue
            if e.name not in fields:
                raise InvalidKey(f"field {{{e.name}}} has no value")
            try:
                out.append(self.kinds[e.name].render(fields[e.name]))
            except ValueError as exc:
                raise InvalidKey(f"field {e.label}: {exc}") from None
        return "".join(out)


# -- templates: fields → key ---------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    name: str
    render: Kind


class KeyTemplate:
    """``[keys].partition_key`` or ``.row_key`` checked against the pattern's fields."""

    def __init__(self, template: str, pattern: NamePattern, what: str) -> None:
        where = f"[keys].{what}"
        self.source = template
        self.what = what
        self.parts: list[str | _Ref] = []
        for e in split_braces(template, where):
            if isinstance(e, Literal):
                bad = _FORBIDDEN_IN_KEY.search(e.text)
                if bad:
                    raise KeyPatternError(
                        f"{where}: literal text holds {bad.group()!r}, which Azure Table keys "
                        "cannot hold"
                    )
                self.parts.append(e.text)
                continue
            kind = pattern.kinds.get(e.name)
            if kind is None:
                raise KeyPatternError(
                    f"{where}: {{{e.name}}} is not a field of the pattern "
                    f"(fields: {', '.join(pattern.fields)})"
                )
            self.parts.append(_Ref(e.name, self._renderer(kind, e, where)))

    @staticmethod
    def _renderer(kind: Kind, e: Field, where: str) -> Kind:
        if e.spec is None:
            return kind
        if isinstance(kind, DateKind) and e.spec.startswith("%"):
            re_kind = DateKind(e.spec, _date_tokens(e.spec, where))
            missing = re_kind.directives - kind.directives
            if missing:
                raise KeyPatternError(
                    f"{where}: {e.label} uses {' '.join('%' + d for d in sorted(missing))}, "
                    f"which the pattern's {{{e.name}:{kind.fmt}}} does not give"
                )
            return re_kind
        if isinstance(kind, IntKind) and (e.spec == "int" or e.spec.startswith("int:")):
            return _kind(e.spec, where)
        raise KeyPatternError(f"{where}: {e.label}: a {type(kind).__name__[:-4].lower()} field "
                              "takes no format here")

    def format(self, fields: Fields) -> str:
        """The key; ``InvalidKey`` (message starts with the template's name) if it cannot be."""
        try:
            return self._format(fields)
        except ValueError as exc:
            raise InvalidKey(f"{self.what}: {exc}") from None

    def _format(self, fields: Fields) -> str:
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            if p.name not in fields:
                raise ValueError(f"field {{{p.name}}} has no value")
            try:
                text = p.render.render(fields[p.name])
            except ValueError as exc:
                raise ValueError(f"field {{{p.name}}}: {exc}") from None
            bad = _FORBIDDEN_IN_KEY.search(text)
            if bad:
                raise ValueError(
                    f"field {{{p.name}}} = {text[:60]!r} holds {bad.group()!r}, which Azure "
                    "Table keys cannot hold"
                )
            out.append(text)
        key = "".join(out)
        if utf16_len(key) > MAX_KEY_LENGTH:
            raise ValueError(
                f"the key is {utf16_len(key)} UTF-16 units long; Azure Table keys hold at "
                f"most {MAX_KEY_LENGTH}"
            )
        return key


@dataclass(frozen=True, slots=True)
class RowKeys:
    """The keys of the metadata row of one object, and the fields they came from."""

    partition_key: str
    row_key: str
    fields: Mapping[str, FieldValue]


class KeyTemplates(Protocol):
    """The three texts a ``KeySpec`` is built from. ``[keys]`` of the config
    (``config.KeysConfig``) is one; keys.py stays below config.py by asking only
    for this shape."""

    @property
    def pattern(self) -> str: ...

    @property
    def partition_key(self) -> str: ...

    @property
    def row_key(self) -> str: ...


class KeySpec:
    """Pattern plus the two key templates: object name → (PartitionKey, RowKey)."""

    def __init__(self, pattern: str, partition_key: str, row_key: str) -> None:
        self.pattern = NamePattern(pattern)
        self.partition_key = KeyTemplate(partition_key, self.pattern, "partition_key")
        self.row_key = KeyTemplate(row_key, self.pattern, "row_key")

    @classmethod
    def from_config(cls, cfg: KeyTemplates) -> KeySpec:
        return cls(cfg.pattern, cfg.partition_key, cfg.row_key)

    def parse(self, name: str) -> dict[str, FieldValue]:
        return self.pattern.parse(name)

    def format_name(self, fields: Fields) -> str:
        return self.pattern.format(fields)

    def keys_from_fields(self, fields: Fields) -> tuple[str, str]:
        return self.partition_key.format(fields), self.row_key.format(fields)

    def keys(self, name: str) -> RowKeys:
        """Parse ``name`` and format its keys; every failure is a ``NameParseError``."""
        fields = self.pattern.parse(name)
        keys: list[str] = []
        for template in (self.partition_key, self.row_key):
            try:
                keys.append(template._format(fields))
            except ValueError as exc:
                raise NameParseError(name, template.what, 0, str(exc)) from None
        return RowKeys(keys[0], keys[1], fields)


def fields_json(fields: Fields) -> dict[str, str | int]:
    """Fields as JSON-friendly values (dates in ISO 8601)."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()}
