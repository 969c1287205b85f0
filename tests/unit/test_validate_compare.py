"""Comparing two copies of one object (pure): sizes, hashes, deep reads,
headers and metadata after mapping; what a copy writes, validation accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosswind.model import ObjectMeta, ObjectProps
from crosswind.props_compare import props_differences
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.transfer import destination_props
from crosswind.validate.findings import Kind
from crosswind.validate.objects_compare import claimed_md5, compare_pair

MD5_A = md5_hex(b"a")
MD5_B = md5_hex(b"b")


def meta(key: str = "k", size: int = 1, md5: str | None = MD5_A,
         props: ObjectProps | None = None) -> ObjectMeta:
    return ObjectMeta(key, size, "e1", datetime(2026, 1, 1, tzinfo=UTC), md5, props)


def kinds(r: Any) -> list[Kind]:
    return [f.kind for f in r.findings]


def test_size_mismatch_ends_the_comparison() -> None:
    r = compare_pair(meta(size=1), meta(size=2, md5=MD5_B), "s3", "rename")
    assert kinds(r) == [Kind.SIZE] and not r.sizes_equal
    assert "size 1 at source, 2 at destination" in r.findings[0].detail


def test_hash_from_listings_or_from_crosswinds_entry() -> None:
    assert kinds(compare_pair(meta(), meta(md5=MD5_B), "s3", "rename")) == [Kind.HASH]
    assert compare_pair(meta(), meta(), "s3", "rename").hash == "equal"
    # No service hash at the destination (S3 multipart): the crosswind-md5 entry answers.
    dst = meta(md5=None, props=ObjectProps(metadata={"crosswind-md5": MD5_B}))
    assert claimed_md5(dst) == MD5_B
    assert kinds(compare_pair(meta(props=ObjectProps()), dst, "s3", "rename")) == [Kind.HASH]
    unknown = compare_pair(meta(), meta(md5=None), "s3", "rename")
    assert unknown.hash == "unknown" and not unknown.findings


def test_deep_read_decides_and_catches_lying_claims() -> None:
    same = compare_pair(meta(), meta(), "s3", "rename", read=(MD5_A, MD5_A))
    assert same.hash == "equal" and same.deep
    differ = compare_pair(meta(md5=None), meta(md5=None), "s3", "rename", read=(MD5_A, MD5_B))
    assert kinds(differ) == [Kind.HASH] and "bytes differ" in differ.findings[0].detail
    # Equal bytes, but the destination's stored MD5 is stale.
    stale = compare_pair(meta(), meta(md5=MD5_B), "s3", "rename", read=(MD5_A, MD5_A))
    assert kinds(stale) == [Kind.HASH]
    assert "destination claims MD5" in stale.findings[0].detail


def test_metadata_compared_after_mapping_azure_to_s3() -> None:
    src = ObjectProps(content_type="application/json",
                      metadata={"FlightNo": "AA1", "Origin": "DFW"})
    # What S3 returns: lower-cased names, the keymap restoring spellings, our entries.
    dst = ObjectProps(content_type="application/json", metadata={
        "flightno": "AA1", "origin": "DFW", "crosswind-md5": MD5_A,
        "crosswind-mtime": "2026-01-01T00:00:00+00:00",
        "crosswind-keymap": '{"flightno": "FlightNo", "origin": "Origin"}'})
    assert props_differences(src, dst, "s3", "rename") == []
    changed = ObjectProps(content_type="application/json",
                          metadata={**dst.metadata, "origin": "LAX"})
    diffs = props_differences(src, changed, "s3", "rename")
    assert diffs == ["metadata 'origin' 'DFW' expected, 'LAX' at destination"]
    no_keymap = {k: v for k, v in dst.metadata.items() if k != "crosswind-keymap"}
    assert props_differences(src, ObjectProps(content_type="application/json",
                                              metadata=no_keymap), "s3", "rename") == [
        "metadata name map (keymap) differs"]


def test_headers_and_default_content_types() -> None:
    assert props_differences(ObjectProps(), ObjectProps(content_type="binary/octet-stream"),
                             "s3", "rename") == []
    assert props_differences(ObjectProps(content_type="application/octet-stream"),
                             ObjectProps(), "azure", "rename") == []
    d = props_differences(ObjectProps(cache_control="max-age=60"), ObjectProps(), "s3", "rename")
    assert d == ["cache_control 'max-age=60' at source, none at destination"]


def test_unmappable_source_metadata_is_a_mismatch_not_a_crash() -> None:
    src = ObjectProps(metadata={"bad-name": "x"})
    d = props_differences(src, ObjectProps(), "azure", "fail")
    assert len(d) == 1 and d[0].startswith("source metadata cannot be mapped")


names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
headers = st.one_of(st.none(), st.sampled_from(["application/json", "text/plain", "gzip",
                                                "en-US", "inline", "max-age=60"]))


@given(
    md=st.dictionaries(names, values, max_size=6),
    src_flavor=st.sampled_from(["azure", "s3", "free"]),
    dst_flavor=st.sampled_from(["azure", "s3", "free"]),
    policy=st.sampled_from(["rename", "skip"]),
    ctype=headers, cache=headers,
)
def test_what_a_copy_writes_validation_accepts(md: dict[str, str], src_flavor: Any,
                                               dst_flavor: Any, policy: Any,
                                               ctype: str | None, cache: str | None) -> None:
    src_props = ObjectProps(content_type=ctype, cache_control=cache, metadata=md)
    src = meta(props=src_props)
    dst_store = MemoryStore("d", dst_flavor)
    written, _, _ = destination_props(src_props, src, dst_store, policy, MD5_A)
    if dst_flavor == "s3":  # S3 hands names back lower-cased
        written = ObjectProps(**written.headers(),
                              metadata={k.lower(): v for k, v in written.metadata.items()})
    r = compare_pair(src, meta(props=written), dst_flavor, policy)
    assert r.findings == () and r.metadata == "equal" and r.hash == "equal"
    # And a change of any one user entry at the destination is seen.
    user = [k for k in written.metadata if not k.lower().startswith("crosswind")]
    if user:
        bumped = {**written.metadata, user[0]: written.metadata[user[0]] + "!"}
        r2 = compare_pair(src, meta(props=ObjectProps(**written.headers(), metadata=bumped)),
                          dst_flavor, policy)
        assert [f.kind for f in r2.findings] == [Kind.METADATA]


any_values = st.text(st.characters(min_codepoint=0x09, max_codepoint=0x2FF), max_size=8)
reserved = st.sampled_from(["crosswind-md5", "crosswind_mtime", "Crosswind-Keymap",
                            "crosswind-keymap"])


@given(
    md=st.dictionaries(st.one_of(names, reserved), st.one_of(values, any_values), max_size=6),
    keymap=st.one_of(st.none(), st.dictionaries(names, names, max_size=3)),
    flavor=st.sampled_from(["azure", "s3", "free"]),
    policy=st.sampled_from(["rename", "skip", "fail"]),
)
def test_cached_expectation_equals_map_metadata(md: dict[str, str], keymap: Any, flavor: Any,
                                                policy: Any) -> None:
    """The per-name-set shortcut must give exactly what ``map_metadata`` gives."""
    import json

    from crosswind.errors import MetadataMappingError
    from crosswind.mapping import map_metadata, split_reserved
    from crosswind.props_compare import _expected

    if keymap is not None:
        md = {**md, "crosswind-keymap": json.dumps(keymap)}
    try:
        direct = map_metadata(md, flavor, policy).metadata
    except MetadataMappingError:
        with pytest.raises(MetadataMappingError):
            _expected(md, flavor, policy)
        return
    user, ours = split_reserved(direct)
    fold = flavor == "s3"
    want = {(k.lower() if fold else k): v for k, v in user.items()}
    got, got_keymap = _expected(md, flavor, policy)
    assert got == want
    raw = ours.get("keymap")
    assert dict(got_keymap) == ({(k.lower() if fold else k): v
                                 for k, v in json.loads(raw).items()} if raw else {})
