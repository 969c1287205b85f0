"""Whether two objects' headers and user metadata agree after mapping. Pure.

Used by the sync engine (an object whose bytes are known equal still needs
its metadata checked before it is recorded as verified) and by validation.

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
from typing import NamedTuple

from crosswind.errors import MetadataMappingError
from crosswind.mapping import Policy, map_metadata, split_reserved
from crosswind.model import HEADER_FIELDS, ObjectProps
from crosswind.stores.base import MetadataFlavor

DEFAULT_CONTENT_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})


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
