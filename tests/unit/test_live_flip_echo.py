"""After a flip, the events of crosswind's own copies into the new primary (S3
notifies every PUT, those crosswind made as the replica too) must not copy each
object back: the pair the other direction verified is recorded, not rewritten.
A metadata-only change on the new primary (S3 keeps the ETag) is still copied."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from crosswind.deleteguard import DeleteGuard
from crosswind.live.objects import ObjectApplier
from crosswind.model import ObjectProps
from crosswind.observability.stats import SyncStats
from crosswind.state import StateStore
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.budget import ByteBudget
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import Transfer, TransferSettings

FWD, REV = "azure-to-aws", "aws-to-azure"


def _applier(src: MemoryStore, dst: MemoryStore, state: StateStore, direction: str,
             other: str) -> ObjectApplier:
    transfer = Transfer(src, dst, TransferSettings(), ByteBudget(64 << 20), SyncStats())
    return ObjectApplier(src, dst, state, direction, transfer, DeleteGuard(100, 100.0),
                         lambda: 10, KeyFilter(), other_direction=other)


def test_the_echo_of_an_own_copy_is_recorded_not_copied_back() -> None:
    async def go(state: StateStore) -> None:
        azure, s3 = MemoryStore("azure"), MemoryStore("s3")
        data = b'{"flight": "AA0042"}'
        props = ObjectProps(content_type="application/json", metadata={"origin": "LHR"})
        for key in ("echo", "changed"):
            await azure.put(key, data, props, md5=md5_hex(data))
        fwd = _applier(azure, s3, state, FWD, REV)
        for key in ("echo", "changed"):
            assert (await fwd.apply(key)).result == "copied"
        before = {k: azure.objects[k].etag for k in ("echo", "changed")}
        # on the new primary, after the copy: metadata only (S3 keeps the ETag)
        changed = s3.objects["changed"]
        s3.objects["changed"] = type(changed)(changed.data, ObjectProps(
            content_type="application/json", metadata={"origin": "JFK"}), changed.etag,
            changed.modified)
        rev = _applier(s3, azure, state, REV, FWD)  # the flip: nothing recorded this way
        assert (await rev.apply("echo")).result == "unchanged"
        assert azure.objects["echo"].etag == before["echo"]  # not rewritten
        assert state.get_verified(REV, "echo") is not None  # and now known this way
        assert (await rev.apply("changed")).result == "copied"
        assert azure.objects["changed"].props.metadata["origin"] == "JFK"

    with tempfile.TemporaryDirectory(prefix="cw-echo-") as tmp:
        state = StateStore(Path(tmp))
        try:
            asyncio.run(go(state))
        finally:
            state.close()
