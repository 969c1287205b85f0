"""A bug in one object's copy fails that object; it never hangs or ends the run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crosswind.model import ObjectProps
from crosswind.state import StateStore
from crosswind.stores.base import ObjectReader
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.engine import SyncOptions, SyncRun


class BuggyStore(MemoryStore):
    async def get(self, key: str, **kw: Any) -> ObjectReader:
        if key.startswith("bug"):
            raise RuntimeError(f"boom on {key}")
        return await super().get(key, **kw)


def test_unexpected_exception_fails_only_that_object(tmp_path: Path) -> None:
    async def go() -> Any:
        src, dst = BuggyStore("src"), MemoryStore("dst")
        for i in range(200):  # more than the queue holds, so a dead worker would hang
            key = f"bug{i}" if i % 3 == 0 else f"ok{i}"
            await src.put(key, b"x", ObjectProps(), md5=md5_hex(b"x"))
        state = StateStore(tmp_path)
        try:
            opts = SyncOptions(direction="azure-to-aws", concurrency=2)
            return await asyncio.wait_for(SyncRun(src, dst, state, opts).run(), 30)
        finally:
            state.close()

    result = asyncio.run(go())
    assert result.status == "failed" and result.exit_code == 1
    assert result.stats.failed.count == 67 and result.stats.copied.count == 133
    assert {f["kind"] for f in result.failures} == {"InternalError"}
    assert "RuntimeError: boom on bug0" in {f["reason"] for f in result.failures}
