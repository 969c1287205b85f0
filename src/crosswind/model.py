"""Plain, frozen data that flows between stores, planners and executors. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

EMPTY: Mapping[str, str] = MappingProxyType({})


def strip_etag(etag: str | None) -> str | None:
    """Etags arrive quoted from some APIs and bare from others; keep them bare."""
    if etag is None:
        return None
    return etag.strip('"') or None


@dataclass(frozen=True, slots=True)
class ObjectProps:
    """Standard HTTP content headers plus user metadata of one object."""

    content_type: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: EMPTY)

    def headers(self) -> dict[str, str]:
        """The non-empty content headers, by their field names."""
        out: dict[str, str] = {}
        for name in HEADER_FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


HEADER_FIELDS = (
    "content_type",
    "content_encoding",
    "content_language",
    "content_disposition",
    "cache_control",
)


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """One entry of a listing.

    ``content_md5`` is the hex MD5 of the content when the store knows it without
    reading the bytes (Azure Content-MD5, a single-part S3 ETag, or the hash
    crosswind stored as metadata). ``props`` is filled when the listing carries
    headers and metadata (Azure does; S3 does not).
    """

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    content_md5: str | None = None
    props: ObjectProps | None = None


@dataclass(frozen=True, slots=True)
class WriteReceipt:
    """What the destination reported after a write it accepted and crosswind verified."""

    key: str
    size: int
    etag: str | None
    md5: str
    version: str | None = None


class PutMode(StrEnum):
    """Preconditions are part of a write: a second writer fails loudly."""

    OVERWRITE = "overwrite"
    CREATE = "create"  # only if absent
    UPDATE = "update"  # only if the current etag matches ``if_match``


class Direction(StrEnum):
    AZURE_TO_AWS = "azure-to-aws"
    AWS_TO_AZURE = "aws-to-azure"

    @property
    def source_side(self) -> Literal["azure", "aws"]:
        return "azure" if self is Direction.AZURE_TO_AWS else "aws"

    @property
    def destination_side(self) -> Literal["azure", "aws"]:
        return "aws" if self is Direction.AZURE_TO_AWS else "azure"
