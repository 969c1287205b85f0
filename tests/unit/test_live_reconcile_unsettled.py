"""The reconcile and crosswind's own unsettled copies (S3 as the primary: neither
the ETag nor the whole-second Last-Modified shows a metadata change made in the
second of a copy): they are handed over to be looked at again, as re-checks,
not as drift and without a lag sample; a key the events really missed still is
drift, with its lag measured from the source's change time."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path

from crosswind.live.reconcile import STREAM, reconcile_objects
from crosswind.live.scheduler import KeyScheduler
from crosswind.model import ObjectProps
from crosswind.state import StateStore, VerifiedCopy
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.filters import KeyFilter
from crosswind.sync.plan import mtime_of

DIRECTION = "aws-to-azure"


def test_unsettled_copies_are_rechecked_not_drift_and_bring_no_lag() -> None:
    async def go() -> None:
        src, dst = MemoryStore("s3-like"), MemoryStore("replica")
        src.capabilities = dataclasses.replace(src.capabilities, etag_tracks_metadata=False)
        state = StateStore(Path(tempfile.mkdtemp(prefix="cw-unsettled-")))
        try:
            props = ObjectProps(content_type="application/json", metadata={"rev": "1"})
            await src.put("copied", b"{}", props, md5=md5_hex(b"{}"))
            await dst.put("copied", b"{}", props, md5=md5_hex(b"{}"))
            # no event brought this one: a real miss
            await src.put("missed", b"[]", props, md5=md5_hex(b"[]"))
            s, d = await src.head("copied"), await dst.head("copied")
            # copied by an event within the second of its write: unsettled
            state.record_verified(DIRECTION, VerifiedCopy(
                "copied", s.etag, s.size, s.content_md5 or "", d.etag, mtime_of(s),
                float(mtime_of(s)) + 0.5))
            sched = KeyScheduler()
            res = await reconcile_objects(src, dst, state, DIRECTION, KeyFilter(), sched,
                                          drift_grace_s=0, is_pending=sched.is_pending)
            assert (res.found, res.rechecked, res.drift) == (2, 1, 1)
            assert res.drift_examples == ["upsert missed (missing at destination)"]
            assert res.as_dict()["rechecked"] == 1
            works = {}
            for _ in range(2):
                w = await sched.take()
                assert w is not None
                works[w.key] = w.change
            assert works["copied"].stream == STREAM and works["copied"].event_time is None
            missed = await src.head("missed")
            assert works["missed"].event_time == missed.last_modified
        finally:
            state.close()

    asyncio.run(go())


def test_a_settled_copy_is_not_handed_over() -> None:
    async def go() -> None:
        src, dst = MemoryStore("s3-like"), MemoryStore("replica")
        src.capabilities = dataclasses.replace(src.capabilities, etag_tracks_metadata=False)
        state = StateStore(Path(tempfile.mkdtemp(prefix="cw-settled-")))
        try:
            await src.put("copied", b"{}", ObjectProps(), md5=md5_hex(b"{}"))
            await dst.put("copied", b"{}", ObjectProps(), md5=md5_hex(b"{}"))
            s, d = await src.head("copied"), await dst.head("copied")
            state.record_verified(DIRECTION, VerifiedCopy(
                "copied", s.etag, s.size, s.content_md5 or "", d.etag, mtime_of(s),
                float(mtime_of(s)) + 5))  # read well after its second
            sched = KeyScheduler()
            res = await reconcile_objects(src, dst, state, DIRECTION, KeyFilter(), sched,
                                          drift_grace_s=0)
            assert (res.found, res.rechecked, res.drift) == (0, 0, 0)
            assert sched.idle
        finally:
            state.close()

    asyncio.run(go())
