"""A DataSync task report → crosswind's figures. Pure: documents in, tallies out.

A STANDARD task report (AWS DataSync User Guide, "Task reports") is a set of
JSON documents DataSync writes under the report's S3 prefix: a summary of the
execution, and detailed reports, each naming the execution
(``TaskExecutionId``) and holding one list — ``Transferred``, ``Verified``,
``Deleted`` or ``Skipped`` — of entries with the item's ``RelativePath`` (from
the location's root, starting with ``/``), its source metadata (``Type``,
``ContentSize``), a status (``TransferStatus``, ``VerifyStatus``, ...:
``SUCCESS`` or ``FAILED``) and, on failure, an error code and detail. Large
lists are split over several documents. This reader keys on those documented
names only and ignores any other field, so extra fields in a real report do not
matter; folders (``Type`` ``Directory``, or a path ending in ``/``) are not
objects and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crosswind.observability.stats import Tally
from crosswind.secrets import redact

SECTIONS = ("Transferred", "Verified", "Deleted", "Skipped")
MAX_FAILURES = 1000


def key_of(entry: Mapping[str, Any]) -> str | None:
    """The object key of a report entry, or None for a folder or an entry without a path."""
    path = entry.get("RelativePath")
    if not isinstance(path, str) or not path or path.endswith("/"):
        return None
    meta = entry.get("SourceMetadata") or entry.get("DestinationMetadata") or {}
    if isinstance(meta, Mapping) and str(meta.get("Type", "")).lower() == "directory":
        return None
    return path[1:] if path.startswith("/") else path


def size_of(entry: Mapping[str, Any]) -> int:
    for side in ("SourceMetadata", "DestinationMetadata"):
        meta = entry.get(side)
        if isinstance(meta, Mapping):
            try:
                return int(meta.get("ContentSize", 0) or 0)
            except (TypeError, ValueError):
                return 0
    return 0


def status_of(entry: Mapping[str, Any]) -> str:
    """The entry's outcome: the value of its ``...Status`` field (upper case)."""
    for k, v in entry.items():
        if k.endswith("Status") and isinstance(v, str):
            return v.upper()
    return "UNKNOWN"


def _error_of(entry: Mapping[str, Any]) -> str:
    parts = [str(entry[k]) for k in ("ErrorCode", "ErrorDetail", "FailureReason")
             if entry.get(k)]
    return redact(": ".join(parts) or "no error given")[:500]


@dataclass
class ReportTally:
    """What the task report says, section by section (successes and failures),
    the documents read and the first failures."""

    documents: int = 0
    execution_id: str | None = None
    summary: dict[str, Any] | None = None
    ok: dict[str, Tally] = field(default_factory=lambda: {s: Tally() for s in SECTIONS})
    failed: dict[str, Tally] = field(default_factory=lambda: {s: Tally() for s in SECTIONS})
    failures: list[dict[str, str]] = field(default_factory=list)
    #: documents of another execution (an older report under the same prefix)
    foreign: int = 0

    def add(self, doc: Mapping[str, Any], on_verified: Callable[[str, int], None],
            execution_id: str | None = None) -> None:
        """Fold one report document in; ``on_verified(key, size)`` for each object
        DataSync verified."""
        eid = doc.get("TaskExecutionId")
        if execution_id is not None and isinstance(eid, str) and eid and eid != execution_id:
            self.foreign += 1
            return
        self.documents += 1
        if isinstance(eid, str):
            self.execution_id = eid
        lists = [s for s in SECTIONS if isinstance(doc.get(s), list)]
        if not lists:
            # The summary: no item list; keep its top-level figures, not its settings.
            self.summary = {k: v for k, v in doc.items()
                            if isinstance(v, (str, int, float, bool)) or k == "Result"}
            return
        for section in lists:
            for entry in doc[section]:
                if not isinstance(entry, Mapping):
                    continue
                key = key_of(entry)
                if key is None:
                    continue
                size = size_of(entry)
                if status_of(entry) == "SUCCESS":
                    self.ok[section].add(size)
                    if section == "Verified":
                        on_verified(key, size)
                else:
                    self.failed[section].add(size)
                    if len(self.failures) < MAX_FAILURES:
                        self.failures.append({"key": key, "kind": f"DataSync{section}",
                                              "reason": _error_of(entry)})

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "execution_id": self.execution_id,
            "transferred": self.ok["Transferred"].as_dict(),
            "verified": self.ok["Verified"].as_dict(),
            "deleted": self.ok["Deleted"].as_dict(),
            "skipped": self.ok["Skipped"].as_dict(),
            "failed": {s.lower(): self.failed[s].as_dict() for s in SECTIONS},
            "summary": self.summary,
        }

    @property
    def failed_count(self) -> int:
        return sum(t.count for t in self.failed.values())
