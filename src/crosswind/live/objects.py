"""Make the replica hold the primary's current version of one object key.

A change is only a hint: the applier HEADs the key on the primary and then

* the primary has it and a verified copy of exactly that version is recorded
  → nothing to do (a duplicate or an old event);
* the primary has another version → copy it exactly as ``sync objects`` does
  (``sync/transfer.py``: pinned reads, the MD5 checked by the destination) and
  record the verified copy; a version that changes during the copy is read again;
* the primary no longer has it → delete it on the replica (only the version
  HEAD saw), if the shared max-delete guard allows; otherwise the delete is
  *held* (``DeleteHeld``): the caller keeps it in the DLQ for an operator.

So a delete event is applied only if the object is really gone at the source,
and an upsert event for an object deleted since is a delete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from crosswind.deleteguard import DeleteGuard
from crosswind.errors import CrosswindError, NotFound, PreconditionFailed
from crosswind.model import ObjectMeta, ObjectProps
from crosswind.props_compare import props_differences
from crosswind.state import StateStore, VerifiedCopy
from crosswind.stores.base import ObjectStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.plan import mtime_of, settled
from crosswind.sync.transfer import Transfer

Applied = Literal["copied", "deleted", "unchanged", "absent", "filtered"]


class DeleteHeld(CrosswindError):
    """The max-delete guard refused this delete: it waits for an operator."""


class ReplicaConflict(CrosswindError):
    """The replica's object was written by someone else since crosswind last saw
    it (after cutover: a write that still reached Azure): not overwritten or
    deleted, kept as a conflict for an operator."""

    def __init__(self, message: str, evidence: dict[str, object]) -> None:
        super().__init__(message)
        self.evidence = evidence


ReplicaWrites = Literal["overwrite", "record"]


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    result: Applied
    size: int = 0
    retries: int = 0
    #: a copy of a key with no verified copy recorded before (new on the replica)
    new_key: bool = False


def same_source_version(rec: VerifiedCopy | None, meta: ObjectMeta, *,
                        etag_tracks_metadata: bool = True) -> bool:
    """Is ``meta`` the very source version the verified copy ``rec`` was made from?
    Where the etag misses metadata changes (S3) and times are whole seconds, a
    copy read in the second of its version's change proves nothing (``settled``)."""
    if rec is None or rec.src_size != meta.size or rec.src_etag != meta.etag:
        return False
    # S3 keeps the ETag (the MD5 of the bytes) when only the metadata changes.
    if not (rec.src_mtime is None or meta.last_modified is None
            or rec.src_mtime == mtime_of(meta)):
        return False
    return etag_tracks_metadata or meta.last_modified is None or settled(rec)


class ObjectApplier:
    def __init__(self, src: ObjectStore, dst: ObjectStore, state: StateStore, direction: str,
                 transfer: Transfer, guard: DeleteGuard, guard_base: Callable[[], int],
                 keep: KeyFilter, attempts: int = 3,
                 replica_writes: ReplicaWrites = "overwrite",
                 other_direction: str | None = None) -> None:
        """``replica_writes = "record"``: before overwriting or deleting a replica
        object, check it is a version crosswind knows (the one it last wrote in
        this direction, or the one it last read when that side was the primary,
        ``other_direction``); anything else is a ``ReplicaConflict``."""
        self.replica_writes = replica_writes
        self.other_direction = other_direction
        self.src = src
        self.dst = dst
        self.state = state
        self.direction = direction
        self.transfer = transfer
        self.guard = guard
        self.guard_base = guard_base
        self.keep = keep
        self.attempts = attempts

    async def apply(self, key: str, *, trust_record: bool = True,
                    overwrite: bool = False) -> ApplyOutcome:
        """``trust_record=False`` for what a reconcile found: it compared the replica
        itself, so a recorded copy of this source version does not prove the
        replica still holds it. ``overwrite``: an operator's replay of a conflict —
        the primary's version replaces the replica's."""
        if not self.keep(key):
            return ApplyOutcome("filtered")
        retries = 0
        while True:
            try:
                meta: ObjectMeta | None = await self.src.head(key)
            except NotFound:
                meta = None
            if meta is None:
                return await self._delete(key, overwrite)
            rec = self.state.get_verified(self.direction, key)
            if trust_record and same_source_version(
                    rec, meta, etag_tracks_metadata=self.src.capabilities.etag_tracks_metadata):
                return ApplyOutcome("unchanged", meta.size, retries)
            if rec is None and not overwrite and await self._already_there(key, meta):
                return ApplyOutcome("unchanged", meta.size, retries)
            if self.replica_writes == "record" and not overwrite:
                await self._check_replica(key, rec, meta)
            try:
                outcome = await self.transfer.copy(meta)
            except (PreconditionFailed, NotFound):
                # Changed or deleted at the source since the HEAD: look again.
                retries += 1
                if retries >= self.attempts * 2:
                    raise PreconditionFailed(
                        f"{key}: the source kept changing during the copy") from None
                continue
            r = outcome.receipt
            read = replace(meta, last_modified=outcome.source_modified)
            self.state.record_verified(
                self.direction,
                VerifiedCopy(key, meta.etag, meta.size, r.md5, r.etag, mtime_of(read),
                             outcome.read_at))
            return ApplyOutcome("copied", meta.size, retries, new_key=rec is None)

    async def _already_there(self, key: str, meta: ObjectMeta) -> bool:
        """After a flip, nothing is recorded in this direction yet, and the events of
        crosswind's own copies into the new primary come in (S3 notifies every PUT,
        the ones crosswind made as the replica too). Copying each back would rewrite
        the whole estate on the old primary and, at the next flip, echo back again.
        When the other direction's record shows this very pair — the primary holds
        the version crosswind wrote there, the replica the one it read — and the
        headers and metadata agree (S3 keeps its ETag when only metadata changes),
        the pair is recorded as verified in this direction instead of copied."""
        if not self.other_direction:
            return False
        other = self.state.get_verified(self.other_direction, key)
        if other is None or other.dst_etag != meta.etag or other.src_size != meta.size:
            return False
        read_at = time.time()
        try:
            there = await self.dst.head(key)
        except NotFound:
            return False
        if there.etag != other.src_etag or there.size != meta.size:
            return False
        if props_differences(meta.props or ObjectProps(), there.props or ObjectProps(),
                             self.dst.capabilities.metadata_flavor,
                             self.transfer.settings.metadata_policy):
            return False
        self.state.record_verified(self.direction, VerifiedCopy(
            key, meta.etag, meta.size, other.md5, there.etag, mtime_of(meta), read_at))
        return True

    async def _check_replica(self, key: str, rec: VerifiedCopy | None,
                             meta: ObjectMeta | None, there: ObjectMeta | None = None) -> None:
        """Raise ``ReplicaConflict`` when the replica holds a version crosswind does
        not know. With no record at all (the replica predates crosswind) nothing is
        known to disagree, and the primary's version wins."""
        if there is None:
            try:
                there = await self.dst.head(key)
            except NotFound:
                return
        other = (self.state.get_verified(self.other_direction, key)
                 if self.other_direction else None)
        known = {e for e in (rec.dst_etag if rec else None,
                             other.src_etag if other else None) if e}
        if not known or there.etag in known:
            return
        if meta is not None and meta.content_md5 and there.content_md5 == meta.content_md5 \
                and there.size == meta.size:
            return  # the same bytes: nothing to lose
        raise ReplicaConflict(
            f"{key}: the replica's object changed since crosswind last saw it (etag "
            f"{there.etag}, known {', '.join(sorted(known))}): it was written on the replica "
            "side, so it is neither overwritten nor deleted; dlq replay overwrites it",
            {"replica": {"etag": there.etag, "size": there.size, "md5": there.content_md5,
                         "last_modified": str(there.last_modified)},
             "primary": None if meta is None else {
                 "etag": meta.etag, "size": meta.size, "md5": meta.content_md5,
                 "last_modified": str(meta.last_modified)}})

    async def _delete(self, key: str, overwrite: bool = False) -> ApplyOutcome:
        try:
            there = await self.dst.head(key)
        except NotFound:
            self.state.forget_verified(self.direction, key)
            return ApplyOutcome("absent")
        if self.replica_writes == "record" and not overwrite:
            await self._check_replica(key, self.state.get_verified(self.direction, key), None,
                                      there)
        reason = self.guard.admit(1, self.guard_base())
        if reason is not None:
            raise DeleteHeld(f"delete of {key!r} held by the max-delete guard: {reason}")
        try:
            # Only the version HEAD saw: a newer write on the replica is not ours to remove.
            await self.dst.delete(key, if_match=there.etag)
        except PreconditionFailed:
            raise PreconditionFailed(
                f"{key}: the replica's object changed while it was being deleted") from None
        self.state.forget_verified(self.direction, key)
        return ApplyOutcome("deleted", there.size)
