"""Sorting more (key, value) pairs than fit in memory. No network I/O.

The join needs object names in the order of the rows they map to, which is
not name order. Pairs are spilled into a throwaway SQLite file and read back
ordered by key; SQLite sorts with bounded memory (spilling to temp files).
Keys are stored as UTF-8 BLOBs, compared bytewise: the code-point order that
Python's ``str`` comparison and every listing in crosswind use.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

BATCH = 5000


class Spill:
    def __init__(self, directory: Path | None = None) -> None:
        fd, name = tempfile.mkstemp(prefix="crosswind-sort-", suffix=".db", dir=directory)
        os.close(fd)
        self.path = Path(name)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE",
                       "cache_size=-16000"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE pairs(k BLOB NOT NULL, v TEXT NOT NULL)")
        self._buf: list[tuple[bytes, str]] = []
        self.count = 0

    def add(self, key: str, value: str) -> None:
        self._buf.append((key.encode("utf-8", "surrogatepass"), value))
        self.count += 1
        if len(self._buf) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO pairs(k, v) VALUES (?, ?)", self._buf)
            self.db.execute("COMMIT")
            self._buf.clear()

    def sorted(self) -> Iterator[tuple[str, str]]:
        """All pairs by key (then value), streamed."""
        self._flush()
        cur = self.db.execute("SELECT k, v FROM pairs ORDER BY k, v")
        while rows := cur.fetchmany(BATCH):
            for k, v in rows:
                yield bytes(k).decode("utf-8", "surrogatepass"), v

    def close(self) -> None:
        self.db.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
