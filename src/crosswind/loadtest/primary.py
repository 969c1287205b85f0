"""Both sides of the estate as a load test sees them: the primary it writes
(objects, rows, and, against an emulator before cutover, the Event Grid
events Azure would deliver) and the replica it reads back. Only through the
store interfaces; the primary is the side the migration phase says."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from crosswind.config import Config
from crosswind.entities import Entity
from crosswind.errors import StoreError
from crosswind.live.events import azure_queue_body, blob_event
from crosswind.model import Direction, ObjectProps
from crosswind.secrets import configure
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_tables import open_table_store
from crosswind.stores.base import ObjectStore, RecordStore, RecordWrite
from crosswind.stores.common import md5_hex
from crosswind.stores.documentdb import DocumentDBStore
from crosswind.stores.factory import open_azure_event_queue, open_object_store
from crosswind.stores.queues import MessageQueue


class Primary:
    """Writes of the load on the primary side."""

    def __init__(self, objects: ObjectStore, rows: RecordStore, events: MessageQueue | None,
                 container: str) -> None:
        self.objects = objects
        self.rows = rows
        self.events = events
        self.container = container
        self._seq = 0

    def _sequencer(self) -> str:
        # increasing per blob, as Azure's are (and across runs: from the clock)
        self._seq = max(self._seq + 1, time.time_ns())
        return f"{self._seq:032x}"

    async def _event(self, op: str, key: str, etag: str | None = None,
                     size: int | None = None) -> None:
        if self.events is None:
            return
        # eventTime: when the write was done (its response came back)
        ev = blob_event(op, self.container, key,  # type: ignore[arg-type]
                        event_time=datetime.now(UTC), sequencer=self._sequencer(), etag=etag,
                        size=size, event_id=str(uuid.uuid4()))
        await self.events.send(azure_queue_body(ev))

    async def put_object(self, key: str, data: bytes, content_type: str,
                         metadata: dict[str, str]) -> None:
        r = await self.objects.put(key, data, ObjectProps(content_type=content_type,
                                                          metadata=metadata), md5=md5_hex(data))
        await self._event("upsert", key, r.etag, len(data))

    async def delete_object(self, key: str) -> None:
        await self.objects.delete(key)
        await self._event("delete", key)

    async def put_row(self, entity: Entity) -> None:
        (res,) = await self.rows.write_batch([RecordWrite("upsert", entity)])
        if res.status != "ok":
            raise res.error or StoreError(f"{self.rows.name}: row {entity.partition_key}/"
                                          f"{entity.row_key} not written: {res.status}")

    async def delete_row(self, pk: str, rk: str) -> None:
        await self.rows.delete(pk, rk)


@dataclass
class Sides:
    primary: Primary
    #: the replica, read only
    replica_objects: ObjectStore
    replica_rows: RecordStore
    direction: Direction


@contextlib.asynccontextmanager
async def opened_sides(cfg: Config, direction: Direction, *, emulate_events: bool
                       ) -> AsyncIterator[Sides]:
    """The primary's stores (writable) and the replica's, closed on exit."""
    configure(cfg)
    stack = contextlib.AsyncExitStack()
    async with stack:
        src, dst = direction.source_side, direction.destination_side
        objs = {}
        for side in (src, dst):
            store = await open_object_store(cfg, side)
            stack.push_async_callback(store.close)
            objs[side] = store
        table = open_table_store(resolve_auth(cfg.azure), cfg.azure.table,
                                 page_size=cfg.metadata.page_size, writable=src == "azure")
        stack.push_async_callback(table.close)
        docs = DocumentDBStore.open(cfg.aws, page_size=cfg.metadata.page_size)
        stack.push_async_callback(docs.close)
        rows: dict[str, RecordStore] = {"azure": table, "aws": docs}
        events = None
        if emulate_events and src == "azure":
            events = await open_azure_event_queue(cfg)
            stack.push_async_callback(events.close)
        yield Sides(Primary(objs[src], rows[src], events, cfg.azure.container),
                    objs[dst], rows[dst], direction)
