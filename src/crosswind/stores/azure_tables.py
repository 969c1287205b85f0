"""Azure Table Storage table as a ``RecordStore`` (azure-data-tables, async).

Rows are mapped between the SDK's entities and ``crosswind.entities.Entity``
here, at the boundary: every property is sent with its EDM type (so an Int64
of 5 stays Int64, as Azurite and Azure require), DateTimes as their exact
seven-digit text, and read back from the service's own text.

Writes go in transactions (one partition, at most 100 operations, all or
nothing). When one operation fails, the service names its index; that write
gets its result (conflict, missing, failed) and the rest are sent again, so
one bad row never takes its batch down with it.

Listings come in UTF-16 order from Azure; ``ordering.utf16_to_codepoint``
turns them into the code-point order of the ``RecordStore`` contract.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    map_error,
)
from azure.data.tables import EdmType, EntityProperty, TableTransactionError, UpdateMode
from azure.data.tables._generated.operations._operations import (
    build_table_query_entities_request,
)
from azure.data.tables.aio import TableClient, TableServiceClient

from crosswind.entities import (
    MAX_ENTITY_BYTES,
    Edm,
    EdmDateTime,
    Entity,
    Prop,
    sort_key,
)
from crosswind.errors import (
    AuthError,
    ConfigError,
    CrosswindError,
    EntityMappingError,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from crosswind.ordering import utf16_to_codepoint
from crosswind.secrets.renewal import Renewal, renewing, renewing_listing
from crosswind.stores.azure_common import (
    AzureAuth,
    azure_errors,
    check_sas,
    client_kwargs,
    resolve_auth,
    translate,
)
from crosswind.stores.base import BadRecord, RecordCapabilities, RecordWrite, WriteResult

MAX_TRANSACTION = 100

_TO_SDK: dict[Edm, EdmType] = {
    Edm.STRING: EdmType.STRING, Edm.INT32: EdmType.INT32, Edm.INT64: EdmType.INT64,
    Edm.DOUBLE: EdmType.DOUBLE, Edm.BOOLEAN: EdmType.BOOLEAN, Edm.DATETIME: EdmType.DATETIME,
    Edm.GUID: EdmType.GUID, Edm.BINARY: EdmType.BINARY,
}


def to_sdk(e: Entity) -> dict[str, Any]:
    """The SDK's form of ``e``: every property with its EDM type."""
    out: dict[str, Any] = {"PartitionKey": e.partition_key, "RowKey": e.row_key}
    for name, p in e.properties.items():
        value: Any = p.value.iso if isinstance(p.value, EdmDateTime) else p.value
        out[name] = EntityProperty(value, _TO_SDK[p.edm])
    return out


def _datetime_text(v: Any) -> str:
    # TablesEntityDatetime keeps the service's own text (7 digits); a plain
    # datetime (never from the service) only has microseconds.
    text = getattr(v, "tables_service_value", "") or ""
    return text or v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_sdk(raw: Any) -> Entity:
    """``Entity`` from an SDK entity; ``EntityMappingError`` for a value of no EDM type."""
    pk, rk = raw["PartitionKey"], raw["RowKey"]
    props: dict[str, Prop] = {}
    for name, v in raw.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        props[name] = _prop(pk, rk, name, v)
    meta = getattr(raw, "metadata", {}) or {}
    ts = meta.get("timestamp")
    return Entity(pk, rk, MappingProxyType(props), meta.get("etag"),
                  EdmDateTime.from_iso(_datetime_text(ts)) if ts is not None else None)


def _prop(pk: str, rk: str, name: str, v: Any) -> Prop:
    if isinstance(v, EntityProperty):
        if v.edm_type in (EdmType.INT64, "Edm.Int64"):
            return Prop(Edm.INT64, int(v.value))
        v = v.value
    if isinstance(v, bool):
        return Prop(Edm.BOOLEAN, v)
    if isinstance(v, int):
        return Prop(Edm.INT32, v)
    if isinstance(v, float):
        return Prop(Edm.DOUBLE, v)
    if isinstance(v, str):
        return Prop(Edm.STRING, v)
    if isinstance(v, uuid.UUID):
        return Prop(Edm.GUID, v)
    if isinstance(v, bytes):
        return Prop(Edm.BINARY, v)
    if hasattr(v, "strftime"):
        return Prop(Edm.DATETIME, EdmDateTime.from_iso(_datetime_text(v)))
    raise EntityMappingError("unmappable", f"row ({pk!r}, {rk!r}): property {name!r} has "
                             f"a value of type {type(v).__name__}, which has no EDM type")


def from_json(raw: dict[str, Any]) -> Entity:
    """``Entity`` from one entity of a query response (``odata=minimalmetadata``),
    by the SDK's own rules: a value without ``@odata.type`` is Int32 (Int64 out
    of its range), Double, Boolean or String by its JSON type."""
    types: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, v in raw.items():
        if name.endswith("@odata.type"):
            types[name[:-11]] = v
        elif not name.startswith("odata."):
            values[name] = v
    pk, rk = values.pop("PartitionKey"), values.pop("RowKey")
    stamp = values.pop("Timestamp", None)
    props: dict[str, Prop] = {}
    for name, v in values.items():
        t = types.get(name)
        if t is None:
            if isinstance(v, bool):
                props[name] = Prop(Edm.BOOLEAN, v)
            elif isinstance(v, int):
                props[name] = Prop(Edm.INT32 if -(2**31) <= v < 2**31 else Edm.INT64, v)
            elif isinstance(v, float):
                props[name] = Prop(Edm.DOUBLE, v)
            elif isinstance(v, str):
                props[name] = Prop(Edm.STRING, v)
            else:
                raise EntityMappingError("unmappable", f"row ({pk!r}, {rk!r}): property "
                                         f"{name!r} has a JSON value of no EDM type")
        else:
            edm, convert = _FROM_TEXT[t]
            props[name] = Prop(edm, convert(v))
    ts = EdmDateTime.from_iso(stamp) if isinstance(stamp, str) else None
    etag = raw.get("odata.etag")
    if etag is None and isinstance(stamp, str):
        etag = "W/\"datetime'" + quote(stamp) + "'\""
    return Entity(pk, rk, MappingProxyType(props), etag, ts)


def _bool(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).lower() == "true"


_FROM_TEXT: dict[str, tuple[Edm, Any]] = {e.value: (e, f) for e, f in {
    Edm.STRING: str, Edm.INT32: int, Edm.INT64: int, Edm.DOUBLE: float, Edm.BOOLEAN: _bool,
    Edm.DATETIME: EdmDateTime.from_iso, Edm.GUID: uuid.UUID, Edm.BINARY: base64.b64decode,
}.items()}


def _odata_quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


_INDEX = re.compile(r"^(\d+):")
_ERROR_MAP: dict[int, Any] = {401: ClientAuthenticationError, 404: ResourceNotFoundError}


class AzureTableStore:
    """One table. ``etag`` on entities is the service's etag string, as is."""

    def __init__(self, auth: AzureAuth, table: str, *, page_size: int = 1000,
                 writable: bool = False) -> None:
        self.auth = auth
        self.table_name = table
        self.page_size = page_size
        self.writable = writable
        self.name = f"azure-table://{auth.account_name}/{table}"
        self.capabilities = RecordCapabilities(
            max_batch=MAX_TRANSACTION, batch_one_partition=True, conditional_writes=True,
            since_filter=True, change_stream=False, max_record_bytes=MAX_ENTITY_BYTES,
        )
        self._retired: list[Any] = []
        self._connect()
        self.renewal = Renewal(self.name, auth.principal, auth.refs, self._renew)
        #: list by reading JSON pages directly (False: the SDK's pager; same rows)
        self.fast_listing = True

    def _connect(self) -> None:
        auth = self.auth
        kw = client_kwargs()
        if auth.connection_string:
            self.service = TableServiceClient.from_connection_string(auth.connection_string, **kw)
        else:
            url = auth.table_url or _table_url(auth.blob_url)
            cred: Any
            if auth.account_key:
                from azure.core.credentials import AzureNamedKeyCredential

                cred = AzureNamedKeyCredential(auth.account_name, auth.account_key)
            elif auth.sas_token:
                from azure.core.credentials import AzureSasCredential

                cred = AzureSasCredential(auth.sas_token)
            else:
                from azure.identity.aio import DefaultAzureCredential

                cred = DefaultAzureCredential()
            self.service = TableServiceClient(url, credential=cred, **kw)
        self.client: TableClient = self.service.get_table_client(self.table_name)

    async def _renew(self) -> bool:
        """The credentials were refused: resolve them again; new clients if they changed."""
        if self.auth.source is None:
            return False
        new = await asyncio.to_thread(resolve_auth, self.auth.source, refresh=True)
        if new == self.auth:
            return False
        self._retired += [self.client, self.service]
        self.auth = new
        self._connect()
        return True

    def _where(self, pk: str | None = None, rk: str | None = None) -> str:
        if pk is None:
            return self.name
        return f"{self.name} row ({pk!r}, {rk!r})"

    # -- reads ---------------------------------------------------------------------
    async def _pages(self, partition: str | None, since: EdmDateTime | None
                     ) -> AsyncIterator[Entity | BadRecord]:
        clauses = []
        if partition is not None:
            clauses.append(f"PartitionKey eq {_odata_quote(partition)}")
        if since is not None:
            clauses.append(f"Timestamp ge datetime'{since.iso}'")
        query = " and ".join(clauses) or None
        if self.fast_listing:
            async for item in self._fast_pages(query):
                yield item
            return
        with azure_errors(self.name):
            if clauses:
                pager = self.client.query_entities(" and ".join(clauses),
                                                   results_per_page=self.page_size)
            else:
                pager = self.client.list_entities(results_per_page=self.page_size)
            async for raw in pager:
                try:
                    yield from_sdk(raw)
                except (EntityMappingError, ValueError) as exc:
                    err = exc if isinstance(exc, EntityMappingError) else EntityMappingError(
                        "unmappable", f"{self._where(raw['PartitionKey'], raw['RowKey'])}: {exc}")
                    yield BadRecord(raw["PartitionKey"], raw["RowKey"],
                                    f"{raw['PartitionKey']}/{raw['RowKey']}", err, repr(dict(raw)))

    async def _fast_pages(self, query: str | None) -> AsyncIterator[Entity | BadRecord]:
        """The query through the SDK's own pipeline (auth, retries, timeouts), with
        each JSON page read straight into entities: the SDK's generic deserializer
        costs more per row than the rest of a sync together (see README)."""
        next_pk: str | None = None
        next_rk: str | None = None
        while True:
            response = await self._query_page(query, self.page_size, next_pk, next_rk)
            for raw in json.loads(response.body()).get("value", []):
                try:
                    yield from_json(raw)
                except (EntityMappingError, ValueError, TypeError, KeyError) as exc:
                    pk, rk = raw.get("PartitionKey"), raw.get("RowKey")
                    err = exc if isinstance(exc, EntityMappingError) else EntityMappingError(
                        "unmappable", f"{self._where(pk, rk)}: {exc}")
                    yield BadRecord(pk, rk, f"{pk}/{rk}", err, json.dumps(raw)[:65536])
            next_pk = response.headers.get("x-ms-continuation-NextPartitionKey")
            next_rk = response.headers.get("x-ms-continuation-NextRowKey")
            if not next_pk:
                return

    async def _query_page(self, query: str | None, top: int, next_pk: str | None,
                          next_rk: str | None) -> Any:
        """One page of a query (the HTTP response), through the SDK's pipeline."""
        gen = self.client._client  # the generated REST client under TableClient
        req = build_table_query_entities_request(
            table=self.table_name, top=top, filter=query, next_partition_key=next_pk,
            next_row_key=next_rk, version=gen._config.version)
        req.url = gen._client.format_url(req.url, url=gen._config.url)
        with azure_errors(self.name):
            response = (await gen._client._pipeline.run(req, stream=False)).http_response
            if response.status_code != 200:
                map_error(response.status_code, response, _ERROR_MAP)
                raise HttpResponseError(response=response)
        return response

    @renewing
    async def server_time(self) -> EdmDateTime | None:
        """The service's clock now: the ``Date`` header of a one-row query (whole
        seconds, rounded down, so never later than the clock that stamps rows'
        ``Timestamp``); None if the response has none."""
        response = await self._query_page("PartitionKey eq ''", 1, None, None)
        try:
            when = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError):
            return None
        return EdmDateTime.from_datetime(when.astimezone(UTC)) if when.tzinfo else None

    @renewing_listing(lambda r: sort_key(r.partition_key or "", r.row_key or ""))
    def list(self, *, partition: str | None = None, since: EdmDateTime | None = None
             ) -> AsyncIterator[Entity | BadRecord]:
        return utf16_to_codepoint(
            self._pages(partition, since),
            key=lambda r: sort_key(r.partition_key or "", r.row_key or ""),
        )

    @renewing
    async def get(self, partition_key: str, row_key: str) -> Entity:
        with azure_errors(self._where(partition_key, row_key)):
            raw = await self.client.get_entity(partition_key, row_key)
        return from_sdk(raw)

    # -- writes --------------------------------------------------------------------
    @staticmethod
    def _operation(w: RecordWrite) -> tuple[Any, ...]:
        e = w.entity
        cond: dict[str, Any] = {}
        if w.if_match is not None:
            cond = {"etag": w.if_match, "match_condition": MatchConditions.IfNotModified}
        if w.op == "delete":
            return ("delete", {"PartitionKey": e.partition_key, "RowKey": e.row_key}, cond)
        if w.op == "create":
            return ("create", to_sdk(e))
        if w.if_match is not None:
            return ("update", to_sdk(e), {"mode": UpdateMode.REPLACE, **cond})
        return ("upsert", to_sdk(e), {"mode": UpdateMode.REPLACE})

    @renewing
    async def write_batch(self, writes: Sequence[RecordWrite]) -> Sequence[WriteResult]:
        if not writes:
            return []
        pks = {w.entity.partition_key for w in writes}
        keys = {w.entity.key for w in writes}
        if len(pks) != 1 or len(keys) != len(writes) or len(writes) > MAX_TRANSACTION:
            raise ValueError("a table batch needs one partition, unique rows and at most "
                             f"{MAX_TRANSACTION} writes")
        results: dict[int, WriteResult] = {}
        pending = list(range(len(writes)))
        while pending:
            ops = [self._operation(writes[i]) for i in pending]
            try:
                with azure_errors(self.name):
                    try:
                        answers = await self.client.submit_transaction(ops)
                    except TableTransactionError as exc:
                        failed_at = self._failed_index(exc, len(pending))
                        if failed_at is None:
                            raise
                        i = pending.pop(failed_at)
                        results[i] = self._failure(writes[i], exc)
                        continue
            except StoreError as exc:
                if exc.retryable or isinstance(exc, AuthError):
                    raise
                if len(pending) == 1:
                    results[pending[0]] = WriteResult(writes[pending[0]], "failed", error=exc)
                    break
                # The service did not say which write failed: isolate them one by one.
                for i in pending:
                    results[i] = (await self.write_batch([writes[i]]))[0]
                break
            for i, answer in zip(pending, answers, strict=True):
                results[i] = WriteResult(writes[i], "ok", etag=(answer or {}).get("etag"))
            break
        return [results[i] for i in range(len(writes))]

    @staticmethod
    def _failed_index(exc: TableTransactionError, n: int) -> int | None:
        m = _INDEX.match(str(getattr(exc, "message", "") or ""))
        if m and int(m.group(1)) < n:
            return int(m.group(1))
        return 0 if n == 1 else None

    def _failure(self, w: RecordWrite, exc: TableTransactionError) -> WriteResult:
        status = getattr(exc, "status_code", None)
        code = str(getattr(exc, "error_code", "") or "")
        where = self._where(w.entity.partition_key, w.entity.row_key)
        if status == 412 or (status == 409 and w.op == "create"):
            return WriteResult(w, "conflict", error=PreconditionFailed(
                f"{where}: the row changed since it was last synced ({code or status})"))
        if status == 404 and w.op == "delete":
            return WriteResult(w, "missing")
        if status == 404 and w.if_match is not None:
            # An update found no row: it was deleted on this side since the last sync.
            return WriteResult(w, "conflict", error=NotFound(
                f"{where}: the row no longer exists ({code or 404})"))
        err: CrosswindError = translate(exc, where)
        if code in ("PropertyValueTooLarge", "EntityTooLarge", "RequestBodyTooLarge"):
            err = EntityMappingError("oversize", f"{where}: the service refused the row ({code})")
        elif code in ("InvalidInput", "PropertyNameInvalid", "InvalidValueType",
                      "PropertyNameTooLong", "TooManyProperties", "OutOfRangeInput"):
            err = EntityMappingError("unmappable", f"{where}: the service refused the row "
                                     f"({code})")
        return WriteResult(w, "failed", error=err)

    @renewing
    async def delete(self, partition_key: str, row_key: str, *, if_match: str | None = None
                     ) -> None:
        kw: dict[str, Any] = {}
        if if_match is not None:
            kw = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        try:
            with azure_errors(self._where(partition_key, row_key)):
                await self.client.delete_entity(partition_key, row_key, **kw)
        except NotFound:
            return  # already gone: the state a delete asks for

    # -- admin ---------------------------------------------------------------------
    @renewing
    async def check(self) -> None:
        if self.auth.sas_token:
            check_sas(self.auth.sas_token, "raud" if self.writable else "r", self.name, "table",
                      emulator=self.auth.emulator)
        try:
            with azure_errors(self.name):
                async for _ in self.client.query_entities("PartitionKey eq ''",
                                                          results_per_page=1):
                    break
        except NotFound:
            raise NotFound(f"{self.name}: the table {self.table_name!r} does not exist "
                           "(check [azure].table, or create it)") from None

    @renewing
    async def create(self) -> None:
        """Create the table if it does not exist (demo, tests, a fresh replica)."""
        try:
            with azure_errors(self.name):
                await self.service.create_table(self.table_name)
        except StoreError as exc:
            if "already exists" not in str(exc) and "TableAlreadyExists" not in str(exc):
                raise

    async def close(self) -> None:
        for old in self._retired:
            await old.close()
        await self.client.close()
        await self.service.close()


def _table_url(blob_url: str) -> str:
    if ".blob." in blob_url:
        return blob_url.replace(".blob.", ".table.", 1)
    raise ConfigError("[azure]: cannot tell the table endpoint from account_url "
                      f"{blob_url!r}; give a connection_string with TableEndpoint")


def open_table_store(auth: AzureAuth, table: str | None, *, page_size: int = 1000,
                     writable: bool = False) -> AzureTableStore:
    if not table:
        raise ConfigError("[azure].table is required for metadata rows")
    return AzureTableStore(auth, table, page_size=page_size, writable=writable)


