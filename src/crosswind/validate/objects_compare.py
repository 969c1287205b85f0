"""Comparing the two copies of one object. Pure; no I/O.

Order of checks for a key both sides hold: size first (a size mismatch ends
the comparison: the copies differ and hashing them says nothing more), then
content hash, then headers and user metadata after mapping.

* Hash: the MD5 each side *claims* — the service's own (Azure Content-MD5, a
  single-part S3 ETag) or the ``crosswind-md5`` entry crosswind stores on
  every copy. Unknown when a side claims none (S3 multipart objects without
  the entry, Azure block blobs without Content-MD5). With ``--deep`` the bytes
  of both sides are read and hashed; then the copies differ when the bytes
  differ, and a claim that disagrees with its own bytes is a hash mismatch too.
* Headers: Content-Type, -Encoding, -Language, -Disposition, Cache-Control,
  equal as strings; an absent Content-Type equals the services' defaults
  (``application/octet-stream`` on Azure, ``binary/octet-stream`` on S3).
* User metadata: the source's metadata is mapped for the destination exactly
  as a copy would (``mapping.map_metadata`` under the configured policy) and
  compared with the destination's, crosswind's reserved entries
  (``md5``/``mtime``) aside; names compare case-insensitively on S3, which
  lower-cases them; the ``keymap`` entry that restores original spellings is
  compared by content.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Literal, NamedTuple

from crosswind.errors import MetadataMappingError
from crosswind.mapping import Policy, map_metadata, split_reserved
from crosswind.model import HEADER_FIELDS, ObjectMeta, ObjectProps
from crosswind.stores.base import MetadataFlavor
from crosswind.validate.findings import Check, Finding, Kind

Outcome = Literal["equal", "differs", "unknown"]
DEFAULT_CONTENT_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
MAX_LISTED_DIFFERENCES = 5


def claimed_md5(m: ObjectMeta) -> str | None:
    """The hex MD5 a listing or HEAD entry claims for the content, if any."""
    if m.content_md5:
        return m.content_md5.lower()
    if m.props is not None:
        ours = split_reserved(m.props.metadata)[1]
        md5 = ours.get("md5")
        if md5:
            return md5.strip().lower()
    return None


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _headers(p: ObjectProps) -> tuple[str | None, ...]:
    return (p.content_type, p.content_encoding, p.content_language, p.content_disposition,
            p.cache_control)


def _header(name: str, value: str | None) -> str | None:
    if not value:
        return None
    if name == "content_type" and value.lower() in DEFAULT_CONTENT_TYPES:
        return None
    return value


@functools.lru_cache(maxsize=4096)
def _keymap(raw: str | None, fold: bool) -> frozenset[tuple[str, str]]:
    if not raw:
        return frozenset()
    try:
        loaded = json.loads(raw)
    except ValueError:
        return frozenset({("<unreadable keymap>", raw)})
    if not isinstance(loaded, dict):
        return frozenset({("<unreadable keymap>", raw)})
    return frozenset(((str(k).lower() if fold else str(k)), str(v)) for k, v in loaded.items())


# An estate has few distinct sets of metadata *names* and millions of objects,
# so what depends only on the names is worked out once per name set: which
# names are crosswind's reserved entries, and where ``map_metadata`` puts each
# source name on the destination (found by mapping placeholder values).


class _Layout(NamedTuple):
    #: (name, name as compared) of the user entries
    user: tuple[tuple[str, str], ...]
    #: (name, reserved field) of crosswind's own entries
    ours: tuple[tuple[str, str], ...]
    user_names: tuple[str, ...]


@functools.lru_cache(maxsize=4096)
def _layout(names: tuple[str, ...], fold: bool) -> _Layout:
    """Which names are crosswind's reserved entries (as ``split_reserved``
    says) and how user names compare (lower-cased where the destination folds)."""
    user: list[tuple[str, str]] = []
    ours: list[tuple[str, str]] = []
    for n in names:
        field = next(iter(split_reserved({n: ""})[1]), None)
        if field is None:
            user.append((n, n.lower() if fold else n))
        else:
            ours.append((n, field))
    return _Layout(tuple(user), tuple(ours), tuple(n for n, _ in user))


def _split(md: Mapping[str, str], fold: bool = False
           ) -> tuple[dict[str, str], dict[str, str]]:
    """``mapping.split_reserved`` (user names folded if ``fold``), the layout
    of each name set cached."""
    lay = _layout(tuple(md), fold)
    return {out: md[n] for n, out in lay.user}, {f: md[n] for n, f in lay.ours}


@functools.lru_cache(maxsize=4096)
def _name_plan(user_names: tuple[str, ...], keymap: str | None, flavor: MetadataFlavor,
               policy: Policy) -> tuple[tuple[tuple[str, str], ...], frozenset[tuple[str, str]]]:
    """(source name, folded destination name) pairs and the expected keymap,
    exactly as ``map_metadata`` decides them for these names; raises its
    ``MetadataMappingError`` under ``policy = "fail"``."""
    probe = {n: f"v{i}" for i, n in enumerate(user_names)}
    if keymap is not None:
        probe["crosswind-keymap"] = keymap
    out_user, out_ours = _split(map_metadata(probe, flavor, policy).metadata)
    fold = flavor == "s3"
    pairs = tuple((user_names[int(v[1:])], k.lower() if fold else k)
                  for k, v in out_user.items())
    return pairs, _keymap(out_ours.get("keymap"), fold)


def _expected(src_md: Mapping[str, str], flavor: MetadataFlavor, policy: Policy
              ) -> tuple[dict[str, str], frozenset[tuple[str, str]]]:
    """The destination's user metadata (names folded on S3) and keymap that a
    copy of ``src_md`` writes."""
    values = "".join(src_md.values())
    # isprintable() on ASCII text is exactly mapping.py's rule (0x20-0x7e); the
    # reserved entries' values are included, which can only cost the shortcut.
    if flavor == "free" or (values.isascii() and values.isprintable()):
        lay = _layout(tuple(src_md), False)
        keymap = next((src_md[n] for n, f in reversed(lay.ours) if f == "keymap"), None)
        pairs, want_keymap = _name_plan(lay.user_names, keymap, flavor, policy)
        return {stored: src_md[name] for name, stored in pairs}, want_keymap
    # Values the destination cannot hold change what is dropped: no shortcut.
    fold = flavor == "s3"
    exp_user, exp_ours = _split(map_metadata(src_md, flavor, policy).metadata, fold)
    return exp_user, _keymap(exp_ours.get("keymap"), fold)


def props_differences(
    src: ObjectProps, dst: ObjectProps, dst_flavor: MetadataFlavor, policy: Policy
) -> list[str]:
    """What differs between the destination's props and the source's, mapped."""
    diffs: list[str] = []
    if _headers(src) != _headers(dst):  # exact equality first: the common case
        for name in HEADER_FIELDS:
            a, b = _header(name, getattr(src, name)), _header(name, getattr(dst, name))
            if a != b:
                diffs.append(f"{name} {_short(a)} at source, {_short(b)} at destination")
    try:
        want, want_keymap = _expected(src.metadata, dst_flavor, policy)
    except MetadataMappingError as exc:
        return [*diffs, f"source metadata cannot be mapped: {exc}"]
    fold = dst_flavor == "s3"
    got, act_ours = _split(dst.metadata, fold)
    if want != got:
        for name in sorted(want.keys() | got.keys()):
            if want.get(name) != got.get(name):
                diffs.append(f"metadata {name!r} {_short(want.get(name))} expected, "
                             f"{_short(got.get(name))} at destination")
    if want_keymap != _keymap(act_ours.get("keymap"), fold):
        diffs.append("metadata name map (keymap) differs")
    return diffs


class PairResult(NamedTuple):
    """The outcome for one key both sides hold (a tuple: made a million times)."""

    findings: tuple[Finding, ...]
    hash: Outcome
    metadata: Outcome
    deep: bool = False
    sizes_equal: bool = True


def _join(diffs: list[str]) -> str:
    more = len(diffs) - MAX_LISTED_DIFFERENCES
    text = "; ".join(diffs[:MAX_LISTED_DIFFERENCES])
    return f"{text}; and {more} more" if more > 0 else text


def compare_pair(
    src: ObjectMeta,
    dst: ObjectMeta,
    dst_flavor: MetadataFlavor,
    policy: Policy,
    read: tuple[str, str] | None = None,
) -> PairResult:
    """Compare two copies of ``src.key``; ``read`` holds the MD5s of the bytes
    actually read from (source, destination) in deep mode."""
    key = src.key
    if src.size != dst.size:
        f = Finding(Check.OBJECTS, Kind.SIZE, key,
                    f"size {src.size} at source, {dst.size} at destination")
        return PairResult((f,), "unknown", "unknown", sizes_equal=False)
    findings: list[Finding] = []
    a, b = claimed_md5(src), claimed_md5(dst)
    hash_outcome: Outcome = "unknown"
    if read is not None:
        ra, rb = read
        problems = []
        if ra != rb:
            problems.append(f"bytes differ: MD5 {ra} at source, {rb} at destination")
        if a is not None and a != ra:
            problems.append(f"source claims MD5 {a} but its bytes hash to {ra}")
        if b is not None and b != rb:
            problems.append(f"destination claims MD5 {b} but its bytes hash to {rb}")
        hash_outcome = "differs" if problems else "equal"
        if problems:
            findings.append(Finding(Check.OBJECTS, Kind.HASH, key, _join(problems)))
    elif a is not None and b is not None:
        hash_outcome = "equal" if a == b else "differs"
        if a != b:
            findings.append(Finding(Check.OBJECTS, Kind.HASH, key,
                                    f"MD5 {a} at source, {b} at destination"))
    md_outcome: Outcome = "unknown"
    if src.props is not None and dst.props is not None:
        diffs = props_differences(src.props, dst.props, dst_flavor, policy)
        md_outcome = "differs" if diffs else "equal"
        if diffs:
            findings.append(Finding(Check.OBJECTS, Kind.METADATA, key, _join(diffs)))
    return PairResult(tuple(findings), hash_outcome, md_outcome, read is not None)


def missing(src: ObjectMeta) -> Finding:
    return Finding(Check.OBJECTS, Kind.MISSING, src.key, f"{src.size} bytes at source only")


def extra(dst: ObjectMeta) -> Finding:
    return Finding(Check.OBJECTS, Kind.EXTRA, dst.key, f"{dst.size} bytes at destination only")
