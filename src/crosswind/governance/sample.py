"""A sample of the real estate, as instances of a subject (for ``schema infer``),
read through the stores' interfaces."""

from __future__ import annotations

from typing import Any

from crosswind.config import Config
from crosswind.entities import Entity
from crosswind.errors import ConfigError, NotFound
from crosswind.governance.naming import Side
from crosswind.governance.subjects import (
    entity_document_instance,
    entity_instance,
    object_instance,
)


async def sample_instances(cfg: Config, subject: str, *, side: Side | None = None,
                           limit: int = 200) -> tuple[list[Any], str]:
    """Up to ``limit`` instances of ``subject`` and the store they came from. Objects
    are read from ``side`` (default Azure); rows from the store the subject
    describes (the Azure table, the DocumentDB collection)."""
    if subject == "object-metadata":
        return await _objects(cfg, side or "azure", limit)
    if not (cfg.azure.table and cfg.aws.documentdb_uri):
        raise ConfigError("sampling rows needs [azure] table and [aws] documentdb_uri")
    if subject == "table-entity":
        from crosswind.stores.azure_common import resolve_auth
        from crosswind.stores.azure_tables import open_table_store

        table = open_table_store(resolve_auth(cfg.azure), cfg.azure.table,
                                 page_size=min(1000, max(1, limit)))
        try:
            await table.check()
            return [entity_instance(e) for e in await _rows(table.list(), limit)], table.name
        finally:
            await table.close()
    from crosswind.stores.documentdb import DocumentDBStore

    docs = DocumentDBStore.open(cfg.aws, page_size=min(1000, max(1, limit)))
    try:
        await docs.check()
        return ([entity_document_instance(e) for e in await _rows(docs.list(), limit)],
                docs.name)
    finally:
        await docs.close()


async def _rows(listing: Any, limit: int) -> list[Entity]:
    out: list[Entity] = []
    async for r in listing:
        if isinstance(r, Entity):  # a row that cannot be mapped is no sample
            out.append(r)
        if len(out) >= limit:
            break
    return out


async def _objects(cfg: Config, side: Side, limit: int) -> tuple[list[Any], str]:
    from crosswind.stores.factory import open_object_store

    store = await open_object_store(cfg, side)
    try:
        await store.check()
        out: list[Any] = []
        async for meta in store.list(cfg.sync.prefix):
            props = meta.props
            if props is None:  # listings without metadata (S3): one HEAD each
                try:
                    props = (await store.head(meta.key)).props
                except NotFound:
                    continue
            out.append(object_instance(meta.key, meta.size, props))
            if len(out) >= limit:
                break
        return out, store.name
    finally:
        await store.close()
