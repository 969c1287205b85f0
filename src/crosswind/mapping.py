"""Object metadata between Azure Blob and S3 (and our own stores). Pure; no I/O.

The mapping, also in the README:

* Content headers (Content-Type, -Encoding, -Language, -Disposition,
  Cache-Control) map one to one.
* User metadata names: Azure names are C# identifiers, case-insensitive but
  case-preserving (``FlightNo``); S3 names are lower-cased HTTP header tokens
  (``flight-no``). A name keeps its spelling when the destination can hold it;
  S3 lower-cases it. A name the destination cannot hold (``flight-no`` on
  Azure, a space or non-ASCII anywhere) is handled by policy:
  ``rename`` (default) replaces each invalid character with ``_`` (and prefixes
  ``_`` before a leading digit), adding ``_2``, ``_3`` … on a clash; ``skip``
  drops the entry; ``fail`` fails the object. Every name that changed,
  by case or by rename, is recorded in one reserved entry, ``crosswind-keymap``
  (``crosswind_keymap`` on Azure), a JSON object ``{stored: original}``, so the
  way back restores the original names exactly.
* Values must be printable ASCII (they travel as HTTP headers on both clouds);
  an entry whose value is not is skipped (``rename``/``skip``) or fails the
  object (``fail``).
* Reserved entries written by crosswind: ``crosswind-md5`` (hex MD5 of the
  content as written), ``crosswind-mtime`` (source last-modified, ISO 8601),
  ``crosswind-keymap``. They are never copied as user metadata.
* The total size of names and values must fit the destination (S3 2 KiB,
  Azure 8 KiB), or the object fails with a clear reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from crosswind.errors import MetadataMappingError
from crosswind.stores.base import MetadataFlavor

Policy = Literal["rename", "skip", "fail"]
RESERVED_FIELDS = ("md5", "mtime", "keymap")

_AZURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# RFC 9110 token characters: what an S3 header name may hold.
_S3_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_VALUE = re.compile(r"[\x20-\x7e]*\Z")


def reserved_name(flavor: MetadataFlavor, name: str) -> str:
    return f"crosswind_{name}" if flavor == "azure" else f"crosswind-{name}"


def _reserved_field(name: str) -> str | None:
    low = name.lower()
    for f in RESERVED_FIELDS:
        if low in (f"crosswind-{f}", f"crosswind_{f}"):
            return f
    return None


def split_reserved(metadata: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(user metadata, crosswind's own fields by short name)."""
    user: dict[str, str] = {}
    ours: dict[str, str] = {}
    for k, v in metadata.items():
        f = _reserved_field(k)
        if f is None:
            user[k] = v
        else:
            ours[f] = v
    return user, ours


def valid_name(flavor: MetadataFlavor, name: str) -> bool:
    if flavor == "azure":
        return bool(_AZURE_NAME.match(name))
    if flavor == "s3":
        return bool(_S3_NAME.match(name))
    return bool(name)


def _stored_form(flavor: MetadataFlavor, name: str) -> str:
    return name.lower() if flavor == "s3" else name


def _renamed(flavor: MetadataFlavor, name: str) -> str:
    if flavor == "azure":
        out = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if not out or out[0].isdigit():
            out = "_" + out
        return out
    out = re.sub(r"[^!#$%&'*+\-.^_`|~0-9a-z]", "_", name.lower())
    return out or "_"


def _fold(flavor: MetadataFlavor, name: str) -> str:
    """Names that the destination treats as the same name."""
    return name if flavor == "free" else name.lower()


@dataclass(frozen=True, slots=True)
class MappedMetadata:
    metadata: dict[str, str]
    renamed: tuple[tuple[str, str], ...] = ()
    dropped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def original_names(metadata: Mapping[str, str]) -> dict[str, str]:
    """User metadata with the names a ``crosswind-keymap`` entry recorded restored."""
    user, ours = split_reserved(metadata)
    keymap: dict[str, str] = {}
    if "keymap" in ours:
        try:
            loaded = json.loads(ours["keymap"])
            if isinstance(loaded, dict):
                keymap = {str(k).lower(): str(v) for k, v in loaded.items()}
        except ValueError:
            keymap = {}  # a damaged keymap only loses original spellings
    return {keymap.get(k.lower(), k): v for k, v in user.items()}


def map_metadata(
    metadata: Mapping[str, str], dst: MetadataFlavor, policy: Policy = "rename"
) -> MappedMetadata:
    """Map source user metadata (reserved entries allowed; they are dropped and
    their keymap applied) to what ``dst`` stores, plus a keymap if needed."""
    originals = original_names(metadata)
    out: dict[str, str] = {}
    taken: set[str] = set()

    def free(stored: str) -> bool:
        # A user name must never land on one of crosswind's reserved entries
        # ("crosswind.keymap" renamed for Azure is "crosswind_keymap").
        return _fold(dst, stored) not in taken and _reserved_field(stored) is None

    keymap: dict[str, str] = {}
    renamed: list[tuple[str, str]] = []
    dropped: list[str] = []
    notes: list[str] = []
    # Valid names first, so a renamed name never takes a name that exists as is.
    ordered = sorted(originals.items(), key=lambda kv: (not valid_name(dst, kv[0]), kv[0]))
    for name, value in ordered:
        if dst != "free" and not _VALUE.match(value):
            if policy == "fail":
                raise MetadataMappingError(
                    f"metadata {name!r}: value is not printable ASCII, which the destination "
                    "cannot hold (metadata_key_policy = fail)"
                )
            dropped.append(name)
            notes.append(f"{name}: value is not printable ASCII; dropped")
            continue
        if valid_name(dst, _stored_form(dst, name)) and free(_stored_form(dst, name)):
            stored = _stored_form(dst, name)
        elif policy == "fail":
            raise MetadataMappingError(
                f"metadata name {name!r} cannot be stored on the destination "
                "(metadata_key_policy = fail)"
            )
        elif policy == "skip":
            dropped.append(name)
            notes.append(f"{name}: name not allowed on destination; dropped")
            continue
        else:
            base = _renamed(dst, name)
            stored, n = base, 2
            while not free(stored):
                stored, n = f"{base}_{n}", n + 1
            renamed.append((name, stored))
        taken.add(_fold(dst, stored))
        out[stored] = value
        if stored != name:
            keymap[stored] = name
    if keymap:
        out[reserved_name(dst, "keymap")] = json.dumps(keymap, sort_keys=True, ensure_ascii=True)
    return MappedMetadata(out, tuple(renamed), tuple(dropped), tuple(notes))


def metadata_size(metadata: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


def check_metadata_size(metadata: Mapping[str, str], limit: int, key: str) -> None:
    size = metadata_size(metadata)
    if size > limit:
        raise MetadataMappingError(
            f"{key}: user metadata is {size} bytes, over the destination's limit of {limit}"
        )
