"""mapping.py: object metadata between the Azure, S3 and free flavors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crosswind.errors import MetadataMappingError
from crosswind.mapping import (
    map_metadata,
    original_names,
    reserved_name,
    split_reserved,
    valid_name,
)
from crosswind.stores.base import MetadataFlavor

RESERVED_LOWER = {f"crosswind{sep}{f}" for sep in "-_" for f in ("md5", "mtime", "keymap")}


def not_reserved(name: str) -> bool:
    return name.lower() not in RESERVED_LOWER


def unique_folded(md: Mapping[str, str]) -> bool:
    return len({k.lower() for k in md}) == len(md)


values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
# Pieces that build names near the reserved ones ("crosswind.keymap" is a valid
# S3 name whose Azure rename is "crosswind_keymap") and near each other.
name_tokens = st.sampled_from(
    ["crosswind", "-", "_", ".", "md5", "keymap", "mtime", "a", "B", "1", " ", "é", "x"]
)
any_names = st.lists(name_tokens, min_size=1, max_size=4).map("".join)
azure_names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), any_names
).filter(lambda n: valid_name("azure", n) and not_reserved(n))
s3_names = st.one_of(
    st.from_regex(r"[!#$%&'*+\-.^_`|~0-9a-z]{1,10}", fullmatch=True), any_names
).filter(lambda n: valid_name("s3", n) and not_reserved(n))
free_names = st.one_of(st.text(min_size=1, max_size=8), any_names).filter(not_reserved)

azure_md = st.dictionaries(azure_names, values, max_size=8).filter(unique_folded)
s3_md = st.dictionaries(s3_names, values, max_size=8)
free_md = st.dictionaries(free_names, values, max_size=8)
flavors = st.sampled_from(["azure", "s3"])


def assert_storable(flavor: MetadataFlavor, md: Mapping[str, str]) -> None:
    for name in md:
        assert valid_name(flavor, name), f"{name!r} is not a valid {flavor} name"
        if flavor == "s3":
            assert name == name.lower()
    assert unique_folded(md), "two names the destination treats as one"


@given(azure_md)
@example({"FlightNo": "BA117", "flightno_2": "x"})
def test_azure_to_s3_and_back_restores_names_and_values(md: dict[str, str]) -> None:
    to_s3 = map_metadata(md, "s3")
    assert_storable("s3", to_s3.metadata)
    assert to_s3.dropped == ()
    back = map_metadata(to_s3.metadata, "azure")
    assert back.metadata == md
    assert original_names(to_s3.metadata) == md


@given(s3_md)
@example({"crosswind.keymap": "mine", "flight-no": "1"})
@example({"crosswind.md5": "user value", "crosswind.mtime": "user value"})
@example({"flight-no": "1", "flight_no": "2", "flight_no_2": "3"})
def test_s3_to_azure_and_back_restores_names_and_values(md: dict[str, str]) -> None:
    to_az = map_metadata(md, "azure")
    assert_storable("azure", to_az.metadata)
    assert to_az.dropped == ()
    back = map_metadata(to_az.metadata, "s3")
    assert back.metadata == md
    assert original_names(to_az.metadata) == md


@given(free_md, flavors)
@example({"Ab": "1", "ab": "2"}, "s3")
@example({"a b": "1", "a_b": "2"}, "azure")
@example({"crosswind keymap": "v"}, "azure")
def test_any_names_survive_a_rename_round_trip(md: dict[str, str], dst: MetadataFlavor) -> None:
    there = map_metadata(md, dst, "rename")
    assert_storable(dst, there.metadata)
    assert there.dropped == ()
    assert original_names(there.metadata) == md
    assert map_metadata(there.metadata, "free").metadata == md


@given(free_md, flavors, st.sampled_from(["rename", "skip"]))
def test_never_produces_a_name_the_destination_rejects(
    md: dict[str, str], dst: MetadataFlavor, policy: str
) -> None:
    out = map_metadata(md, dst, policy)  # type: ignore[arg-type]
    assert_storable(dst, out.metadata)


@given(free_md, flavors)
def test_skip_drops_and_reports(md: dict[str, str], dst: MetadataFlavor) -> None:
    out = map_metadata(md, dst, "skip")
    assert out.renamed == ()
    kept = original_names(out.metadata)
    assert set(kept) | set(out.dropped) == set(md)
    assert not set(kept) & set(out.dropped)
    assert all(kept[k] == md[k] for k in kept)
    assert len(out.notes) == len(out.dropped)
    for name in out.dropped:
        assert any(note.startswith(f"{name}:") for note in out.notes)
    for name in md:
        if not valid_name(dst, name.lower() if dst == "s3" else name):
            assert name in out.dropped


@given(free_md, flavors)
def test_fail_raises_naming_the_key(md: dict[str, str], dst: MetadataFlavor) -> None:
    stored = {k: (k.lower() if dst == "s3" else k) for k in md}
    bad = [k for k in md if not valid_name(dst, stored[k])]
    clash = len({v.lower() for v in stored.values()}) < len(stored)
    if not bad and not clash:
        out = map_metadata(md, dst, "fail")
        assert original_names(out.metadata) == md
        return
    with pytest.raises(MetadataMappingError) as info:
        map_metadata(md, dst, "fail")
    assert any(repr(k) in str(info.value) for k in md), str(info.value)
    assert "fail" in str(info.value)


@given(st.sampled_from(["rename", "skip", "fail"]), flavors)
def test_values_that_cannot_travel_as_headers(policy: str, dst: MetadataFlavor) -> None:
    md = {"ok": "plain", "note": "caf\u00e9\n"}
    if policy == "fail":
        with pytest.raises(MetadataMappingError, match="'note'"):
            map_metadata(md, dst, "fail")
        return
    out = map_metadata(md, dst, policy)  # type: ignore[arg-type]
    assert out.metadata == {"ok": "plain"}
    assert out.dropped == ("note",)


reserved_entries = st.dictionaries(
    st.sampled_from(sorted(RESERVED_LOWER | {"CrossWind-MD5", "CROSSWIND_MTIME"})),
    st.one_of(values, st.just("{not json"), st.just('{"x": "y"}'), st.just("[1]")),
    max_size=4,
)


@given(free_md, reserved_entries, flavors, st.sampled_from(["rename", "skip"]))
@example({"a": "v"}, {"crosswind-keymap": '{"a": "crosswind-md5"}'}, "s3", "rename")
def test_reserved_entries_never_pass_through_as_user_metadata(
    md: dict[str, str], reserved: dict[str, str], dst: MetadataFlavor, policy: str
) -> None:
    out = map_metadata({**md, **reserved}, dst, policy)  # type: ignore[arg-type]
    user, ours = split_reserved(out.metadata)
    assert set(ours) <= {"keymap"}, "md5/mtime are crosswind's to write, not copied"
    if "keymap" in ours:
        # The keymap is the mapper's own: stored name -> original name of this object.
        keymap = json.loads(ours["keymap"])
        assert set(keymap) <= set(user)
        assert reserved_name(dst, "keymap") in out.metadata
    for name in user:
        assert name.lower() not in RESERVED_LOWER


@given(azure_md)
def test_azure_keymap_only_when_needed(md: dict[str, str]) -> None:
    """Names a destination holds as they are get no keymap entry."""
    assert map_metadata(md, "azure").metadata == md
    assert map_metadata(md, "free").metadata == md


def test_examples_from_the_docs() -> None:
    out = map_metadata({"FlightNo": "BA117", "flight-no": "x", "9lives": "y"}, "azure")
    assert out.metadata["FlightNo"] == "BA117"
    assert out.metadata["flight_no"] == "x"
    assert out.metadata["_9lives"] == "y"
    assert json.loads(out.metadata["crosswind_keymap"]) == {
        "_9lives": "9lives", "flight_no": "flight-no",
    }
    s3 = map_metadata({"FlightNo": "BA117"}, "s3").metadata
    assert s3["flightno"] == "BA117"
    assert json.loads(s3["crosswind-keymap"]) == {"flightno": "FlightNo"}
    assert re.fullmatch(r"[a-z\-]+", "crosswind-keymap")
