"""The compatibility checker on known cases: types, bounds, required, open and
closed content models, combinators, the keyword subset; and the modes."""

from __future__ import annotations

from typing import Any

import pytest

from crosswind.governance.compat import check_mode, check_schema, diff, subschema


def compatible(writer: Any, reader: Any) -> bool:
    return not subschema(writer, reader)


OBJ = {"type": "object", "properties": {"a": {"type": "string"}}}


@pytest.mark.parametrize(("writer", "reader", "ok"), [
    ({"type": "integer"}, {"type": "number"}, True),
    ({"type": "number"}, {"type": "integer"}, False),
    ({"type": "string"}, {"type": ["string", "null"]}, True),
    ({"type": ["string", "null"]}, {"type": "string"}, False),
    ({"type": "integer", "minimum": 0, "maximum": 10}, {"type": "integer", "minimum": 0}, True),
    ({"type": "integer", "minimum": 0}, {"type": "integer", "minimum": 0, "maximum": 10}, False),
    ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 1}, True),
    ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 1}, False),
    ({"type": "integer", "multipleOf": 4}, {"type": "integer", "multipleOf": 2}, True),
    ({"type": "integer", "multipleOf": 2}, {"type": "integer", "multipleOf": 4}, False),
    ({"type": "string", "maxLength": 3}, {"type": "string", "maxLength": 5}, True),
    ({"type": "string"}, {"type": "string", "maxLength": 5}, False),
    ({"type": "string", "pattern": "^[A-Z]{2}$"}, {"type": "string", "pattern": "^[A-Z]{2}$"},
     True),
    ({"type": "string"}, {"type": "string", "pattern": "^[A-Z]{2}$"}, False),
    ({"type": "string", "format": "uuid"}, {"type": "string"}, True),
    ({"type": "string"}, {"type": "string", "format": "uuid"}, False),
    ({"enum": ["a", "b"]}, {"type": "string"}, True),
    ({"enum": ["a", 1]}, {"type": "string"}, False),
    ({"enum": ["a"]}, {"enum": ["a", "b"]}, True),
    ({"type": "string"}, {"enum": ["a", "b"]}, False),
    ({"type": "boolean"}, {"enum": [True, False]}, True),
    ({"const": 3}, {"type": "integer", "maximum": 5}, True),
    (True, {}, True),
    (True, {"type": "string"}, False),
    (False, {"type": "string"}, True),
    ({"type": "array", "items": {"type": "integer"}}, {"type": "array",
                                                       "items": {"type": "number"}}, True),
    ({"type": "array"}, {"type": "array", "items": {"type": "number"}}, False),
    ({"type": "array", "maxItems": 1}, {"type": "array", "uniqueItems": True}, True),
    ({"type": "array"}, {"type": "array", "uniqueItems": True}, False),
])
def test_keywords(writer: Any, reader: Any, ok: bool) -> None:
    assert compatible(writer, reader) is ok, subschema(writer, reader)


def test_required_properties() -> None:
    w = {**OBJ, "required": ["a"]}
    assert compatible(w, OBJ)
    reasons = subschema(OBJ, w)
    assert reasons == ["$.a: required: the reader requires it, the writer may leave it out"]


def test_open_model_may_drop_a_property_but_not_add_one() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    dropped = {"type": "object", "properties": {"a": {"type": "string"}}}
    added = {"type": "object", "properties": {"a": {"type": "string"},
                                              "b": {"type": "integer"}, "c": {"type": "string"}}}
    assert compatible(old, dropped)  # b falls into the reader's open additionalProperties
    reasons = subschema(old, added)  # old data may carry any "c"
    assert any("$.c: properties: the reader declares it" in r for r in reasons)


def test_closed_model_may_add_an_optional_property_but_not_drop_one() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string"}},
           "additionalProperties": False}
    added = {"type": "object", "properties": {"a": {"type": "string"}, "c": {"type": "string"}},
             "additionalProperties": False}
    assert compatible(old, added)
    reasons = subschema(added, old)
    assert reasons[0].startswith("$.c: additionalProperties: the writer has this property")
    assert len(reasons) == 1


def test_partly_open_model() -> None:
    old = {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
    assert compatible(old, {"type": "object", "properties": {"x": {"type": "string"}},
                            "additionalProperties": {"type": "string"}})
    assert not compatible(old, {"type": "object",
                                "properties": {"x": {"type": "string", "pattern": "^a"}},
                                "additionalProperties": {"type": "string"}})


def test_combinators() -> None:
    num_or_nan = {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity"]}]}
    assert compatible({"type": "integer"}, num_or_nan)
    assert compatible({"enum": ["NaN"]}, num_or_nan)
    assert compatible(num_or_nan, {"anyOf": [{"type": "number"}, {"type": "string"}]})
    assert not compatible(num_or_nan, {"type": "number"})
    # oneOf in the reader: the writer's values must match exactly one branch
    tagged = {"oneOf": [
        {"type": "object", "properties": {"k": {"const": "a"}}, "required": ["k"]},
        {"type": "object", "properties": {"k": {"const": "b"}}, "required": ["k"]}]}
    w = {"type": "object", "properties": {"k": {"const": "a"}, "v": {"type": "string"}},
         "required": ["k"]}
    assert compatible(w, tagged)
    overlapping = {"oneOf": [{"type": "integer"}, {"type": "number"}]}
    assert not compatible({"type": "integer"}, overlapping)
    assert compatible({"type": "string"}, {"allOf": [{"type": "string"}, {"maxLength": 9}]}) \
        is False
    assert compatible({"type": "string", "maxLength": 3},
                      {"allOf": [{"type": "string"}, {"maxLength": 9}]})


def test_keywords_outside_the_subset() -> None:
    reasons = subschema({"type": "string"}, {"type": "string", "not": {"const": "x"}})
    assert reasons == ["$: not: outside the checked subset (the reader may refuse what the "
                       "writer allows)"]
    # in the writer, a narrowing keyword is ignored (sound) ...
    assert compatible({"type": "string", "not": {"const": "x"}}, {"type": "string"})
    # ... but not one that changes what additionalProperties applies to
    w = {"type": "object", "patternProperties": {"^x": {}}, "additionalProperties": False}
    assert subschema(w, {"type": "object"})[0].startswith("$: patternProperties")
    assert compatible({"type": "string", "title": "t", "x-owner": "ADL"}, {"type": "string",
                                                                          "description": "d"})


def test_reasons_name_the_path() -> None:
    w = {"type": "object", "properties": {"m": {"type": "object", "properties": {
        "carrier": {"type": "string"}}}}}
    r = {"type": "object", "properties": {"m": {"type": "object", "properties": {
        "carrier": {"type": "string", "pattern": "^[A-Z]{2}$"}}}}}
    assert subschema(w, r) == ["$.m.carrier: pattern: the reader needs '^[A-Z]{2}$', the writer "
                               "has none"]


V1 = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
V2 = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
      "additionalProperties": False}
V3 = {"type": "object", "properties": {"b": {"type": "integer"}}, "additionalProperties": False}


def test_modes() -> None:
    assert check_mode("BACKWARD", V2, [(1, V1)]) == []
    assert check_mode("FORWARD", V2, [(1, V1)])  # v1 readers refuse b
    assert check_mode("FULL", V2, [(1, V1)])
    assert check_mode("NONE", V3, [(1, V1), (2, V2)]) == []
    # v3 drops a (closed model): old data with "a" is refused
    assert check_mode("BACKWARD", V3, [(1, V1), (2, V2)])
    assert check_mode("FORWARD", V3, [(2, V2)]) == []
    # transitive: against every version, not only the latest
    v1_only_a = V1
    assert check_mode("FORWARD", V3, [(1, v1_only_a), (2, V2)]) == []
    trans = check_mode("FORWARD_TRANSITIVE", V3, [(1, v1_only_a), (2, V2)])
    assert trans and all(r.startswith("version 1 (forward") for r in trans)


def test_check_schema_and_diff() -> None:
    assert check_schema({"type": "string"}) == []
    assert check_schema({"type": "strin"})
    assert check_schema([1]) == ["a schema is a JSON object or a boolean, not list"]
    assert diff(V1, V2) == ['+ /properties/b: {"type": "integer"}']
    assert diff(V2, V3) == ['- /properties/a: {"type": "string"}']
    assert diff({"required": ["a"]}, {"required": ["a", "b"]}) == ['+ /required: "b"']
    assert diff({"type": "string"}, {"type": "integer"}) == ['~ /type: "string" → "integer"']
