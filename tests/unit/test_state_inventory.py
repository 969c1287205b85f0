"""State store and inventory: pure-ish pieces that need no servers."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosswind.inventory import Inventory
from crosswind.model import ObjectMeta
from crosswind.state import StateLocked, StateStore, VerifiedCopy


def test_verified_records_stream_in_code_point_order(tmp_path: Path) -> None:
    s = StateStore(tmp_path)
    keys = ["b", "a😀", "a\ue000", "A", "a/b", "a-b", "é"]
    for k in keys:
        s.record_verified("d", VerifiedCopy(k, "e", 1, "0" * 32, "f"))
    s.record_verified("other", VerifiedCopy("zz", "e", 1, "0" * 32, "f"))
    assert [v.key for v in s.iter_verified("d")] == sorted(keys)
    assert [v.key for v in s.iter_verified("d", prefix="a")] == sorted(
        k for k in keys if k.startswith("a"))
    s.forget_verified("d", "b")
    assert s.get_verified("d", "b") is None
    s.close()


def test_one_process_per_state_dir(tmp_path: Path) -> None:
    s = StateStore(tmp_path)
    s.lock()
    code = ("import sys; from crosswind.state import StateStore, StateLocked\n"
            f"s = StateStore(__import__('pathlib').Path({str(tmp_path)!r}))\n"
            "try:\n    s.lock()\nexcept StateLocked as e:\n    print(e); sys.exit(5)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 5 and "another crosswind process" in p.stdout
    s.close()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0


def test_killed_run_is_marked_interrupted(tmp_path: Path) -> None:
    s = StateStore(tmp_path)
    first = s.start_run("objects", "azure-to-aws", False)
    s.close()
    s = StateStore(tmp_path)
    second = s.start_run("objects", "azure-to-aws", False)
    runs = {r["id"]: r["status"] for r in s.runs()}
    assert runs == {first: "interrupted", second: "running"}
    s.close()


def test_lock_error_type() -> None:
    assert issubclass(StateLocked, Exception) and StateLocked.exit_code == 5


@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.integers(0, 1 << 34)),
                max_size=60))
def test_inventory_totals_add_up(entries: list[tuple[str, int]]) -> None:
    inv = Inventory(depth=1)
    for key, size in entries:
        inv.add(ObjectMeta(key, size, last_modified=datetime(2026, 1, 1, tzinfo=UTC)))
    rep = inv.report("memory://x", (10.0, 100.0, "test"))
    assert rep["objects"] == len(entries)
    assert rep["bytes"] == sum(s for _, s in entries)
    assert sum(h["objects"] for h in rep["size_histogram"]) == len(entries)
    assert sum(h["bytes"] for h in rep["size_histogram"]) == rep["bytes"]
    assert sum(p["objects"] for p in inv_all_prefixes(inv)) == len(entries)
    if entries:
        assert rep["estimate"]["duration_s"] == pytest.approx(
            max(len(entries) / 10.0, rep["bytes"] / 100.0), rel=1e-3, abs=0.1)


def inv_all_prefixes(inv: Inventory) -> list[dict[str, int]]:
    return [{"objects": c} for c in inv.prefixes.values()]


def test_inventory_histogram_classes() -> None:
    inv = Inventory(depth=2)
    for key, size in [("events/2026/a", 0), ("events/2026/b", 1023), ("events/2025/c", 1024),
                      ("top", 70 * 1024 * 1024)]:
        inv.add(ObjectMeta(key, size))
    rep = inv.report("x", (1.0, 1.0, "t"))
    ranges = {h["range"]: h["objects"] for h in rep["size_histogram"]}
    assert ranges == {"0 B": 1, "1 B - 1.0 KiB": 1, "1.0 KiB - 4.0 KiB": 1,
                      "64.0 MiB - 256.0 MiB": 1}
    prefixes = {p["prefix"]: p["objects"] for p in rep["top_prefixes"]}
    assert prefixes == {"events/2026/": 2, "events/2025/": 1, "(top level)": 1}
    assert rep["largest"] == {"key": "top", "size": 70 * 1024 * 1024}


def test_state_from_before_src_mtime_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("CREATE TABLE verified(direction TEXT NOT NULL, key TEXT NOT NULL, "
               "src_etag TEXT, src_size INTEGER NOT NULL, md5 TEXT NOT NULL, dst_etag TEXT, "
               "run_id INTEGER, verified_at TEXT NOT NULL, PRIMARY KEY(direction, key)) "
               "WITHOUT ROWID")
    db.execute("INSERT INTO verified VALUES ('d', 'old', 'e', 1, 'm', 'f', 1, 'now')")
    db.commit()
    db.close()
    s = StateStore(tmp_path)
    try:
        s.record_verified("d", VerifiedCopy("new", "e", 1, "m", "f", 1700000000))
        assert list(s.iter_verified("d")) == [VerifiedCopy("new", "e", 1, "m", "f", 1700000000),
                                              VerifiedCopy("old", "e", 1, "m", "f", None)]
    finally:
        s.close()


def test_state_from_before_src_read_at_is_migrated(tmp_path: Path) -> None:
    """Records from before the read time was kept get their run's start as a lower
    bound of it (the copy listed after its run began); no run: unknown."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("CREATE TABLE runs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, direction TEXT "
               "NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL, "
               "dry_run INTEGER NOT NULL DEFAULT 0, report TEXT)")
    db.execute("INSERT INTO runs VALUES (7, 'objects', 'd', '2026-01-02T03:04:05.250+00:00', "
               "NULL, 'succeeded', 0, NULL)")
    db.execute("CREATE TABLE verified(direction TEXT NOT NULL, key TEXT NOT NULL, "
               "src_etag TEXT, src_size INTEGER NOT NULL, md5 TEXT NOT NULL, dst_etag TEXT, "
               "run_id INTEGER, verified_at TEXT NOT NULL, src_mtime INTEGER, "
               "PRIMARY KEY(direction, key)) WITHOUT ROWID")
    db.execute("INSERT INTO verified VALUES ('d', 'a', 'e', 1, 'm', 'f', 7, 'x', 1767322000)")
    db.execute("INSERT INTO verified VALUES ('d', 'b', 'e', 1, 'm', 'f', NULL, 'x', 1767322000)")
    db.commit()
    db.close()
    for _ in range(2):  # opening again changes nothing
        s = StateStore(tmp_path)
        try:
            a, b = s.iter_verified("d")
            assert a.src_read_at is not None
            started = datetime(2026, 1, 2, 3, 4, 5, 250000, UTC).timestamp()
            assert abs(a.src_read_at - started) < 1e-3
            assert (b.src_mtime, b.src_read_at) == (1767322000, None)
        finally:
            s.close()
