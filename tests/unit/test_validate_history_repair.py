"""Validation runs in the state store (batched findings, key streams, pruning)
and repair through the sync engine over memory stores."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crosswind.model import ObjectProps
from crosswind.state import StateStore
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.result import SyncOptions
from crosswind.validate.findings import REPAIRABLE, Check, Finding, Kind
from crosswind.validate.history import BATCH, RUN_KIND, FindingLog
from crosswind.validate.repair import repair_objects


def test_findings_are_batched_and_streamed_in_key_order(tmp_path: Path) -> None:
    state = StateStore(tmp_path)
    try:
        log = FindingLog(state)
        run = state.start_run(RUN_KIND, "azure-to-aws", False)
        w = log.writer(run)
        keys = [f"k{i:05d}" for i in range(BATCH * 2 + 7)][::-1]  # arrive out of order
        for k in keys:
            w.add([Finding(Check.OBJECTS, Kind.HASH, k, "d"),
                   Finding(Check.OBJECTS, Kind.METADATA, k, "d")])
        assert w.written >= BATCH  # written while the run goes on, not at the end
        w.add([Finding(Check.OBJECTS, Kind.EXTRA, "zz", "d"),
               Finding(Check.METADATA, Kind.MISSING, "A/1", "d")])
        w.flush()
        assert w.written == 2 * len(keys) + 2
        got = list(log.keys(run, Check.OBJECTS, REPAIRABLE))
        assert got == sorted(keys)  # distinct, code-point order, extras left out
        assert list(log.keys(run, Check.METADATA, {Kind.MISSING})) == ["A/1"]
    finally:
        state.close()


def test_history_and_pruning(tmp_path: Path) -> None:
    state = StateStore(tmp_path)
    try:
        log = FindingLog(state)
        ids = []
        for i in range(5):
            run = state.start_run(RUN_KIND, "azure-to-aws", False)
            w = log.writer(run)
            w.add([Finding(Check.OBJECTS, Kind.MISSING, f"k{i}", "d")])
            w.flush()
            state.finish_run(run, "failed", {"kind": "validate", "verdict": "fail",
                                             "totals": {"items": 10, "completeness_pct": 90.0,
                                                        "pass_rate_pct": 90.0},
                                             "discrepancy_counts": {"missing": 1},
                                             "checks": {"objects": {}}})
            ids.append(run)
        other = state.start_run("objects", "azure-to-aws", False)
        h = log.history()
        assert [r["id"] for r in h] == ids[::-1]
        assert h[0]["verdict"] == "fail" and h[0]["completeness_pct"] == 90.0
        assert log.prune(2) == 3
        assert [r["id"] for r in log.history()] == ids[:2:-1]
        assert log.findings(ids[0]) == [] and len(log.findings(ids[4])) == 1
        assert state.runs("objects")[0]["id"] == other  # other kinds of runs are kept
    finally:
        state.close()


def test_repair_recopies_only_the_given_keys_in_one_direction(tmp_path: Path) -> None:
    src, dst = MemoryStore("src", "azure"), MemoryStore("dst", "s3")

    async def go() -> None:
        for k in ("a", "b", "c", "d"):
            await src.put(k, k.encode() * 3, ObjectProps(metadata={"Seq": k}),
                          md5=md5_hex(k.encode() * 3))
        # b: equal bytes, wrong metadata (the planner alone would skip it: same MD5)
        await dst.put("b", b"bbb", ObjectProps(metadata={"seq": "wrong"}), md5=md5_hex(b"bbb"))
        await dst.put("c", b"ccc", ObjectProps(metadata={"seq": "c"}), md5=md5_hex(b"ccc"))
        await dst.put("extra", b"e", ObjectProps(), md5=md5_hex(b"e"))
        c_etag = dst.objects["c"].etag
        state = StateStore(tmp_path)
        try:
            # "a" missing, "b" metadata; "d" vanished from the source since validation.
            await src.delete("d")
            result = await repair_objects(src, dst, state, ["a", "b", "d"],
                                          SyncOptions(direction="azure-to-aws", delete=True))
        finally:
            state.close()
        assert result.status == "succeeded"
        assert result.stats.copied.count == 2
        assert sorted(dst.objects) == ["a", "b", "c", "extra"]  # nothing deleted
        assert dst.objects["b"].props.metadata["seq"] == "b"
        assert dst.objects["c"].etag == c_etag  # not asked for: untouched
        assert sorted(src.objects) == ["a", "b", "c"]  # the source is only read

    asyncio.run(go())
