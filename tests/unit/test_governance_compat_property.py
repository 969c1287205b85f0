"""The compatibility checker is sound: for random schema pairs it judges
compatible, every instance generated from the writer's schema (and that
validates under it) validates under the reader's.

Instances come from ``instances`` below, a generator guided by the schema
(hypothesis-jsonschema 0.23 does not run on this hypothesis). It fills a
property the writer does not declare from its ``additionalProperties`` (any JSON
value when absent), with names from the same small pool the readers use, so the
open content model is exercised where incompatibilities hide.

Pairs are drawn three ways, so that "compatible" verdicts are common enough to
test: a reader and a writer drawn independently, a writer that is the reader
narrowed by random edits (which may or may not really narrow it: the checker
decides), and a reader that is the writer widened the same way.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crosswind.governance.compat import is_trivial, subschema, valid

NAMES = ["a", "b", "c", "d"]
PATTERNS = ["^[A-Z]{2}$", "^[a-z]+$", "^x", "[0-9]"]
FORMATS = ["uuid", "date"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["x", "AB", "7"]),
                    st.sampled_from([0.5, -1.5]))

Schema = dict[str, Any] | bool


def _numbers(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        s: dict[str, Any] = {"type": kind}
        lo = draw(st.none() | st.integers(-10, 10))
        hi = draw(st.none() | st.integers(-10, 10))
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        if lo is not None:
            s["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = lo - 1 if (
                draw(st.booleans())) else lo
        if hi is not None:
            s["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = hi + 1 if (
                draw(st.booleans())) else hi
        if draw(st.integers(0, 4)) == 0:
            s["multipleOf"] = draw(st.sampled_from([1, 2, 3, 4]))
        return s
    return build()


@st.composite
def _string(draw: st.DrawFn) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string"}
    choice = draw(st.integers(0, 3))
    if choice == 1:
        s["pattern"] = draw(st.sampled_from(PATTERNS))
    elif choice == 2:
        s["format"] = draw(st.sampled_from(FORMATS))
    lo = draw(st.none() | st.integers(0, 3))
    hi = draw(st.none() | st.integers(2, 8))
    if lo is not None:
        s["minLength"] = lo
    if hi is not None and "format" not in s:
        s["maxLength"] = hi
    return s


def schemas(depth: int = 2) -> st.SearchStrategy[Schema]:
    leaves: st.SearchStrategy[Schema] = st.one_of(
        st.just(True), st.just({}),
        st.sampled_from([{"type": "null"}, {"type": "boolean"}, {"type": ["string", "null"]},
                         {"type": "number"}, {"type": ["integer", "string"]}]),
        _numbers("integer"), _numbers("number"), _string(),
        st.lists(SCALARS, min_size=1, max_size=4, unique_by=repr).map(lambda v: {"enum": v}),
        SCALARS.map(lambda v: {"const": v}),
    )
    if depth == 0:
        return leaves
    inner = schemas(depth - 1)
    return st.one_of(leaves, _object(inner), _array(inner), _combined(inner))


def _object(inner: st.SearchStrategy[Schema]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        props = draw(st.dictionaries(st.sampled_from(NAMES), inner, max_size=3))
        s: dict[str, Any] = {"type": "object", "properties": props}
        req = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2))
        if req:
            s["required"] = req
        extra = draw(st.integers(0, 3))
        if extra == 1:
            s["additionalProperties"] = False
        elif extra == 2:
            s["additionalProperties"] = draw(inner)
        if draw(st.integers(0, 5)) == 0:
            s["maxProperties"] = draw(st.integers(1, 4))
        if draw(st.integers(0, 5)) == 0:
            s["minProperties"] = draw(st.integers(0, 2))
        return s
    return build()


def _array(inner: st.SearchStrategy[Schema]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "array"}
        if draw(st.booleans()):
            s["items"] = draw(inner)
        if draw(st.booleans()):
            s["minItems"] = draw(st.integers(0, 2))
        if draw(st.booleans()):
            s["maxItems"] = draw(st.integers(2, 4))
        if draw(st.integers(0, 3)) == 0:
            s["uniqueItems"] = True
        return s
    return build()


def _combined(inner: st.SearchStrategy[Schema]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda k, parts: {k: parts}, st.sampled_from(["anyOf", "oneOf", "allOf"]),
                     st.lists(inner, min_size=1, max_size=3))


# -- instances of a schema -----------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-20, 20) | st.floats(-20, 20, allow_nan=False)
    | st.sampled_from(["", "x", "AB", "ab", "7", "x1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from([*NAMES, "e"]),
                                                                 inner, max_size=3),
    max_leaves=6)


def _bounds(s: dict[str, Any]) -> tuple[int, int]:
    lo, hi = -20, 20
    if "minimum" in s:
        lo = int(s["minimum"])
    if "exclusiveMinimum" in s:
        lo = int(s["exclusiveMinimum"]) + 1
    if "maximum" in s:
        hi = int(s["maximum"])
    if "exclusiveMaximum" in s:
        hi = int(s["exclusiveMaximum"]) - 1
    return lo, max(lo, hi)


def _kind_strategy(s: dict[str, Any], kind: str) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        lo, hi = _bounds(s)
        m = s.get("multipleOf")
        ints = (st.integers(lo // m - 1, hi // m + 1).map(lambda k: k * m) if m
                else st.integers(lo - 1, hi + 1))
        if kind == "integer":
            return ints
        return ints | st.floats(lo - 1, hi + 1, allow_nan=False) | st.sampled_from([0.5, -1.5])
    if kind == "string":
        if "pattern" in s:
            return st.from_regex(s["pattern"])
        if s.get("format") == "uuid":
            return st.uuids().map(str) | st.just("not-a-uuid")
        if s.get("format") == "date":
            return st.dates().map(lambda d: d.isoformat()) | st.just("2026-13-01")
        return st.text("abxAB7", min_size=0, max_size=int(s.get("maxLength", 8)) + 1)
    if kind == "array":
        return st.lists(instances(s.get("items", True)), min_size=0,
                        max_size=int(s.get("maxItems", 3)) + 1)
    return _object_instances(s)


def _object_instances(s: dict[str, Any]) -> st.SearchStrategy[Any]:
    props = s.get("properties") or {}
    extra = s.get("additionalProperties", True)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in [*NAMES, "e"]:
            governing = props.get(name, extra)
            if governing is False or not (name in s.get("required", []) or draw(st.booleans())):
                continue
            out[name] = draw(instances(governing))
        return out
    return build()


def instances(s: Schema) -> st.SearchStrategy[Any]:
    """Values that often validate under ``s`` (the caller keeps those that do)."""
    if s is False:
        return JSON
    if s is True or is_trivial(s):
        return JSON
    if "const" in s:
        return st.just(s["const"])
    if "enum" in s:
        return st.sampled_from(s["enum"])
    for key in ("anyOf", "oneOf"):
        if key in s:
            return st.one_of([instances(b) for b in s[key]])
    if "allOf" in s:
        return instances(s["allOf"][0])
    t = s.get("type")
    names = ([t] if isinstance(t, str) else list(t)) if t is not None else [
        "null", "boolean", "integer", "number", "string", "array", "object"]
    return st.one_of([_kind_strategy(s, k) for k in names])


@st.composite
def narrowed(draw: st.DrawFn, s: Schema) -> Schema:
    """``s`` with a few random edits, most of which narrow it."""
    if s is True:
        s = {}
    if s is False or draw(st.integers(0, 5)) == 0:
        return s
    d = dict(s)
    edit = draw(st.integers(0, 9))
    t = d.get("type")
    if edit == 0 and isinstance(t, list) and len(t) > 1:
        d["type"] = t[:1]
    elif edit == 1 and t in ("integer", "number"):
        d["minimum"] = draw(st.integers(-3, 3))
    elif edit == 2 and t == "number":
        d["type"] = "integer"
    elif edit == 3 and t == "object":
        props = dict(d.get("properties", {}))
        if props:
            name = draw(st.sampled_from(sorted(props)))
            props[name] = draw(narrowed(props[name]))
            d["properties"] = props
        if draw(st.booleans()):
            d["additionalProperties"] = False
    elif edit == 4 and t == "object":
        d["required"] = sorted(set(d.get("required", [])) | {draw(st.sampled_from(NAMES))})
    elif edit == 5 and "enum" in d and len(d["enum"]) > 1:
        d["enum"] = d["enum"][:-1]
    elif edit == 6 and t == "array" and "items" in d:
        d["items"] = draw(narrowed(d["items"]))
    elif edit == 7 and t == "string":
        d["maxLength"] = draw(st.integers(1, 6))
    elif edit == 8 and any(k in d for k in ("anyOf", "oneOf")):
        key = "anyOf" if "anyOf" in d else "oneOf"
        d[key] = [draw(narrowed(b)) for b in d[key]][: max(1, len(d[key]) - 1)]
    elif edit == 9 and not d:
        return draw(schemas(1))
    return d


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Schema, Schema]:
    how = draw(st.integers(0, 2))
    base = draw(schemas())
    if how == 0:
        return draw(schemas()), base  # (writer, reader)
    if how == 1:
        return draw(narrowed(base)), base
    return base, draw(narrowed(base))


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large], deadline=None)
@given(pair=pairs(), data=st.data())
def test_compatible_means_every_writer_instance_validates_under_the_reader(
        pair: tuple[Schema, Schema], data: st.DataObject) -> None:
    writer, reader = pair
    assume(not subschema(writer, reader))
    for _ in range(10):
        instance = data.draw(instances(writer), label="instance")
        if not valid(writer, instance):
            continue
        assert valid(reader, instance), (writer, reader, instance)


def test_the_generator_finds_compatible_pairs_often_enough() -> None:
    # Guards the property above against passing on nothing but rejected pairs.
    found = 0

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(pair=pairs())
    def count(pair: tuple[Schema, Schema]) -> None:
        nonlocal found
        found += not subschema(*pair)

    count()
    assert found >= 40
