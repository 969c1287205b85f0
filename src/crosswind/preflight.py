"""Permission pre-validation: every permission a direction needs, probed on
every store it uses, before anything runs (``crosswind preflight``, and the
cutover's preflight gate for the direction after the switch).

What each direction needs (the source is read, the replica written; the
event queue is the source's):

    azure-to-aws  blob: list, read        s3: list, read, write, delete, multipart
                  queue: read, receive, delete          (with [azure] queue)
                  table: query            documentdb: find, upsert, delete
    aws-to-azure  s3: list, read          blob: list, read, write, delete
                  sqs: read, receive, delete            (with [aws] sqs_queue_url)
                  documentdb: find, change stream        table: query, upsert, delete

Probes are harmless: writes go to probe objects and rows under the reserved
prefix ``.crosswind-probe/`` (PartitionKey ``.crosswind-probe`` for rows),
which no sync, replication or validation ever selects, and are removed right
after; reads of a store with no object read a probe key that does not exist
(404 means allowed, 403 not); a queue is received from only while it is
empty (receiving a real message would count against its redrive limit). The
identities are shown: the AWS one from STS GetCallerIdentity (the assumed
role with ``[aws] role_arn``), the Azure one by its kind. SAS tokens are also
checked for the letters each store's part needs, and warned about when they
expire within ``[security] sas_min_validity_h``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from crosswind.config import Config
from crosswind.errors import AuthError, CrosswindError, NotFound
from crosswind.model import Direction, ObjectProps
from crosswind.secrets import configure, redact
from crosswind.sync.filters import PROBE_PREFIX

Result = Literal["ok", "missing", "error", "skipped"]
#: the PartitionKey of probe rows
PROBE_PARTITION = PROBE_PREFIX.rstrip("/")


@dataclass(frozen=True)
class Probe:
    store: str
    permission: str
    result: Result
    detail: str = ""
    #: the directions that need it
    directions: tuple[str, ...] = ()


@dataclass
class PreflightReport:
    directions: tuple[str, ...]
    identities: dict[str, str] = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.result in ("ok", "skipped") for p in self.probes)

    def failed(self) -> list[Probe]:
        return [p for p in self.probes if p.result in ("missing", "error")]

    def summary(self) -> str:
        """One line: what is missing (or that everything is there)."""
        bad = self.failed()
        if not bad:
            n = sum(p.result == "ok" for p in self.probes)
            return f"{n} permissions probed on {len({p.store for p in self.probes})} stores, " \
                   "all granted"
        return "missing: " + "; ".join(
            f"{p.store} {p.permission}" + (f" ({p.detail})" if p.detail else "") for p in bad)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "directions": list(self.directions),
                "identities": self.identities, "warnings": self.warnings,
                "probes": [{**asdict(p), "directions": list(p.directions)}
                           for p in self.probes],
                "missing": [f"{p.store} {p.permission}" for p in self.failed()]}


def _line(exc: BaseException) -> str:
    return " ".join(redact(str(exc) or type(exc).__name__).split())[:240]


class _Prober:
    def __init__(self, report: PreflightReport, direction: Direction) -> None:
        self.report = report
        self.direction = direction.value

    def add(self, store: str, permission: str, result: Result, detail: str = "") -> None:
        for i, p in enumerate(self.report.probes):
            if (p.store, p.permission) == (store, permission):
                # A probe both directions need: once, naming both.
                worse = p.result if p.result in ("missing", "error") else result
                self.report.probes[i] = Probe(store, permission, worse,
                                              p.detail or detail,
                                              (*p.directions, self.direction))
                return
        self.report.probes.append(Probe(store, permission, result, detail,
                                        (self.direction,)))

    async def step(self, store: str, permission: str, fn: Callable[[], Awaitable[Any]]
                   ) -> bool:
        try:
            await fn()
        except AuthError as exc:
            self.add(store, permission, "missing", _line(exc))
            return False
        except (CrosswindError, OSError) as exc:
            self.add(store, permission, "error", _line(exc))
            return False
        self.add(store, permission, "ok")
        return True


def _probe_key() -> str:
    return f"{PROBE_PREFIX}{uuid.uuid4().hex}"


async def _objects(p: _Prober, store: Any, *, write: bool, multipart: bool) -> None:
    name = store.name
    first: list[str] = []

    async def list_one() -> None:
        async for m in store.list(""):
            first.append(m.key)
            break

    if not await p.step(name, "list", list_one):
        return

    async def read() -> None:
        if first:
            reader = await store.get(first[0], byte_range=(0, 1))
            await reader.read_all()
            return
        with contextlib.suppress(NotFound):  # allowed to read; nothing there
            await store.head(_probe_key())

    await p.step(name, "read", read)
    if not write:
        return
    key = _probe_key()
    body = b"crosswind permission probe\n"
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    written = False

    async def put() -> None:
        nonlocal written
        await store.put(key, body, ObjectProps(content_type="text/plain"), md5=md5)
        written = True

    try:
        if await p.step(name, "write", put):
            async def read_back() -> None:
                reader = await store.get(key)
                if await reader.read_all() != body:
                    raise CrosswindError(f"{name}: the probe object reads back different bytes")

            await p.step(name, "read back", read_back)
        if multipart:
            async def start_and_abort() -> None:
                up = await store.start_upload(_probe_key(), ObjectProps())
                await up.abort()

            await p.step(name, "multipart (create, abort)", start_and_abort)
    finally:
        if written:
            await p.step(name, "delete", lambda: store.delete(key))
        else:
            p.add(name, "delete", "skipped", "nothing written to delete")


async def _queue(p: _Prober, queue: Any) -> None:
    name = queue.name
    if not await p.step(name, "read (attributes), delete", queue.check):
        return
    depth = -1

    async def count() -> None:
        nonlocal depth
        d = await queue.depth()
        depth = -1 if d is None else d

    await p.step(name, "read (depth)", count)
    if depth != 0:
        p.add(name, "receive", "skipped", "the queue is not empty: receiving a real message "
              "would count against its redrive limit; receive is proven by the first run")
        return
    await p.step(name, "receive", lambda: queue.receive(1, visibility_timeout_s=1, wait_s=0))


async def _rows_table(p: _Prober, table: Any, *, write: bool) -> None:
    from crosswind.entities import Entity
    from crosswind.stores.base import RecordWrite

    name = table.name

    async def query() -> None:
        async for _ in table.list(partition=PROBE_PARTITION):
            break

    if not await p.step(name, "query", query) or not write:
        return
    await _row_writes(p, name, table, Entity(PROBE_PARTITION, uuid.uuid4().hex), RecordWrite)


async def _row_writes(p: _Prober, name: str, store: Any, entity: Any, write_cls: Any) -> None:
    written = False

    async def upsert() -> None:
        nonlocal written
        [r] = await store.write_batch([write_cls("upsert", entity)])
        if r.status != "ok":
            raise r.error or CrosswindError(f"{name}: the probe row was not written "
                                            f"({r.status})")
        written = True

    try:
        await p.step(name, "upsert", upsert)
    finally:
        if written:
            await p.step(name, "delete",
                         lambda: store.delete(entity.partition_key, entity.row_key))
        else:
            p.add(name, "delete", "skipped", "nothing written to delete")


async def _rows_docs(p: _Prober, docs: Any, *, write: bool, changes: bool) -> None:
    from crosswind.entities import Entity
    from crosswind.stores.base import RecordWrite

    name = docs.name

    async def find() -> None:
        async for _ in docs.list(partition=PROBE_PARTITION):
            break

    if not await p.step(name, "find", find):
        return
    if changes:
        async def open_stream() -> None:
            feed = await docs.open_changes(max_await_ms=50)
            await feed.close()

        await p.step(name, "change stream", open_stream)
    if write:
        await _row_writes(p, name, docs, Entity(PROBE_PARTITION, uuid.uuid4().hex),
                          RecordWrite)


async def _direction(cfg: Config, report: PreflightReport, direction: Direction) -> None:
    from crosswind.stores.factory import open_event_queue, open_object_store

    p = _Prober(report, direction)
    src_side, dst_side = direction.source_side, direction.destination_side
    for side, write in ((src_side, False), (dst_side, True)):
        try:
            store = await open_object_store(cfg, side)
        except CrosswindError as exc:
            p.add(f"{side} objects", "open", "missing" if isinstance(exc, AuthError) else
                  "error", _line(exc))
            continue
        try:
            _sas(p, store, "blob", "write" if write else "read")
            await _objects(p, store, write=write, multipart=write and side == "aws")
        finally:
            await store.close()
    if cfg.azure.queue if src_side == "azure" else cfg.aws.sqs_queue_url:
        try:
            queue = await open_event_queue(cfg, src_side)
        except CrosswindError as exc:
            p.add(f"{src_side} event queue", "open", "error", _line(exc))
        else:
            try:
                _sas(p, queue, "queue", "write")
                await _queue(p, queue)
            finally:
                await queue.close()
    if cfg.azure.table and cfg.aws.documentdb_uri:
        await _rows(cfg, p, direction)


async def _rows(cfg: Config, p: _Prober, direction: Direction) -> None:
    from crosswind.stores.azure_common import resolve_auth
    from crosswind.stores.azure_tables import open_table_store
    from crosswind.stores.documentdb import DocumentDBStore

    to_azure = direction is Direction.AWS_TO_AZURE
    try:
        table = open_table_store(resolve_auth(cfg.azure), cfg.azure.table, writable=to_azure)
    except CrosswindError as exc:
        p.add("azure table", "open", "error", _line(exc))
    else:
        try:
            _sas(p, table, "table", "write" if to_azure else "read")
            await _rows_table(p, table, write=to_azure)
        finally:
            await table.close()
    try:
        docs = DocumentDBStore.open(cfg.aws)
    except CrosswindError as exc:
        p.add("documentdb", "open", "error", _line(exc))
        return
    try:
        await _rows_docs(p, docs, write=not to_azure, changes=to_azure)
    finally:
        await docs.close()


def _sas(p: _Prober, store: Any, service: Any, work: str) -> None:
    """The SAS token's letters for this store's part (when it signs with one)."""
    from crosswind.secrets import current
    from crosswind.stores.azure_sas import NEEDS, parse_sas, sas_problems, sas_warnings

    auth = getattr(store, "auth", None)
    token = getattr(auth, "sas_token", None)
    if not token:
        return
    needed = NEEDS[(service, work)] + ("d" if service == "blob" and work == "write" else "")
    parsed = parse_sas(token)
    problems = sas_problems(parsed, service, needed,
                            emulator=bool(getattr(auth, "emulator", False)))
    p.add(store.name, f"SAS {needed}", "missing" if problems else "ok",
          "; ".join(problems) or parsed.describe())
    for w in sas_warnings(parsed, current().security.sas_min_validity_h):
        msg = f"{store.name}: the SAS token: {w}"
        if msg not in p.report.warnings:
            p.report.warnings.append(msg)


async def _identities(cfg: Config, report: PreflightReport) -> None:
    from crosswind.secrets.aws import caller_identity
    from crosswind.stores.azure_common import resolve_auth

    try:
        ident = await asyncio.to_thread(caller_identity, cfg.aws)
        report.identities["aws"] = ident["arn"] + (f" (account {ident['account']})"
                                                   if ident["account"] else "")
    except CrosswindError as exc:
        report.identities["aws"] = f"unknown: {_line(exc)}"
        if cfg.aws.role_arn:
            report.probes.append(Probe("sts", f"AssumeRole {cfg.aws.role_arn}", "missing",
                                       _line(exc), report.directions))
    else:
        if cfg.aws.role_arn:
            report.probes.append(Probe("sts", f"AssumeRole {cfg.aws.role_arn}", "ok",
                                       report.identities["aws"], report.directions))
    try:
        report.identities["azure"] = resolve_auth(cfg.azure).principal
    except CrosswindError as exc:
        report.identities["azure"] = f"unknown: {_line(exc)}"


async def run_preflight(cfg: Config, directions: Sequence[Direction]) -> PreflightReport:
    """Probe every permission ``directions`` need; never raises for a refusal
    (each is a row of the report)."""
    configure(cfg)
    report = PreflightReport(tuple(d.value for d in directions))
    await _identities(cfg, report)
    for d in directions:
        await _direction(cfg, report, d)
    return report
