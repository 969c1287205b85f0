"""Durable state of metadata sync, in the state store's SQLite file
(tables ``meta_*`` in ``state.py``). Every change is one transaction.

* rows: per row, the Azure etag and the content hash it was last synced at,
  and the ``_id`` of the document it was synced with (``entities.id_text``:
  ObjectIds and other non-string ids as ``json:`` + canonical extended JSON,
  so lookups are exact) — the baseline that tells a replica-side change (a
  conflict) from our own write coming back (an echo), and the only way to
  find the row of a deleted document, whose change carries nothing but its ``_id``;
* DLQ: rows, objects and documents that failed, with kind and reason, one
  open entry per item; a later success resolves it;
* watermarks (table scans, object-driven runs), the change-stream resume
  token, and conflicts with both versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from crosswind.state import StateStore, now_iso

DlqStatus = Literal["open", "resolved"]
# "object-key": an object the replication service could not bring in step;
# "queue-message": an event message that could not be parsed.
ItemKind = Literal["row", "object", "document", "object-key", "queue-message"]


@dataclass(frozen=True, slots=True)
class RowRecord:
    pk: str
    rk: str
    azure_etag: str | None
    doc_hash: str | None
    doc_id: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.pk, self.rk)


@dataclass(frozen=True, slots=True)
class DlqItem:
    id: int
    direction: str
    item_kind: str
    item: str
    pk: str | None
    rk: str | None
    kind: str
    reason: str
    payload: str | None
    status: str
    attempts: int
    first_seen: str
    last_seen: str
    run_id: int | None

    def as_dict(self, with_payload: bool = False) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__ if k != "payload"}
        if with_payload:
            d["payload"] = _maybe_json(self.payload)
        return d


@dataclass(frozen=True, slots=True)
class Conflict:
    id: int
    pk: str
    rk: str
    detected_at: str
    recorded_etag: str | None
    azure_etag: str | None
    azure_version: dict[str, Any] | None
    aws_version: dict[str, Any] | None
    status: str
    resolution: str | None
    run_id: int | None

    def as_dict(self, with_versions: bool = True) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}
        if not with_versions:
            d.pop("azure_version")
            d.pop("aws_version")
        return d


def _maybe_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class RowLedger(Protocol):
    """What the metadata engines (``ForwardSync``, ``ReverseSync``, ``RunContext``)
    ask of a ledger. ``Ledger`` (SQLite, the CLI and the service) is one;
    ``crosswind.serverless.ledger.DocumentLedger`` (a DocumentDB collection, for
    the Lambda and the Azure Function, which have no durable local disk) is the
    other. Every call is synchronous and durable on return."""

    def rows(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RowRecord]: ...
    def row(self, pk: str, rk: str) -> RowRecord | None: ...
    def rows_by_doc_id(self, doc_id: str) -> list[RowRecord]: ...
    def record_rows(self, recs: Iterable[RowRecord]) -> None: ...
    def forget_rows(self, keys: Iterable[tuple[str, str]]) -> None: ...
    def row_count(self) -> int: ...
    def dlq_put(self, direction: str, item_kind: ItemKind, item: str, *, pk: str | None,
                rk: str | None, kind: str, reason: str, payload: str | None,
                run_id: int | None) -> int: ...
    def dlq_resolve(self, direction: str, item_kind: ItemKind, items: Iterable[str],
                    note: str = "synced") -> int: ...
    def dlq_open_count(self, direction: str | None = None) -> int: ...
    def watermark(self, name: str) -> str | None: ...
    def set_watermark(self, name: str, value: str) -> None: ...
    def resume_token(self) -> str | None: ...
    def set_resume_token(self, token: str) -> None: ...
    def clear_resume_token(self) -> None: ...
    def add_conflict(self, pk: str, rk: str, *, recorded_etag: str | None,
                     azure_etag: str | None, azure_version: dict[str, Any] | None,
                     aws_version: dict[str, Any] | None, run_id: int | None) -> int: ...
    def conflict_count(self, status: str = "open") -> int: ...


_DLQ_COLS = ("id, direction, item_kind, item, pk, rk, kind, reason, payload, status, attempts, "
             "first_seen, last_seen, run_id")
_CONFLICT_COLS = ("id, pk, rk, detected_at, recorded_etag, azure_etag, azure_version, "
                  "aws_version, status, resolution, run_id")


class Ledger:
    """The ``meta_*`` tables for one table ⇄ collection pair (``scope``)."""

    def __init__(self, state: StateStore, scope: str) -> None:
        self.state = state
        self.db = state.db
        self.scope = scope

    # -- rows --------------------------------------------------------------------------
    def rows(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RowRecord]:
        out: dict[tuple[str, str], RowRecord] = {}
        keys = list(keys)
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            values = ",".join("(?,?)" for _ in chunk)
            args: list[str] = [self.scope]
            for pk, rk in chunk:
                args += [pk, rk]
            for row in self.db.execute(
                "SELECT pk, rk, azure_etag, doc_hash, doc_id FROM meta_rows"
                f" WHERE scope=? AND (pk, rk) IN (VALUES {values})", args,
            ):
                rec = RowRecord(*row)
                out[rec.key] = rec
        return out

    def row(self, pk: str, rk: str) -> RowRecord | None:
        return self.rows([(pk, rk)]).get((pk, rk))

    def rows_by_doc_id(self, doc_id: str) -> list[RowRecord]:
        """The rows synced with the document whose ``_id`` is ``doc_id`` (exact text
        match; more than one only when a document moved to other keys)."""
        return [RowRecord(*r) for r in self.db.execute(
            "SELECT pk, rk, azure_etag, doc_hash, doc_id FROM meta_rows"
            " WHERE scope=? AND doc_id=? ORDER BY pk, rk", (self.scope, doc_id))]

    def row_by_doc_id(self, doc_id: str) -> RowRecord | None:
        found = self.rows_by_doc_id(doc_id)
        return found[0] if found else None

    def record_rows(self, recs: Iterable[RowRecord]) -> None:
        at = now_iso()
        with self.state.tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO meta_rows(scope, pk, rk, azure_etag, doc_hash, doc_id,"
                " synced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self.scope, r.pk, r.rk, r.azure_etag, r.doc_hash, r.doc_id, at) for r in recs],
            )

    def forget_rows(self, keys: Iterable[tuple[str, str]]) -> None:
        with self.state.tx() as db:
            db.executemany("DELETE FROM meta_rows WHERE scope=? AND pk=? AND rk=?",
                           [(self.scope, pk, rk) for pk, rk in keys])

    def row_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM meta_rows WHERE scope=?",
                                   (self.scope,)).fetchone()[0])

    # -- dead-letter queue -------------------------------------------------------------
    def dlq_put(self, direction: str, item_kind: ItemKind, item: str, *, pk: str | None,
                rk: str | None, kind: str, reason: str, payload: str | None,
                run_id: int | None) -> int:
        """Open (or re-open) the entry for ``item``; a repeat failure counts an attempt."""
        at = now_iso()
        with self.state.tx() as db:
            db.execute(
                "INSERT INTO meta_dlq(scope, direction, item_kind, item, pk, rk, kind, reason,"
                " payload, status, attempts, first_seen, last_seen, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 1, ?, ?, ?)"
                " ON CONFLICT(scope, direction, item_kind, item) DO UPDATE SET"
                " kind=excluded.kind, reason=excluded.reason,"
                " payload=coalesce(excluded.payload, payload), status='open',"
                " attempts=attempts+1, last_seen=excluded.last_seen, run_id=excluded.run_id",
                (self.scope, direction, item_kind, item, pk, rk, kind, reason, payload, at, at,
                 run_id),
            )
            row = db.execute(
                "SELECT id FROM meta_dlq WHERE scope=? AND direction=? AND item_kind=?"
                " AND item=?", (self.scope, direction, item_kind, item)).fetchone()
        return int(row[0])

    def dlq_resolve(self, direction: str, item_kind: ItemKind, items: Iterable[str],
                    note: str = "synced") -> int:
        with self.state.tx() as db:
            cur = db.executemany(
                "UPDATE meta_dlq SET status='resolved', reason=?, last_seen=?"
                " WHERE scope=? AND direction=? AND item_kind=? AND item=? AND status='open'",
                [(f"resolved: {note}", now_iso(), self.scope, direction, item_kind, i)
                 for i in items],
            )
            return cur.rowcount

    def dlq_open_count(self, direction: str | None = None) -> int:
        sql = "SELECT count(*) FROM meta_dlq WHERE scope=? AND status='open'"
        args: tuple[str, ...] = (self.scope,)
        if direction:
            sql += " AND direction=?"
            args += (direction,)
        return int(self.db.execute(sql, args).fetchone()[0])

    def dlq_list(self, *, status: str | None = "open", direction: str | None = None,
                 kind: str | None = None, ids: Iterable[int] | None = None,
                 limit: int | None = 100) -> list[DlqItem]:
        rows = self._select(f"SELECT {_DLQ_COLS} FROM meta_dlq",
                            {"status": status, "direction": direction, "kind": kind}, ids, limit)
        return [DlqItem(*r) for r in rows]

    def _select(self, head: str, equal: dict[str, str | None], ids: Iterable[int] | None,
                limit: int | None) -> list[tuple[Any, ...]]:
        """``head`` WHERE scope and the given columns (None: any) and ids, by id."""
        sql = head + " WHERE scope=?"
        args: list[Any] = [self.scope]
        for col, val in equal.items():
            if val:
                sql += f" AND {col}=?"
                args.append(val)
        if ids is not None:
            id_list = [int(i) for i in ids]
            sql += f" AND id IN ({','.join('?' * len(id_list)) or 'NULL'})"
            args += id_list
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return list(self.db.execute(sql, args).fetchall())

    def dlq_get(self, item_id: int) -> DlqItem | None:
        found = self.dlq_list(status=None, ids=[item_id], limit=1)
        return found[0] if found else None

    def dlq_open_by_kind(self) -> dict[str, int]:
        """Open entries per kind (conflict, poison-message, delete-held, ...)."""
        rows = self.db.execute(
            "SELECT kind, count(*) FROM meta_dlq WHERE scope=? AND status='open' GROUP BY kind",
            (self.scope,)).fetchall()
        return {str(k): int(n) for k, n in rows}

    def dlq_counts(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT status, count(*) FROM meta_dlq WHERE scope=? GROUP BY status",
            (self.scope,)).fetchall()
        return {s: int(n) for s, n in rows}

    def dlq_purge(self, *, ids: Iterable[int] | None = None, status: str | None = None,
                  before: str | None = None) -> int:
        sql = "DELETE FROM meta_dlq WHERE scope=?"
        args: list[Any] = [self.scope]
        if ids is not None:
            id_list = [int(i) for i in ids]
            sql += f" AND id IN ({','.join('?' * len(id_list)) or 'NULL'})"
            args += id_list
        if status:
            sql += " AND status=?"
            args.append(status)
        if before:
            sql += " AND last_seen < ?"
            args.append(before)
        with self.state.tx() as db:
            return db.execute(sql, args).rowcount

    # -- watermarks and the resume token -----------------------------------------------
    def watermark(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta_watermarks WHERE scope=? AND name=?",
                              (self.scope, name)).fetchone()
        return str(row[0]) if row else None

    def set_watermark(self, name: str, value: str) -> None:
        with self.state.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta_watermarks(scope, name, value, updated_at)"
                       " VALUES (?, ?, ?, ?)", (self.scope, name, value, now_iso()))

    def resume_token(self) -> str | None:
        row = self.db.execute("SELECT token FROM meta_resume_tokens WHERE scope=?",
                              (self.scope,)).fetchone()
        return str(row[0]) if row else None

    def set_resume_token(self, token: str) -> None:
        with self.state.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta_resume_tokens(scope, token, updated_at)"
                       " VALUES (?, ?, ?)", (self.scope, token, now_iso()))

    def clear_resume_token(self) -> None:
        with self.state.tx() as db:
            db.execute("DELETE FROM meta_resume_tokens WHERE scope=?", (self.scope,))

    # -- objects synced by `sync objects` (object-driven ingestion) --------------------
    def verified_since(self, direction: str, since: str | None, prefix: str = ""
                       ) -> Iterator[tuple[str, str]]:
        """(key, verified_at) of objects copied and verified since ``since``, by key."""
        sql = "SELECT key, verified_at FROM verified WHERE direction=? AND key >= ?"
        args: list[Any] = [direction, prefix]
        if since:
            sql += " AND verified_at >= ?"
            args.append(since)
        cur = self.db.execute(sql + " ORDER BY key", args)
        while rows := cur.fetchmany(2000):
            for key, at in rows:
                if not key.startswith(prefix):
                    return
                yield str(key), str(at)

    # -- conflicts ---------------------------------------------------------------------
    def add_conflict(self, pk: str, rk: str, *, recorded_etag: str | None,
                     azure_etag: str | None, azure_version: dict[str, Any] | None,
                     aws_version: dict[str, Any] | None, run_id: int | None) -> int:
        """Record a conflict; the same open conflict seen again is updated, not repeated."""
        az_text = json.dumps(azure_version) if azure_version is not None else None
        aws_text = json.dumps(aws_version) if aws_version is not None else None
        with self.state.tx() as db:
            row = db.execute(
                "SELECT id FROM meta_conflicts WHERE scope=? AND pk=? AND rk=?"
                " AND status='open' AND coalesce(azure_etag, '')=coalesce(?, '')",
                (self.scope, pk, rk, azure_etag)).fetchone()
            if row:
                db.execute("UPDATE meta_conflicts SET aws_version=?, detected_at=?, run_id=?"
                           " WHERE id=?", (aws_text, now_iso(), run_id, row[0]))
                return int(row[0])
            cur = db.execute(
                "INSERT INTO meta_conflicts(scope, pk, rk, detected_at, recorded_etag,"
                " azure_etag, azure_version, aws_version, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.scope, pk, rk, now_iso(), recorded_etag, azure_etag, az_text, aws_text,
                 run_id))
            return int(cur.lastrowid or 0)

    def conflicts(self, *, status: str | None = "open", limit: int | None = 100,
                  ids: Iterable[int] | None = None) -> list[Conflict]:
        out = []
        for r in self._select(f"SELECT {_CONFLICT_COLS} FROM meta_conflicts",
                              {"status": status}, ids, limit):
            vals = list(r)
            vals[6] = _maybe_json(vals[6])
            vals[7] = _maybe_json(vals[7])
            out.append(Conflict(*vals))
        return out

    def conflict_count(self, status: str = "open") -> int:
        return int(self.db.execute(
            "SELECT count(*) FROM meta_conflicts WHERE scope=? AND status=?",
            (self.scope, status)).fetchone()[0])

    def refresh_conflict(self, conflict_id: int, *, azure_etag: str | None,
                         azure_version: dict[str, Any] | None,
                         aws_version: dict[str, Any] | None) -> None:
        """Show the versions both sides hold now (they changed since detection)."""
        with self.state.tx() as db:
            db.execute(
                "UPDATE meta_conflicts SET azure_etag=?, azure_version=?, aws_version=?,"
                " detected_at=? WHERE id=? AND scope=?",
                (azure_etag, json.dumps(azure_version) if azure_version is not None else None,
                 json.dumps(aws_version) if aws_version is not None else None, now_iso(),
                 conflict_id, self.scope))

    def resolve_conflict(self, conflict_id: int, resolution: str) -> None:
        with self.state.tx() as db:
            db.execute("UPDATE meta_conflicts SET status='resolved', resolution=? WHERE id=?"
                       " AND scope=?", (resolution, conflict_id, self.scope))
