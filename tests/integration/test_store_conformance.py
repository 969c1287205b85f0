"""The store contract (``tests/store_contract.py``) against Azure Blob on Azurite and
S3 on moto server. Each check gets a fresh container or bucket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from crosswind.config import AwsConfig, AzureConfig
from crosswind.rig.emulators import Azurite, Moto
from crosswind.stores.azure_blob import AzureBlobStore
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.base import ObjectStore
from crosswind.stores.s3 import S3ObjectStore
from tests.integration.conftest import unique
from tests.store_contract import CHECKS, StoreFactory, parametrize_checks, run_check

pytestmark = pytest.mark.integration


@pytest.fixture
def azure_factory(azurite: Azurite, blob_service: BlobServiceClient) -> StoreFactory:
    @contextlib.asynccontextmanager
    async def open_store() -> AsyncIterator[ObjectStore]:
        name = unique("conf")
        blob_service.create_container(name)
        cfg = AzureConfig(connection_string=azurite.connection_string, container=name,
                          emulator=True)
        store = AzureBlobStore(resolve_auth(cfg), name)
        try:
            yield store
        finally:
            await store.close()
            blob_service.delete_container(name)

    return open_store


@pytest.fixture
def azure_sdk_factory(azurite: Azurite, blob_service: BlobServiceClient) -> StoreFactory:
    """Azure Blob with every read through the SDK, as with ``credential = "default"``
    (obstore cannot use an Azure AD credential, so the store reads with the SDK)."""
    @contextlib.asynccontextmanager
    async def open_store() -> AsyncIterator[ObjectStore]:
        name = unique("conf")
        blob_service.create_container(name)
        cfg = AzureConfig(connection_string=azurite.connection_string, container=name,
                          emulator=True)
        store = AzureBlobStore(resolve_auth(cfg), name)
        store.fast = None
        try:
            yield store
        finally:
            await store.close()
            blob_service.delete_container(name)

    return open_store


@pytest.fixture
def s3_factory(moto: Moto, s3_client: Any) -> StoreFactory:
    @contextlib.asynccontextmanager
    async def open_store() -> AsyncIterator[ObjectStore]:
        name = unique("conf")
        s3_client.create_bucket(Bucket=name)
        cfg = AwsConfig(bucket=name, endpoint_url=moto.endpoint, access_key_id="test",
                        secret_access_key="test", emulator=True)
        store = await S3ObjectStore.open(cfg)
        try:
            yield store
        finally:
            await store.close()

    return open_store


@parametrize_checks()
def test_contract_azure_blob(check_name: str, azure_factory: StoreFactory) -> None:
    run_check(azure_factory, CHECKS[check_name])


@parametrize_checks()
def test_contract_azure_blob_sdk_reads(check_name: str, azure_sdk_factory: StoreFactory) -> None:
    run_check(azure_sdk_factory, CHECKS[check_name])


@parametrize_checks()
def test_contract_s3(check_name: str, s3_factory: StoreFactory) -> None:
    run_check(s3_factory, CHECKS[check_name])
