"""The XML-parsed Azure listing gives exactly what the SDK's pager gives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from azure.storage.blob import ContentSettings

from crosswind.model import ObjectMeta
from crosswind.stores.azure_blob import AzureBlobStore
from crosswind.stores.azure_common import resolve_auth
from crosswind.stores.azure_listing import fast_list

pytestmark = pytest.mark.integration

NAMES = ["a", "a b", "a+b", "é/ü", "emoji/😀", "x\ue000", "dir/", "deep/a/b/c.json",
         "amp&<lt>", "pct%20", *(f"many/{i:03d}" for i in range(30))]


def test_fast_listing_equals_the_sdk_pager(make_env: Any) -> None:
    env = make_env()
    for i, name in enumerate(NAMES):
        env.container.upload_blob(
            name, f"data {i}".encode() * (i + 1),
            # "Blob" and "Name" as metadata names: elements inside <Metadata>.
            metadata={"FlightNo": f"AA{i}", "lower": "x", "Blob": "b", "Name": "n"}
            if i % 2 else None,
            content_settings=ContentSettings(
                content_type="application/json" if i % 3 else None,
                cache_control="no-cache" if i % 4 == 0 else None,
                content_language="en" if i % 5 == 0 else None))

    async def both(prefix: str) -> tuple[list[ObjectMeta], list[ObjectMeta]]:
        store = AzureBlobStore(resolve_auth(env.config.azure), env.config.azure.container)
        try:
            fast = [m async for m in fast_list(store.container, prefix, page_size=7)]
            store.fast_listing = False
            sdk = [m async for m in store._native_list(prefix)]
            return fast, sdk
        finally:
            await store.close()

    for prefix in ("", "many/", "a", "é"):
        fast, sdk = asyncio.run(both(prefix))
        assert fast == sdk, prefix
    fast, _ = asyncio.run(both(""))
    assert {m.key for m in fast} == set(NAMES)
    assert all(m.content_md5 and m.props is not None for m in fast)
