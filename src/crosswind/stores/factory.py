"""Build the stores a config describes."""

from __future__ import annotations

from typing import Literal

from crosswind.config import Config
from crosswind.errors import ConfigError
from crosswind.secrets import configure
from crosswind.stores.azure_blob import AzureBlobStore
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_queue import AzureQueue
from crosswind.stores.base import ObjectStore
from crosswind.stores.queues import MessageQueue
from crosswind.stores.s3 import S3ObjectStore
from crosswind.stores.sqs import SqsQueue

Side = Literal["azure", "aws"]


async def open_object_store(cfg: Config, side: Side) -> ObjectStore:
    configure(cfg)
    if side == "azure":
        return AzureBlobStore(resolve_auth(cfg.azure), cfg.azure.container)
    return await S3ObjectStore.open(cfg.aws, pool=max(64, cfg.sync.concurrency * 2))


async def open_azure_event_queue(cfg: Config) -> AzureQueue:
    """The Storage Queue Event Grid delivers the container's blob events to
    (``[azure] queue``, in the storage account of ``[azure]``)."""
    configure(cfg)
    if not cfg.azure.queue:
        raise ConfigError("[azure].queue is required for Azure change events (the Storage "
                          "Queue Event Grid delivers blob events to)")
    return AzureQueue(resolve_auth(cfg.azure), cfg.azure.queue)


async def open_sqs_event_queue(cfg: Config) -> SqsQueue:
    """The SQS queue the bucket's S3 event notifications go to (``[aws] sqs_queue_url``,
    through ``[aws] endpoint_url`` when set)."""
    configure(cfg)
    if not cfg.aws.sqs_queue_url:
        raise ConfigError("[aws].sqs_queue_url is required for S3 change events (the SQS "
                          "queue the bucket's event notifications go to)")
    return await SqsQueue.open(cfg.aws)


async def open_event_queue(cfg: Config, side: Side) -> MessageQueue:
    """The queue the change events of ``side``'s objects arrive on; parse its
    messages with ``live.events.parse_azure_message`` / ``parse_s3_message``."""
    if side == "azure":
        return await open_azure_event_queue(cfg)
    return await open_sqs_event_queue(cfg)
