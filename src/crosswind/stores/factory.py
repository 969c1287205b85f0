"""Build the stores a config describes."""

from __future__ import annotations

from typing import Literal

from crosswind.config import Config
from crosswind.stores.azure_blob import AzureBlobStore
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.base import ObjectStore
from crosswind.stores.s3 import S3ObjectStore

Side = Literal["azure", "aws"]


async def open_object_store(cfg: Config, side: Side) -> ObjectStore:
    if side == "azure":
        return AzureBlobStore(resolve_auth(cfg.azure), cfg.azure.container)
    return await S3ObjectStore.open(cfg.aws, pool=max(64, cfg.sync.concurrency * 2))
