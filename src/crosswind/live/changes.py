"""The one change model of the replication service. Pure data, no I/O.

A change source turns what it reads (a queue message, a change-stream event, a
poll or a reconcile) into ``Change`` values; an applier makes the replica match
the primary's *current* version of the change's key, so a change is a hint
("look at this key"), never a payload to replay. That makes duplicates,
reordering and lost events harmless: the reconcile finds what events missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ChangeKind = Literal["object", "row"]
ChangeOp = Literal["upsert", "delete"]


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One object event as a cloud delivered it (Event Grid, S3 notification).

    ``key`` is decoded (S3 keys arrive URL-encoded, ``+`` for a space).
    ``sequencer`` orders the events of one key: normalised (lower-case hex,
    left-padded to a fixed width) so that plain string comparison is the
    service's order; ``None`` when the event carried none.
    """

    op: ChangeOp
    #: Azure container or S3 bucket the event is about
    container: str
    key: str
    #: when the change happened at the source, as the event says (UTC, aware)
    event_time: datetime
    sequencer: str | None = None
    etag: str | None = None
    size: int | None = None
    event_id: str | None = None
    #: the event type as delivered, e.g. ``Microsoft.Storage.BlobCreated``,
    #: ``ObjectCreated:Put``
    event_type: str = ""


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What one queue message held: the object events for our container/bucket,
    and one reason per event that was deliberately ignored (another container, a
    test event, an event type that does not change objects)."""

    events: tuple[ObjectEvent, ...]
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """Something changed at key ``key`` of the primary (objects: the object key;
    rows: ``entities.doc_id(pk, rk)``)."""

    kind: ChangeKind
    op: ChangeOp
    key: str
    #: the stream it came from (``azure-blob-events``, ``s3-events``, ``table-poll``, ...)
    stream: str
    #: the source's own time of the change: lag is measured from here
    event_time: datetime | None
    sequencer: str | None = None
    etag: str | None = None
    size: int | None = None


def sequencer_newer(a: str | None, b: str | None) -> bool:
    """Is sequencer ``a`` strictly newer than ``b``? Unknown is never newer, and
    nothing is known to be older than an unknown."""
    if a is None or b is None:
        return False
    width = max(len(a), len(b))
    return a.lower().rjust(width, "0") > b.lower().rjust(width, "0")
