"""What to do with each key. Pure.

Change detection, in order:

1. absent at the destination → copy;
2. sizes differ → copy;
3. a verified copy is recorded and neither side's etag moved since → skip;
4. the source's etag or last-modified time moved since the recorded copy →
   copy (content or metadata changed; Azure changes the etag on either, S3
   only its last-modified time when the bytes stay the same). Where the etag
   misses metadata changes (S3) and times are whole seconds, a change in the
   same second as the copy's read moves neither: a record whose read began
   before that second was surely over (``settled``) is checked (headers and
   metadata compared, one HEAD) before it is trusted;
5. both sides know the content MD5: different → copy; equal → check the
   headers and metadata (HEAD where a listing lacks them) before skipping, since
   no verified copy vouches for them (another tool made the copy, the state was
   lost, or someone touched the destination);
6. nothing proves them equal → copy.

Destination-only keys are deleted only with ``delete=True``; otherwise they
are reported as extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from crosswind.model import ObjectMeta
from crosswind.state import VerifiedCopy
from crosswind.sync.march import Match


class Action(StrEnum):
    COPY = "copy"
    SKIP = "skip"
    DELETE = "delete"
    EXTRA = "extra"
    CHECK = "check"  # bytes equal: compare headers and metadata, then skip or copy


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str


NEW = Decision(Action.COPY, "missing at destination")
SIZE = Decision(Action.COPY, "size differs")
UNCHANGED = Decision(Action.SKIP, "unchanged since verified copy")
SOURCE_CHANGED = Decision(Action.COPY, "source changed since verified copy")
SAME_HASH = Decision(Action.CHECK, "same content MD5, metadata not yet compared")
OTHER_HASH = Decision(Action.COPY, "content MD5 differs")
UNPROVEN = Decision(Action.COPY, "not known to be equal")
DELETE = Decision(Action.DELETE, "not at source")
EXTRA = Decision(Action.EXTRA, "not at source (deletes are off)")


UNSETTLED = Decision(Action.CHECK, "copied in the second of its last change")

#: how far this machine's clock may be ahead of the store's: a read that began
#: this much after the end of its version's last-modified second saw that
#: second's last write
CLOCK_MARGIN_S = 2.0


def mtime_of(meta: ObjectMeta) -> int | None:
    """Last-modified in whole seconds: listings and HEADs agree to the second."""
    return None if meta.last_modified is None else int(meta.last_modified.timestamp())


def settled(r: VerifiedCopy) -> bool:
    """Whether the copy's read began after its version's last-modified second
    ended (with the clock margin), so that no later write can share that second."""
    if r.src_mtime is None or r.src_read_at is None:
        return False
    return r.src_read_at >= r.src_mtime + 1 + CLOCK_MARGIN_S


def decide(m: Match, *, delete: bool, etag_tracks_metadata: bool = True) -> Decision:
    """``etag_tracks_metadata``: the source's etag changes when only headers or
    metadata do (Azure); S3's does not."""
    s, d, r = m.src, m.dst, m.record
    if s is None:
        return DELETE if delete else EXTRA
    if d is None:
        return NEW
    if s.size != d.size:
        return SIZE
    if r is not None and r.src_size == s.size:
        same_source = r.src_etag == s.etag and (
            # S3 keeps the ETag (the MD5 of the bytes) when only metadata changes.
            r.src_mtime is None or s.last_modified is None or r.src_mtime == mtime_of(s))
        if same_source and r.dst_etag == d.etag:
            if (etag_tracks_metadata or s.last_modified is None) or settled(r):
                return UNCHANGED
            return UNSETTLED
        if not same_source:
            return SOURCE_CHANGED
    if s.content_md5 and d.content_md5:
        return SAME_HASH if s.content_md5 == d.content_md5 else OTHER_HASH
    return UNPROVEN
