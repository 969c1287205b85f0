"""The ledger of serverless runs, kept in a DocumentDB collection.

A Lambda container's disk and an Azure Function instance's are gone after the
invocation, so neither can keep the CLI's SQLite ledger (``metasync.ledger``).
``DocumentLedger`` keeps the same records, with the same meaning, in one
collection (``crosswind_ledger`` by default) of the DocumentDB database the
rows go to, which both platforms reach anyway:

* ``t: "row"``: per row, the Azure etag and the document hash it was last
  synced at and the document's ``_id`` (the baseline that tells a replica-side
  change from crosswind's own write coming back, and the only way to find the
  row of a deleted document);
* ``t: "mark"``: the resume token of the change stream (the Azure Function's
  checkpoint) and the watermarks;
* ``t: "dlq"``: rows, objects and documents that failed, one open entry per
  item, with kind, reason and payload;
* ``t: "conflict"``: conflicts with both versions;
* ``t: "seq"``: the counter that numbers DLQ entries and conflicts.

Every record carries the ledger's ``scope`` (the table ⇄ collection pair), so
the Lambda (Azure → AWS) and the Function (AWS → Azure) of one pair share their
baselines, as the CLI's two directions share the SQLite ledger: the reverse
sync after a cutover starts from the rows the forward sync recorded.

Every write is durable on return (acknowledged by the server), before the
engine goes on: the resume token is only written after the rows of the batch
it covers, so a crash between two calls repeats at most the last batch, whose
writes are idempotent. Reads of one batch of changes are made in two queries
(``prefetch``) instead of two per change; a cached record is kept in step with
this ledger's own writes, and caches live for one invocation only (the timer
function never runs twice at once; concurrent Lambdas only write baselines,
where the last writer wins and a stale baseline costs one more write).

The calls are synchronous (pymongo's blocking client), as the engines' ledger
calls are: an invocation does one thing at a time, and each call is a few
milliseconds inside AWS, a round trip across clouds from Azure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from pymongo import MongoClient, ReplaceOne, ReturnDocument, uri_parser

from crosswind.config import Config
from crosswind.metasync.context import scope_of
from crosswind.metasync.ledger import ItemKind, RowRecord
from crosswind.state import now_iso
from crosswind.stores.documentdb import mongo_errors, resolve_uri

DEFAULT_COLLECTION = "crosswind_ledger"
_RESUME = "resume_token"


def _row_id(scope: str, pk: str, rk: str) -> str:
    # JSON text: unambiguous whatever the keys hold, readable in a shell.
    return json.dumps(["row", scope, pk, rk], ensure_ascii=False)


class DocumentLedger:
    """A ``metasync.ledger.RowLedger`` in a DocumentDB collection; see the module."""

    def __init__(self, client: MongoClient[dict[str, Any]], database: str, collection: str,
                 scope: str) -> None:
        self.client = client
        self.coll = client[database][collection]
        self.scope = scope
        self.name = f"documentdb ledger {database}.{collection}"
        self._by_key: dict[tuple[str, str], RowRecord | None] = {}
        self._doc_keys: dict[str, set[tuple[str, str]]] = {}
        self._token: str | None = None
        self._token_known = False
        self._indexed = False

    @classmethod
    def open(cls, cfg: Config, collection: str = DEFAULT_COLLECTION) -> DocumentLedger:
        """In ``[aws] documentdb_uri``'s database ``[aws] database``, with the client
        settings of ``DocumentDBStore.open`` (TLS checked, ``retryWrites=false``)."""
        uri = resolve_uri(cfg.aws)
        given = {k.lower() for k in uri_parser.parse_uri(uri, validate=False, warn=False)
                 .get("options", {})}
        timeouts: dict[str, Any] = {
            k: 10_000 for k in ("serverSelectionTimeoutMS", "connectTimeoutMS")
            if k.lower() not in given}
        client: MongoClient[dict[str, Any]] = MongoClient(
            uri, uuidRepresentation="standard", tz_aware=True, tzinfo=UTC, retryWrites=False,
            **timeouts)
        ledger = cls(client, cfg.aws.database, collection, scope_of(cfg))
        ledger.ensure_indexes()
        return ledger

    def ensure_indexes(self) -> None:
        if self._indexed:
            return
        with mongo_errors(self.name):
            self.coll.create_index([("scope", 1), ("t", 1), ("doc_id", 1)],
                                   name="crosswind_ledger_doc")
            self.coll.create_index([("scope", 1), ("t", 1), ("status", 1)],
                                   name="crosswind_ledger_status")
        self._indexed = True

    def new_invocation(self) -> None:
        """Forget what was cached: another invocation may have written since."""
        self._by_key.clear()
        self._doc_keys.clear()
        self._token_known = False

    def close(self) -> None:
        self.client.close()

    # -- rows --------------------------------------------------------------------------
    @staticmethod
    def _record(d: dict[str, Any]) -> RowRecord:
        return RowRecord(d["pk"], d["rk"], d.get("azure_etag"), d.get("doc_hash"),
                         d.get("doc_id"))

    def _find_rows(self, query: dict[str, Any]) -> list[RowRecord]:
        with mongo_errors(self.name):
            return [self._record(d) for d in self.coll.find(
                {"scope": self.scope, "t": "row", **query})]

    def prefetch(self, doc_ids: Iterable[str], keys: Iterable[tuple[str, str]]) -> None:
        """Load the rows of these documents and these keys (two queries) for the
        ``row``/``rows_by_doc_id`` calls of the batch that names them."""
        self._by_key.clear()
        self._doc_keys.clear()
        ids = sorted(set(doc_ids))
        wanted = set(keys)
        for rec in self._find_rows({"doc_id": {"$in": ids}}) if ids else []:
            self._by_key[rec.key] = rec
        for d in ids:
            self._doc_keys[d] = set()
        for rec in self.rows(k for k in wanted if k not in self._by_key).values():
            self._by_key[rec.key] = rec
        for k in wanted:
            self._by_key.setdefault(k, None)
        for known in self._by_key.values():
            if known is not None and known.doc_id in self._doc_keys:
                self._doc_keys[known.doc_id].add(known.key)

    def rows(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RowRecord]:
        ids = [_row_id(self.scope, pk, rk) for pk, rk in keys]
        out: dict[tuple[str, str], RowRecord] = {}
        for i in range(0, len(ids), 1000):
            for rec in self._find_rows({"_id": {"$in": ids[i : i + 1000]}}):
                out[rec.key] = rec
        return out

    def row(self, pk: str, rk: str) -> RowRecord | None:
        if (pk, rk) in self._by_key:
            return self._by_key[(pk, rk)]
        return self.rows([(pk, rk)]).get((pk, rk))

    def rows_by_doc_id(self, doc_id: str) -> list[RowRecord]:
        if doc_id in self._doc_keys:
            cached = [self._by_key.get(k) for k in self._doc_keys[doc_id]]
            return sorted((r for r in cached if r is not None), key=lambda r: r.key)
        return sorted(self._find_rows({"doc_id": doc_id}), key=lambda r: r.key)

    def _cache(self, key: tuple[str, str], rec: RowRecord | None) -> None:
        old = self._by_key.get(key)
        if old is not None and old.doc_id in self._doc_keys:
            self._doc_keys[old.doc_id].discard(key)
        if key in self._by_key or (rec is not None and rec.doc_id in self._doc_keys):
            self._by_key[key] = rec
        if rec is not None and rec.doc_id in self._doc_keys:
            self._doc_keys[rec.doc_id].add(key)

    def record_rows(self, recs: Iterable[RowRecord]) -> None:
        recs = list(recs)
        if not recs:
            return
        at = now_iso()
        ops = [ReplaceOne({"_id": _row_id(self.scope, r.pk, r.rk)},
                          {"scope": self.scope, "t": "row", "pk": r.pk, "rk": r.rk,
                           "azure_etag": r.azure_etag, "doc_hash": r.doc_hash,
                           "doc_id": r.doc_id, "synced_at": at}, upsert=True) for r in recs]
        with mongo_errors(self.name):
            self.coll.bulk_write(ops, ordered=True)
        for r in recs:
            self._cache(r.key, r)

    def forget_rows(self, keys: Iterable[tuple[str, str]]) -> None:
        keys = list(keys)
        if not keys:
            return
        with mongo_errors(self.name):
            self.coll.delete_many({"_id": {"$in": [_row_id(self.scope, *k) for k in keys]}})
        for k in keys:
            self._cache(k, None)

    def row_count(self) -> int:
        with mongo_errors(self.name):
            return int(self.coll.count_documents({"scope": self.scope, "t": "row"}))

    # -- numbering ---------------------------------------------------------------------
    def _next_id(self) -> int:
        with mongo_errors(self.name):
            d = self.coll.find_one_and_update(
                {"_id": json.dumps(["seq", self.scope])},
                {"$inc": {"n": 1}, "$set": {"scope": self.scope, "t": "seq"}},
                upsert=True, return_document=ReturnDocument.AFTER)
        assert d is not None
        return int(d["n"])

    # -- dead-letter queue -------------------------------------------------------------
    def dlq_put(self, direction: str, item_kind: ItemKind, item: str, *, pk: str | None,
                rk: str | None, kind: str, reason: str, payload: str | None,
                run_id: int | None) -> int:
        """Open (or re-open) the entry for ``item``; a repeat failure counts an attempt."""
        _id = json.dumps(["dlq", self.scope, direction, item_kind, item], ensure_ascii=False)
        at = now_iso()
        with mongo_errors(self.name):
            found = self.coll.find_one({"_id": _id}, {"id": 1})
        entry_id = int(found["id"]) if found else self._next_id()
        update: dict[str, Any] = {
            "$set": {"kind": kind, "reason": reason, "status": "open", "last_seen": at,
                     "run_id": run_id},
            "$inc": {"attempts": 1},
            "$setOnInsert": {"scope": self.scope, "t": "dlq", "id": entry_id,
                             "direction": direction, "item_kind": item_kind, "item": item,
                             "pk": pk, "rk": rk, "first_seen": at},
        }
        if payload is not None:
            update["$set"]["payload"] = payload
        with mongo_errors(self.name):
            d = self.coll.find_one_and_update({"_id": _id}, update, upsert=True,
                                              return_document=ReturnDocument.AFTER)
        # Two writers opening the same entry at once: the first one's number stands.
        return int(d["id"]) if d is not None else entry_id

    def dlq_resolve(self, direction: str, item_kind: ItemKind, items: Iterable[str],
                    note: str = "synced") -> int:
        ids = [json.dumps(["dlq", self.scope, direction, item_kind, i], ensure_ascii=False)
               for i in items]
        if not ids:
            return 0
        with mongo_errors(self.name):
            res = self.coll.update_many(
                {"_id": {"$in": ids}, "status": "open"},
                {"$set": {"status": "resolved", "reason": f"resolved: {note}",
                          "last_seen": now_iso()}})
        return int(res.modified_count)

    def dlq_open_count(self, direction: str | None = None) -> int:
        query: dict[str, Any] = {"scope": self.scope, "t": "dlq", "status": "open"}
        if direction:
            query["direction"] = direction
        with mongo_errors(self.name):
            return int(self.coll.count_documents(query))

    def dlq_entries(self, status: str | None = "open") -> list[dict[str, Any]]:
        """The DLQ entries (for tests and operators), oldest first."""
        query: dict[str, Any] = {"scope": self.scope, "t": "dlq"}
        if status:
            query["status"] = status
        with mongo_errors(self.name):
            return list(self.coll.find(query, {"_id": 0}).sort("id", 1))

    # -- watermarks and the resume token -----------------------------------------------
    def _mark_id(self, name: str) -> str:
        return json.dumps(["mark", self.scope, name], ensure_ascii=False)

    def watermark(self, name: str) -> str | None:
        with mongo_errors(self.name):
            d = self.coll.find_one({"_id": self._mark_id(name)})
        return str(d["value"]) if d is not None else None

    def set_watermark(self, name: str, value: str) -> None:
        with mongo_errors(self.name):
            self.coll.replace_one({"_id": self._mark_id(name)},
                                  {"scope": self.scope, "t": "mark", "value": value,
                                   "updated_at": now_iso()}, upsert=True)

    def resume_token(self) -> str | None:
        self._token = self.watermark(_RESUME)
        self._token_known = True
        return self._token

    def set_resume_token(self, token: str) -> None:
        # A quiet stream saves its position every flush interval: only a new one
        # costs a write.
        if self._token_known and token == self._token:
            return
        self.set_watermark(_RESUME, token)
        self._token, self._token_known = token, True

    def clear_resume_token(self) -> None:
        with mongo_errors(self.name):
            self.coll.delete_one({"_id": self._mark_id(_RESUME)})
        self._token, self._token_known = None, True

    # -- conflicts ---------------------------------------------------------------------
    def add_conflict(self, pk: str, rk: str, *, recorded_etag: str | None,
                     azure_etag: str | None, azure_version: dict[str, Any] | None,
                     aws_version: dict[str, Any] | None, run_id: int | None) -> int:
        """Record a conflict; the same open conflict seen again is updated, not repeated."""
        aws_text = json.dumps(aws_version) if aws_version is not None else None
        with mongo_errors(self.name):
            found = self.coll.find_one({"scope": self.scope, "t": "conflict", "pk": pk,
                                        "rk": rk, "status": "open", "azure_etag": azure_etag})
            if found is not None:
                self.coll.update_one({"_id": found["_id"]}, {"$set": {
                    "aws_version": aws_text, "detected_at": now_iso(), "run_id": run_id}})
                return int(found["id"])
        cid = self._next_id()
        with mongo_errors(self.name):
            self.coll.insert_one({
                "_id": json.dumps(["conflict", self.scope, cid]), "scope": self.scope,
                "t": "conflict", "id": cid, "pk": pk, "rk": rk, "detected_at": now_iso(),
                "recorded_etag": recorded_etag, "azure_etag": azure_etag,
                "azure_version": json.dumps(azure_version) if azure_version is not None
                else None,
                "aws_version": aws_text, "status": "open", "resolution": None,
                "run_id": run_id})
        return cid

    def conflict_count(self, status: str = "open") -> int:
        with mongo_errors(self.name):
            return int(self.coll.count_documents({"scope": self.scope, "t": "conflict",
                                                  "status": status}))

    def conflicts(self, status: str | None = "open") -> list[dict[str, Any]]:
        """The conflicts (for tests and operators), oldest first."""
        query: dict[str, Any] = {"scope": self.scope, "t": "conflict"}
        if status:
            query["status"] = status
        with mongo_errors(self.name):
            return list(self.coll.find(query, {"_id": 0}).sort("id", 1))
