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

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from crosswind.deleteguard import DeleteGuard
from crosswind.errors import CrosswindError, NotFound, PreconditionFailed
from crosswind.model import ObjectMeta
from crosswind.state import StateStore, VerifiedCopy
from crosswind.stores.base import ObjectStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.plan import mtime_of, settled
from crosswind.sync.transfer import Transfer

Applied = Literal["copied", "deleted", "unchanged", "absent", "filtered"]


class DeleteHeld(CrosswindError):
    """The max-delete guard refused this delete: it waits for an operator."""


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
                 keep: KeyFilter, attempts: int = 3) -> None:
        self.src = src
        self.dst = dst
        self.state = state
        self.direction = direction
        self.transfer = transfer
        self.guard = guard
        self.guard_base = guard_base
        self.keep = keep
        self.attempts = attempts

    async def apply(self, key: str, *, trust_record: bool = True) -> ApplyOutcome:
        """``trust_record=False`` for what a reconcile found: it compared the replica
        itself, so a recorded copy of this source version does not prove the
        replica still holds it."""
        if not self.keep(key):
            return ApplyOutcome("filtered")
        retries = 0
        while True:
            try:
                meta: ObjectMeta | None = await self.src.head(key)
            except NotFound:
                meta = None
            if meta is None:
                return await self._delete(key)
            rec = self.state.get_verified(self.direction, key)
            if trust_record and same_source_version(
                    rec, meta, etag_tracks_metadata=self.src.capabilities.etag_tracks_metadata):
                return ApplyOutcome("unchanged", meta.size, retries)
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

    async def _delete(self, key: str) -> ApplyOutcome:
        try:
            there = await self.dst.head(key)
        except NotFound:
            self.state.forget_verified(self.direction, key)
            return ApplyOutcome("absent")
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
