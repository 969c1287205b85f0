"""Property 27: partition-key parsing. Pure; no servers."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crosswind.errors import InvalidKey, KeyPatternError, NameParseError
from crosswind.keys import (
    CodeKind,
    DateKind,
    FreeKind,
    IntKind,
    KeySpec,
    Kind,
    NamePattern,
    RegexKind,
    UuidKind,
)

DEMO = KeySpec(
    "events/{date:%Y/%m/%d}/{carrier:[A-Z0-9]{2}}{flight:int}/{origin:[A-Z]{3}}-{dest:[A-Z]{3}}"
    "/{event_type}-{event_id}.json",
    "{carrier}{flight}_{date:%Y%m%d}",
    "{event_id}",
)
DEMO_NAME = "events/2026/11/26/AA1234/DFW-LAX/departure-6f1c2b9e-1111-4222-8333-944445555666.json"

# Patterns that between them use every field kind, plus ambiguous neighbours.
PATTERNS = [
    DEMO.pattern,
    NamePattern("{a}/{b:int}/{c:code:3}-{d:uuid}.x"),
    NamePattern("{p:path}/{n:int:4}_{t:%Y%m%dT%H%M%S.%f}"),
    NamePattern("{r:re:[a-z]+}{n:int}{{lit}}%{s:str}"),
    NamePattern("x/{a}-{b}-{c}"),
    NamePattern("{a}{b}"),
    NamePattern("{d:%Y-%m}/{rest:path}"),
]


def value_strategy(kind: Kind) -> st.SearchStrategy[Any]:
    if isinstance(kind, FreeKind):
        alphabet = st.characters(exclude_characters="" if kind.multi_segment else "/",
                                 exclude_categories=("Cs",))
        return st.text(alphabet, min_size=1, max_size=30)
    if isinstance(kind, IntKind):
        top = 10**12 if kind.width is None else 10**kind.width - 1
        return st.integers(0, top)
    if isinstance(kind, CodeKind):
        return st.text(string.ascii_letters + string.digits, min_size=kind.width,
                       max_size=kind.width)
    if isinstance(kind, UuidKind):
        return st.uuids().map(str)
    if isinstance(kind, DateKind):
        if kind.has_time:
            return st.datetimes(timezones=st.just(UTC))
        return st.dates()
    assert isinstance(kind, RegexKind)
    return st.from_regex(kind.source, fullmatch=True)


@st.composite
def pattern_and_fields(draw: st.DrawFn) -> tuple[NamePattern, dict[str, Any]]:
    pattern = draw(st.sampled_from(PATTERNS))
    fields = {name: draw(value_strategy(kind)) for name, kind in pattern.kinds.items()}
    return pattern, fields


@given(pattern_and_fields())
def test_format_parse_format_is_identity(pf: tuple[NamePattern, dict[str, Any]]) -> None:
    pattern, fields = pf
    name = pattern.format(fields)
    assume(len(name) <= 1024)
    parsed = pattern.parse(name)  # a name made from valid values always parses
    assert pattern.format(parsed) == name
    if pattern is DEMO.pattern and "-" not in fields["event_type"]:
        assert parsed == fields  # unambiguous here: the very same fields come back


@given(st.dates(), st.from_regex("[A-Z0-9]{2}", fullmatch=True), st.integers(0, 99999),
       st.uuids())
def test_demo_keys_from_fields(d: date, carrier: str, flight: int, event_id: uuid.UUID) -> None:
    name = DEMO.format_name({"date": d, "carrier": carrier, "flight": flight, "origin": "DFW",
                             "dest": "LAX", "event_type": "arrival", "event_id": str(event_id)})
    keys = DEMO.keys(name)
    assert keys.partition_key == f"{carrier}{flight}_{d.year:04d}{d.month:02d}{d.day:02d}"
    assert keys.row_key == str(event_id)


def _parse_either_way(pattern: NamePattern, name: str) -> None:
    try:
        fields = pattern.parse(name)
    except NameParseError as exc:
        assert 0 <= exc.offset <= max(len(name), 1024)
        assert exc.segment and exc.reason
        return
    assert pattern.format(fields) == name


SPECIAL = st.sampled_from(["", ".", "..", "/", "//", "events/", "events/../..", "\x00", "\ud7ff",
                           "🛫" * 600, "events/2026/11/26/AA1234/DFW-LAX/-.json", "{}", "{{x}}"])


@given(st.sampled_from(PATTERNS),
       st.one_of(st.text(), st.text(min_size=1000, max_size=1100), SPECIAL,
                 st.text(alphabet=st.sampled_from("events/0123456789-ADFLX.json{}"))))
def test_any_text_parses_or_raises_the_typed_error(pattern: NamePattern, name: str) -> None:
    _parse_either_way(pattern, name)


@given(pattern_and_fields(), st.data())
def test_mutated_valid_names_parse_or_raise_the_typed_error(
    pf: tuple[NamePattern, dict[str, Any]], data: st.DataObject
) -> None:
    pattern, fields = pf
    name = pattern.format(fields)
    pos = data.draw(st.integers(0, len(name)))
    how = data.draw(st.sampled_from(["insert", "delete", "replace", "truncate", "double"]))
    ch = data.draw(st.characters(exclude_categories=("Cs",)))
    if how == "insert":
        name = name[:pos] + ch + name[pos:]
    elif how == "delete":
        name = name[:pos] + name[pos + 1 :]
    elif how == "replace":
        name = name[:pos] + ch + name[pos + 1 :]
    elif how == "truncate":
        name = name[:pos]
    else:
        name = name + name
    _parse_either_way(pattern, name)
    try:
        keys = DEMO.keys(name)
    except NameParseError:
        return
    assert DEMO.format_name(keys.fields) == name


def test_demo_name_parses_into_typed_fields_and_keys() -> None:
    keys = DEMO.keys(DEMO_NAME)
    assert keys.fields == {
        "date": date(2026, 11, 26), "carrier": "AA", "flight": 1234, "origin": "DFW",
        "dest": "LAX", "event_type": "departure",
        "event_id": "6f1c2b9e-1111-4222-8333-944445555666",
    }
    assert (keys.partition_key, keys.row_key) == (
        "AA1234_20261126", "6f1c2b9e-1111-4222-8333-944445555666")


@pytest.mark.parametrize(("name", "segment", "offset", "reason"), [
    ("events/2026/13/26/AA1234/DFW-LAX/departure-x.json", "{date:%Y/%m/%d}", 7,
     "month (%m) is '13'"),
    ("events/2026/02/30/AA1234/DFW-LAX/departure-x.json", "{date:%Y/%m/%d}", 7,
     "not a real date"),
    ("events/2026/11/26/AA01234/DFW-LAX/departure-x.json", "literal '/'", 21,
     "without leading zeros"),
    ("events/2026/11/26/aa1234/DFW-LAX/departure-x.json", "{carrier:[A-Z0-9]{2}}", 18,
     "found 'aa1234'"),
    ("events/2026/11/26/AA1234/DFWLAX/departure-x.json", "literal '-'", 28, "found 'LAX'"),
    ("events/2026/11/26/AA1234/DFW-LAX/departure.json", "literal '-'", 47, "the end of the name"),
    ("events/2026/11/26/AA1234/DFW-LAX/departure-x.json.bak", "the end of the pattern", 49,
     "'.bak'"),
    ("events/2026/11/26/AA1234/DFW-LAX/departure-a#b.json", "row_key", 0, "'#'"),
    ("", "the name", 0, "empty"),
    ("x" * 1025, "the name", 1024, "at most 1024"),
    ("logs/2026/11/26/AA1234/DFW-LAX/departure-x.json", "literal 'events/'", 0, "found 'logs'"),
])
def test_errors_name_segment_offset_and_reason(name: str, segment: str, offset: int,
                                               reason: str) -> None:
    with pytest.raises(NameParseError) as info:
        DEMO.keys(name)
    assert info.value.segment == segment
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


def test_ambiguous_pattern_reads_first_separator() -> None:
    p = NamePattern("x/{a}-{b}-{c}")
    assert p.parse("x/1-2-3-4") == {"a": "1", "b": "2", "c": "3-4"}


def test_date_time_fields_are_utc_datetimes() -> None:
    p = NamePattern("{t:%Y%m%dT%H%M%S}")
    assert p.parse("20261126T235959") == {"t": datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC)}
    with pytest.raises(NameParseError, match=r"hour \(%H\) is '24'"):
        p.parse("20261126T245959")


def test_int_width_and_code() -> None:
    p = NamePattern("{n:int:4}-{c:code:2}")
    assert p.parse("0042-A1") == {"n": 42, "c": "A1"}
    with pytest.raises(InvalidKey, match="does not fit in 4 digits"):
        p.format({"n": 12345, "c": "A1"})
    with pytest.raises(InvalidKey, match="exactly 2 letters or digits"):
        p.format({"n": 1, "c": "A-"})


@pytest.mark.parametrize(("pattern", "pk", "rk", "message"), [
    ("{a", "{a}", "{a}", "never closed"),
    ("a}", "{a}", "{a}", "unmatched '}'"),
    ("{a}/{a}", "{a}", "{a}", "appears twice"),
    ("plain", "x", "y", "has no fields"),
    ("{a:int:0}", "{a}", "{a}", "width 1..64"),
    ("{a:%Q}", "{a}", "{a}", "%Q is not supported"),
    ("{a:re:[}", "{a}", "{a}", "not valid"),
    ("{a:re:(?P<x>y)}", "{a}", "{a}", "named groups"),
    ("{1a}", "{a}", "{a}", "field name"),
    ("{a}", "{b}", "{a}", "not a field of the pattern"),
    ("{a}", "x#{a}", "{a}", "Azure Table keys cannot hold"),
    ("{d:%Y/%m}", "{d:%Y%m%d}", "x", "uses %d"),
    ("{a}", "{a:int}", "x", "takes no format"),
    ("", "{a}", "{a}", "is empty"),
])
def test_bad_patterns_are_config_errors(pattern: str, pk: str, rk: str, message: str) -> None:
    with pytest.raises(KeyPatternError, match=message):
        KeySpec(pattern, pk, rk)


def test_keys_are_checked_against_azure_rules() -> None:
    spec = KeySpec("{a:path}", "{a}", "x")
    with pytest.raises(NameParseError, match="holds '/'"):
        spec.keys("a/b")
    with pytest.raises(NameParseError, match="1200 UTF-16 units long"):
        KeySpec("{a}", "{a}", "x").keys("😀" * 600)  # 600 characters, 1200 UTF-16 units
    with pytest.raises(NameParseError, match=r"holds '\\x07'"):
        KeySpec("{a}", "{a}", "x").keys("a\x07b")
