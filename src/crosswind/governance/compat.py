"""JSON Schema compatibility, as Confluent's schema registry defines the modes.
Pure: no I/O.

``subschema(writer, reader)`` answers "does every instance valid under
``writer`` also validate under ``reader``?" It is *sound*, not complete: an
empty answer is a proof, a non-empty one lists what could not be proven (one
reason per line: ``PATH: KEYWORD: why``). Property-tested that way round
(``tests/unit/test_governance_compat.py``).

The keyword subset (Draft 2020-12):

* ``type`` (``integer`` inside ``number``), ``enum``, ``const``;
* numbers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
  ``multipleOf``; strings: ``minLength``, ``maxLength``, ``pattern`` (the reader's
  pattern must be the writer's, character for character), ``format`` (asserted, as
  the validation before write checks formats);
* arrays: ``items`` (one schema), ``minItems``, ``maxItems``, ``uniqueItems``;
* objects: ``properties``, ``required``, ``additionalProperties`` (boolean or a
  schema), ``minProperties``, ``maxProperties``;
* ``anyOf``, ``oneOf``, ``allOf``; ``true`` / ``false`` schemas;
* annotations (``title``, ``description``, ``$schema``, ``$id``, ``$comment``,
  ``default``, ``examples``, ``deprecated``, ``readOnly``, ``writeOnly``, ``$defs``,
  ``x-…``) are ignored.

Any other keyword in the *reader* is a reason ("outside the checked subset"): it
could refuse what the writer allows. In the *writer* a keyword outside the subset
only narrows what it writes, so ignoring it is sound — except ``patternProperties``,
``prefixItems`` and ``additionalItems``, which change what ``additionalProperties``
and ``items`` apply to, and are reasons too.

**Open and closed content models.** A property a schema does not declare is
governed by its ``additionalProperties`` (absent = ``true``: open). For every
property name, the writer's governing schema must fit the reader's: declared in
both, the two declarations; declared on one side, that declaration against the
other side's ``additionalProperties``; declared on neither, the two
``additionalProperties``. So with open models a reader may *drop* a property
(the writer's values fall into its open ``additionalProperties``) but may not
*add* one (the writer's open model may already carry that name with any value);
with closed models (``additionalProperties: false``) it is the other way round:
an optional property may be added, none removed. A partly open model
(``additionalProperties: {"type": "string"}``) allows adding a property whose
schema accepts every string.

Modes (``check_mode``): BACKWARD — the new schema reads data written with the
latest one (``subschema(latest, new)``); FORWARD — data written with the new one
is read by the latest (``subschema(new, latest)``); FULL — both; the
``_TRANSITIVE`` forms against every registered version, not only the latest;
NONE — nothing is checked.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

Mode = Literal["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
               "FULL", "FULL_TRANSITIVE"]
MODES: tuple[Mode, ...] = get_args(Mode)
DEFAULT_MODE: Mode = "BACKWARD"

Schema = bool | Mapping[str, Any]

ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$anchor", "$dynamicAnchor", "$vocabulary", "$defs",
    "definitions", "title", "description", "default", "examples", "deprecated", "readOnly",
    "writeOnly", "contentMediaType", "contentEncoding", "contentSchema",
})
SUPPORTED = frozenset({
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "pattern", "format", "items", "minItems",
    "maxItems", "uniqueItems", "properties", "required", "additionalProperties",
    "minProperties", "maxProperties", "anyOf", "oneOf", "allOf",
})
#: writer keywords that change what other keywords apply to: never safe to ignore
_WRITER_UNSAFE = frozenset({"patternProperties", "prefixItems", "additionalItems"})
_COMBINATORS = ("anyOf", "oneOf", "allOf")

#: JSON values split by kind; "fraction" is a number that is not an integer
KINDS = frozenset({"null", "boolean", "object", "array", "string", "integer", "fraction"})
_TYPE_KINDS = {"null": {"null"}, "boolean": {"boolean"}, "object": {"object"},
               "array": {"array"}, "string": {"string"}, "integer": {"integer"},
               "number": {"integer", "fraction"}}
_KIND_NAMES = {"fraction": "non-integer numbers"}
_SHOWN = 5  # values named in one reason


def _is_extension(keyword: str) -> bool:
    return keyword.startswith("x-")


def _as_dict(s: Schema) -> Mapping[str, Any]:
    if s is True:
        return {}
    if s is False:
        return {"not": {}}
    return s


def is_trivial(s: Schema) -> bool:
    """Accepts every instance (``true``, ``{}`` or only annotations)."""
    if s is True:
        return True
    if s is False:
        return False
    return all(k in ANNOTATIONS or _is_extension(k) for k in s)


def kinds(s: Schema) -> frozenset[str]:
    """The kinds of value ``type`` allows (every kind without ``type``)."""
    if s is False:
        return frozenset()
    t = _as_dict(s).get("type")
    if t is None:
        return KINDS
    names = [t] if isinstance(t, str) else list(t)
    out: set[str] = set()
    for n in names:
        out |= _TYPE_KINDS.get(str(n), set())
    return frozenset(out)


def _kind_list(ks: Iterable[str]) -> str:
    return ", ".join(_KIND_NAMES.get(k, k) for k in sorted(ks))


@functools.lru_cache(maxsize=512)
def _validator(text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(text),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def valid(schema: Schema, value: Any) -> bool:
    """``value`` validates under ``schema`` (formats asserted); an unusable schema
    (a ``$ref`` it cannot resolve alone) counts as accepting."""
    try:
        return bool(_validator(json.dumps(schema, sort_keys=True)).is_valid(value))
    except (Unresolvable, SchemaError, LookupError, TypeError, ValueError):
        return True


def finite_values(s: Schema) -> list[Any] | None:
    """Every value ``s`` may allow, when that is a short list (``const``, ``enum``, or
    only null/boolean), else None. The caller filters them with ``valid``."""
    if s is False:
        return []
    d = _as_dict(s)
    if "const" in d:
        return [d["const"]]
    if "enum" in d and isinstance(d["enum"], list):
        return list(d["enum"])
    ks = kinds(s)
    if ks <= {"null", "boolean"}:
        return ([None] if "null" in ks else []) + ([True, False] if "boolean" in ks else [])
    return None


def _show(values: Sequence[Any]) -> str:
    shown = ", ".join(json.dumps(v, sort_keys=True, default=str) for v in values[:_SHOWN])
    return shown + (f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "")


def _without(d: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


# -- the checker ---------------------------------------------------------------------


def subschema(writer: Schema, reader: Schema, path: str = "$") -> list[str]:
    """Why an instance valid under ``writer`` might not validate under ``reader``;
    empty when every one does (see the module docstring)."""
    if writer is False or is_trivial(reader):
        return []
    if reader is False:
        return [f"{path}: false: the reader accepts nothing here, the writer does"]
    w = _as_dict(writer)
    r = _as_dict(reader)
    reasons = [f"{path}: {k}: outside the checked subset (the reader may refuse what the "
               "writer allows)" for k in r
               if k not in SUPPORTED and k not in ANNOTATIONS and not _is_extension(k)]
    reasons += [f"{path}: {k}: in the writer, outside the checked subset" for k in w
                if k in _WRITER_UNSAFE]
    if reasons:
        return reasons
    # The writer's alternatives: each must fit (or what surrounds them does).
    if "anyOf" in w or "oneOf" in w:
        return _writer_alternatives(w, r, path)
    if "allOf" in w:
        rest = _without(w, "allOf")
        first = subschema(rest, r, path)
        if not first:
            return []
        for part in w["allOf"]:
            if not subschema(part, r, path):
                return []
        return first
    # A writer of a few values: each is checked against the whole reader.
    values = finite_values(w)
    if values is not None:
        bad = [v for v in values if valid(w, v) and not valid(r, v)]
        return [f"{path}: enum: the writer allows {_show(bad)}, which the reader refuses"] \
            if bad else []
    if any(c in r for c in _COMBINATORS):
        return _reader_combinators(w, r, path)
    return _plain(w, r, path)


def _writer_alternatives(w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[str]:
    key = "anyOf" if "anyOf" in w else "oneOf"
    rest = _without(w, key)
    around = subschema(rest, r, path) if not is_trivial(rest) else None
    if around == []:
        return []
    # (oneOf: an instance fits exactly one branch, so also at least one.)
    out: list[str] = []
    for i, branch in enumerate(w[key]):
        out += subschema(branch, r, f"{path}.{key}[{i}]")
    return out


def _reader_combinators(w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[str]:
    rest = _without(r, *_COMBINATORS)
    reasons = subschema(w, rest, path)
    for i, part in enumerate(r.get("allOf", [])):
        reasons += subschema(w, part, f"{path}.allOf[{i}]")
    if "anyOf" in r:
        tries = [subschema(w, b, f"{path}.anyOf[{i}]") for i, b in enumerate(r["anyOf"])]
        if all(tries):
            best = min(tries, key=len)
            reasons.append(f"{path}: anyOf: the writer fits no single branch of the reader")
            reasons += best
    if "oneOf" in r:
        branches = list(r["oneOf"])
        fits = [i for i, b in enumerate(branches) if not subschema(w, b, path)]
        ok = any(all(disjoint(w, b) for j, b in enumerate(branches) if j != i) for i in fits)
        if not ok:
            reasons.append(
                f"{path}: oneOf: the writer fits no single branch of the reader" if not fits
                else f"{path}: oneOf: the writer fits branch {fits[0]}, but its values could "
                     "also match another branch")
    return reasons


def disjoint(a: Schema, b: Schema) -> bool:
    """Provably no instance validates under both (False: not proven)."""
    for x, y in ((a, b), (b, a)):
        vals = finite_values(x)
        if vals is not None:
            return all(not valid(y, v) for v in vals if valid(x, v))
    common = kinds(a) & kinds(b)
    if not common:
        return True
    if common == {"object"}:
        da, db = _as_dict(a), _as_dict(b)
        for name in set(da.get("required", [])) & set(db.get("required", [])):
            if disjoint(_governing(da, name), _governing(db, name)):
                return True
    return False


def _plain(w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[str]:
    if "enum" in r or "const" in r:
        allowed = [r["const"]] if "const" in r else list(r["enum"])
        return [f"{path}: enum: the reader allows only {_show(allowed)}; the writer allows any "
                f"{_kind_list(kinds(w))}"]
    wk, rk = kinds(w), kinds(r)
    reasons: list[str] = []
    missing = wk - rk
    if missing:
        reasons.append(f"{path}: type: the writer allows {_kind_list(missing)}, the reader "
                       f"only {_kind_list(rk) or 'nothing'}")
    both = wk & rk
    if both & {"integer", "fraction"}:
        reasons += _numbers(w, r, path, both)
    if "string" in both:
        reasons += _strings(w, r, path)
    if "array" in both:
        reasons += _arrays(w, r, path)
    if "object" in both:
        reasons += _objects(w, r, path)
    return reasons


# -- numbers -------------------------------------------------------------------------


def _num(v: Any) -> Fraction | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return Fraction(v) if isinstance(v, int) else Fraction(str(v))


Bound = tuple[Fraction, bool] | None  # (value, exclusive)


def _lower(d: Mapping[str, Any]) -> Bound:
    inc, exc = _num(d.get("minimum")), _num(d.get("exclusiveMinimum"))
    cands = [b for b in ((inc, False), (exc, True)) if b[0] is not None]
    return max(cands, key=lambda b: (b[0], b[1])) if cands else None  # type: ignore[return-value]


def _upper(d: Mapping[str, Any]) -> Bound:
    inc, exc = _num(d.get("maximum")), _num(d.get("exclusiveMaximum"))
    cands = [b for b in ((inc, False), (exc, True)) if b[0] is not None]
    return min(cands, key=lambda b: (b[0], not b[1])) if cands else None  # type: ignore[return-value]


def _int_lower(b: Bound) -> int | None:
    if b is None:
        return None
    v, exclusive = b
    return math.floor(v) + 1 if exclusive else math.ceil(v)


def _int_upper(b: Bound) -> int | None:
    if b is None:
        return None
    v, exclusive = b
    return math.ceil(v) - 1 if exclusive else math.floor(v)


def _fmt_bound(b: Bound, side: str) -> str:
    if b is None:
        return "none"
    v, exclusive = b
    op = (">" if exclusive else "≥") if side == "lower" else ("<" if exclusive else "≤")
    return f"{op} {float(v):g}" if v.denominator != 1 else f"{op} {v.numerator}"


def _numbers(w: Mapping[str, Any], r: Mapping[str, Any], path: str,
             both: frozenset[str]) -> list[str]:
    reasons: list[str] = []
    wl, wu, rl, ru = _lower(w), _upper(w), _lower(r), _upper(r)
    if "fraction" in both:
        if rl is not None and (wl is None or wl[0] < rl[0] or (wl[0] == rl[0] and rl[1]
                                                               and not wl[1])):
            reasons.append(f"{path}: minimum: the reader needs {_fmt_bound(rl, 'lower')}, the "
                           f"writer allows {_fmt_bound(wl, 'lower')}")
        if ru is not None and (wu is None or wu[0] > ru[0] or (wu[0] == ru[0] and ru[1]
                                                               and not wu[1])):
            reasons.append(f"{path}: maximum: the reader needs {_fmt_bound(ru, 'upper')}, the "
                           f"writer allows {_fmt_bound(wu, 'upper')}")
    elif "integer" in both:
        il, iu = _int_lower(wl), _int_upper(wu)
        jl, ju = _int_lower(rl), _int_upper(ru)
        if jl is not None and (il is None or il < jl):
            reasons.append(f"{path}: minimum: the reader needs ≥ {jl}, the writer allows "
                           f"{'any' if il is None else f'≥ {il}'}")
        if ju is not None and (iu is None or iu > ju):
            reasons.append(f"{path}: maximum: the reader needs ≤ {ju}, the writer allows "
                           f"{'any' if iu is None else f'≤ {iu}'}")
    # Only whole multiples are proven: jsonschema divides floats in floating point.
    rm = _num(r.get("multipleOf"))
    if rm is not None and rm > 0:
        wm = _num(w.get("multipleOf"))
        if wm is None and "fraction" not in both:
            wm = Fraction(1)  # every integer is a multiple of 1
        if wm is None or rm.denominator != 1 or wm.denominator != 1 or wm % rm:
            reasons.append(f"{path}: multipleOf: the reader needs multiples of {float(rm):g}, "
                           "the writer allows " + ("any number" if wm is None
                                                   else f"multiples of {float(wm):g}"))
    return reasons


# -- strings, arrays -----------------------------------------------------------------


def _int(d: Mapping[str, Any], key: str) -> int | None:
    v = d.get(key)
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _range(w: Mapping[str, Any], r: Mapping[str, Any], path: str, lo: str, hi: str,
           what: str, w_hi_default: int | None = None) -> list[str]:
    reasons: list[str] = []
    rl, wl = _int(r, lo), _int(w, lo) or 0
    if rl is not None and wl < rl:
        reasons.append(f"{path}: {lo}: the reader needs at least {rl} {what}, the writer "
                       f"allows {wl}")
    ru, wu = _int(r, hi), _int(w, hi)
    if wu is None:
        wu = w_hi_default
    if ru is not None and (wu is None or wu > ru):
        reasons.append(f"{path}: {hi}: the reader allows at most {ru} {what}, the writer "
                       f"{'any number' if wu is None else wu}")
    return reasons


def _strings(w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[str]:
    reasons = _range(w, r, path, "minLength", "maxLength", "characters")
    if "pattern" in r and r["pattern"] != w.get("pattern"):
        reasons.append(f"{path}: pattern: the reader needs {r['pattern']!r}, the writer "
                       + (f"has {w['pattern']!r}" if "pattern" in w else "has none"))
    if "format" in r and r["format"] != w.get("format"):
        reasons.append(f"{path}: format: the reader needs {r['format']!r}, the writer "
                       + (f"has {w['format']!r}" if "format" in w else "has none"))
    return reasons


def _arrays(w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[str]:
    reasons = _range(w, r, path, "minItems", "maxItems", "items")
    reasons += subschema(w.get("items", True), r.get("items", True), f"{path}[*]")
    if r.get("uniqueItems") is True and w.get("uniqueItems") is not True and (
            _int(w, "maxItems") is None or (_int(w, "maxItems") or 0) > 1):
        reasons.append(f"{path}: uniqueItems: the reader needs distinct items, the writer "
                       "allows repeats")
    return reasons


# -- objects -------------------------------------------------------------------------


def _governing(d: Mapping[str, Any], name: str) -> Schema:
    """The schema a property ``name`` must fit in ``d``: its declaration, else
    ``additionalProperties`` (``true`` when absent: the open model)."""
    props = d.get("properties") or {}
    if name in props:
        s: Schema = props[name]
        return s
    extra: Schema = d.get("additionalProperties", True)
    return extra


def _prop_path(path: str, name: str) -> str:
    return f"{path}.{name}" if name.isidentifier() else f"{path}[{name!r}]"


def _objects(w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> list[str]:
    reasons: list[str] = []
    w_required = set(w.get("required") or [])
    for name in r.get("required") or []:
        if name not in w_required:
            reasons.append(f"{_prop_path(path, name)}: required: the reader requires it, the "
                           "writer may leave it out")
    wp, rp = w.get("properties") or {}, r.get("properties") or {}
    for name in sorted(set(wp) | set(rp)):
        ws, rs = _governing(w, name), _governing(r, name)
        sub = subschema(ws, rs, _prop_path(path, name))
        if sub and name in wp and name not in rp:
            reasons.append(f"{_prop_path(path, name)}: additionalProperties: the writer has "
                           "this property; the reader does not declare it and its "
                           "additionalProperties refuse the writer's values (closed model)")
            if rs is not False:
                reasons += sub
        elif sub and name in rp and name not in wp:
            reasons.append(f"{_prop_path(path, name)}: properties: the reader declares it; the "
                           "writer does not, and its additionalProperties allow values the "
                           "reader refuses (open model)")
            reasons += sub
        else:
            reasons += sub
    reasons += subschema(w.get("additionalProperties", True),
                         r.get("additionalProperties", True), f"{path}.*")
    closed_max = len(wp) if w.get("additionalProperties", True) is False else None
    reasons += _range(w, r, path, "minProperties", "maxProperties", "properties", closed_max)
    return reasons


# -- modes ---------------------------------------------------------------------------


def check_mode(mode: Mode, new: Schema, registered: Sequence[tuple[int, Schema]]) -> list[str]:
    """Why ``new`` may not follow the ``registered`` (version, schema) pairs, oldest
    first, under ``mode``; one reason per line, each naming the version."""
    if mode == "NONE" or not registered:
        return []
    against = registered if mode.endswith("_TRANSITIVE") else registered[-1:]
    base = mode.removesuffix("_TRANSITIVE")
    reasons: list[str] = []
    for version, old in against:
        if base in ("BACKWARD", "FULL"):
            reasons += [f"version {version} (backward: new schema reading old data): {r}"
                        for r in subschema(old, new)]
        if base in ("FORWARD", "FULL"):
            reasons += [f"version {version} (forward: old schema reading new data): {r}"
                        for r in subschema(new, old)]
    return reasons


def check_schema(schema: Any) -> list[str]:
    """Why ``schema`` is no valid Draft 2020-12 schema (empty: it is)."""
    if not isinstance(schema, (dict, bool)):
        return [f"a schema is a JSON object or a boolean, not {type(schema).__name__}"]
    errors = sorted(Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(schema),
                    key=lambda e: list(e.absolute_path))
    return [f"$/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


# -- diff ----------------------------------------------------------------------------


def diff(old: Any, new: Any, pointer: str = "") -> list[str]:
    """What changed from ``old`` to ``new``, one line per JSON pointer: ``+`` added,
    ``-`` removed, ``~`` changed."""

    def show(v: Any) -> str:
        text = json.dumps(v, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + "..."

    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            p = f"{pointer}/{str(k).replace('~', '~0').replace('/', '~1')}"
            if k not in new:
                out.append(f"- {p}: {show(old[k])}")
            elif k not in old:
                out.append(f"+ {p}: {show(new[k])}")
            else:
                out += diff(old[k], new[k], p)
        return out
    if isinstance(old, list) and isinstance(new, list) and all(
            not isinstance(x, (dict, list)) for x in [*old, *new]):
        gone = [x for x in old if x not in new]
        came = [x for x in new if x not in old]
        return ([f"- {pointer or '/'}: {show(x)}" for x in gone]
                + [f"+ {pointer or '/'}: {show(x)}" for x in came])
    if old != new or type(old) is not type(new):
        return [f"~ {pointer or '/'}: {show(old)} → {show(new)}"]
    return []
