"""What validation can find. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Check(StrEnum):
    """The comparisons validation runs; each has its own figures. The join is
    checked on each side: Azure Blob against Azure Tables, S3 against DocumentDB."""

    OBJECTS = "objects"
    METADATA = "metadata"
    JOIN_AZURE = "join-azure"
    JOIN_AWS = "join-aws"


JOINS = (Check.JOIN_AZURE, Check.JOIN_AWS)


class Kind(StrEnum):
    """Discrepancy classes (the issue's list), one name each in every report."""

    MISSING = "missing_on_destination"
    EXTRA = "extra_on_destination"
    SIZE = "size_mismatch"
    HASH = "hash_mismatch"
    METADATA = "metadata_mismatch"
    ORPHAN_ROW = "orphan_row"
    ORPHAN_OBJECT = "orphan_object"
    UNPARSEABLE = "unparseable_name"


#: Classes that a re-copy in the configured direction can fix.
REPAIRABLE = frozenset({Kind.MISSING, Kind.SIZE, Kind.HASH, Kind.METADATA})


@dataclass(frozen=True, slots=True)
class Finding:
    """One discrepancy of one item (an object key, a row key, a join key)."""

    check: Check
    kind: Kind
    key: str
    detail: str
