"""Azure blob listings read straight from the service's XML.

The SDK's generic deserializer costs about 0.2 ms of CPU per blob, which is
most of an incremental sync's work (200 s per million blobs). This sends the
same List Blobs request through the SDK's own pipeline (auth, retries,
timeouts) and reads each page with ElementTree, about ten times cheaper.
It relies on two SDK internals (the generated request builder and the
client's pipeline); ``AzureBlobStore.fast_listing = False`` falls back to the
public pager, and a test checks both give the same entries.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from azure.core.exceptions import HttpResponseError
from azure.storage.blob._generated.operations._container_operations import (
    build_list_blob_flat_segment_request,
)

from crosswind.model import ObjectMeta, ObjectProps, strip_etag
from crosswind.stores.common import b64_to_hex

_HEADERS = (
    ("content_type", "Content-Type"),
    ("content_encoding", "Content-Encoding"),
    ("content_language", "Content-Language"),
    ("content_disposition", "Content-Disposition"),
    ("cache_control", "Cache-Control"),
)


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    found = el.find(tag)
    return found.text if found is not None and found.text else None


def _modified(value: str | None) -> datetime | None:
    return parsedate_to_datetime(value) if value else None


def parse_page(body: bytes) -> tuple[list[ObjectMeta], str | None]:
    """Entries of one List Blobs page (directory markers left out) and the next marker."""
    root = ET.fromstring(body)  # noqa: S314  (the storage service's own response)
    out: list[ObjectMeta] = []
    blobs = root.find("Blobs")
    # Direct children only: a metadata entry named "Blob" is an element too.
    for blob in blobs.findall("Blob") if blobs is not None else ():
        name_el = blob.find("Name")
        name = name_el.text or "" if name_el is not None else ""
        if name_el is not None and name_el.get("Encoded") == "true":
            name = unquote(name)
        props_el = blob.find("Properties")
        md_el = blob.find("Metadata")
        metadata = {m.tag: m.text or "" for m in md_el} if md_el is not None else {}
        if metadata.get("hdi_isfolder") == "true":
            continue  # directory marker of a hierarchical namespace
        headers = {f: _text(props_el, tag) for f, tag in _HEADERS}
        out.append(ObjectMeta(
            name,
            int(_text(props_el, "Content-Length") or 0),
            strip_etag(_text(props_el, "Etag")),
            _modified(_text(props_el, "Last-Modified")),
            b64_to_hex(_text(props_el, "Content-MD5")),
            ObjectProps(**headers, metadata=metadata),
        ))
    return out, root.findtext("NextMarker") or None


async def fast_list(container: Any, prefix: str, page_size: int = 5000
                    ) -> AsyncIterator[ObjectMeta]:
    """List ``container`` (an aio ``ContainerClient``) page by page."""
    gen = container._client  # the generated REST client under ContainerClient
    marker: str | None = None
    while True:
        req = build_list_blob_flat_segment_request(
            url=gen._config.url, version=gen._config.version, prefix=prefix or None,
            marker=marker, maxresults=page_size, include=["metadata"])
        req.url = gen._client.format_url(req.url)
        response = (await gen._client._pipeline.run(req, stream=False)).http_response
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        entries, marker = parse_page(response.body())
        for entry in entries:
            yield entry
        if not marker:
            return
