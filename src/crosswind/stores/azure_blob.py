"""Azure Blob Storage container.

The official async SDK does listings (they carry headers and case-preserved
metadata, so no HEAD per object), writes and deletes. Reads of object bytes go
through obstore (Rust) when the credential allows: it is about twice as fast
per request as the SDK's download path on the same machine (see README).

Writes send the MD5 of the bytes read as ``Content-MD5``; Azure (and Azurite)
verify it and reject a mismatch, so corrupted bytes never become visible.
Blocks of a multipart upload are verified the same way, one by one, and the
whole-object MD5 is stored on commit (``late_metadata``). A streamed write
(``put_stream``) is one Put Blob whose body is sent while it is read; it needs
the content MD5 before the bytes (Azure checks Content-MD5 on receipt, before
the blob exists), so only objects whose source MD5 is known stream; the
transfer sends the others as blocks.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import obstore
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, ContentSettings
from azure.storage.blob._generated.models import BlobHTTPHeaders, ModifiedAccessConditions
from azure.storage.blob._shared.response_handlers import (
    process_storage_error,
    return_response_headers,
)
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, ExponentialRetry
from obstore.store import AzureStore

from crosswind.errors import InvalidKey, NotFound, PreconditionFailed, StoreError
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt, strip_etag
from crosswind.ordering import utf16_to_codepoint
from crosswind.secrets.renewal import Renewal, renewing, renewing_listing, renewing_once
from crosswind.stores.azure_common import (
    AzureAuth,
    azure_errors,
    check_sas,
    client_kwargs,
    resolve_auth,
)
from crosswind.stores.azure_listing import fast_list
from crosswind.stores.base import Capabilities, ObjectReader, StreamBody
from crosswind.stores.common import b64_to_hex, hex_to_b64, require_md5, single_put_fits
from crosswind.stores.obstore_common import ObstoreReader, obstore_can_address, obstore_errors
from crosswind.tls import obstore_options

MiB = 1024 * 1024


def _props(blob: Any) -> ObjectProps:
    cs = blob.content_settings
    return ObjectProps(
        content_type=cs.content_type or None,
        content_encoding=cs.content_encoding or None,
        content_language=cs.content_language or None,
        content_disposition=cs.content_disposition or None,
        cache_control=cs.cache_control or None,
        metadata=dict(blob.metadata or {}),
    )


def _content_settings(props: ObjectProps, md5: str | None = None) -> ContentSettings:
    return ContentSettings(
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        content_language=props.content_language,
        content_disposition=props.content_disposition,
        cache_control=props.cache_control,
        content_md5=bytearray(bytes.fromhex(md5)) if md5 else None,
    )


def _str(value: object) -> str | None:
    return strip_etag(value) if isinstance(value, str) else None


def _conditions(mode: PutMode, if_match: str | None) -> dict[str, Any]:
    if mode is PutMode.CREATE:
        return {"overwrite": False}
    if mode is PutMode.UPDATE:
        return {"overwrite": True, "etag": f'"{if_match}"',
                "match_condition": MatchConditions.IfNotModified}
    return {"overwrite": True}


class AzureBlobStore:
    def __init__(self, auth: AzureAuth, container: str) -> None:
        self.auth = auth
        self.container_name = container
        self.name = f"azure://{auth.account_name}/{container}"
        self.capabilities = Capabilities(
            listing_has_props=True, late_metadata=True, metadata_flavor="azure",
            # Put Blob takes up to 5000 MiB (API versions since 2019-12-12; Azurite
            # sets no limit of its own); a block up to 4000 MiB, 50,000 of them.
            min_part_size=1, max_parts=50_000, max_single_put=5000 * MiB,
            max_metadata_bytes=8192,
            # Put Blob verifies a Content-MD5 sent before the bytes, nothing after.
            streamed_put="md5_first",
        )
        self._retired: list[Any] = []
        self._connect()
        self.renewal = Renewal(self.name, auth.principal, auth.refs, self._renew)
        #: listings parsed from the XML directly (see azure_listing.py); False = SDK pager
        self.fast_listing = True

    def _connect(self) -> None:
        """The SDK clients and the obstore reader for ``self.auth``."""
        auth = self.auth
        # The storage SDK's default backoff waits 15 s + 18 s + 24 s before it
        # gives up on a dead endpoint; a few seconds is enough to ride out blips.
        # max_single_put_size: whether an object goes in one request or in blocks
        # is crosswind's decision (sync/transfer.py), never the SDK's. By default
        # upload_blob stages blocks above 64 MiB, each sent with the whole
        # object's Content-MD5, which the service then rejects.
        kw = {**client_kwargs(), "retry_policy": ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1),
            "max_single_put_size": self.capabilities.max_single_put,
            # The SDK's reads (keys obstore cannot address, Azure AD credentials)
            # fetch up to max_single_get_size first (32 MiB by default) and then
            # chunks: a streamed copy holds one of them. 8 MiB covers a part in
            # one request; 4 MiB chunks after it.
            "max_single_get_size": 8 * MiB, "max_chunk_get_size": 4 * MiB}
        if auth.connection_string:
            self.service = BlobServiceClient.from_connection_string(auth.connection_string, **kw)
        elif auth.account_key:
            cred: Any = {"account_name": auth.account_name, "account_key": auth.account_key}
            self.service = BlobServiceClient(auth.blob_url, credential=cred, **kw)
        elif auth.sas_token:
            self.service = BlobServiceClient(auth.blob_url, credential=auth.sas_token, **kw)
        else:
            from azure.identity.aio import DefaultAzureCredential

            self.service = BlobServiceClient(auth.blob_url, credential=DefaultAzureCredential(),
                                             **kw)
        self.container: ContainerClient = self.service.get_container_client(
            self.container_name)
        self.fast = self._obstore()

    async def _renew(self) -> bool:
        """The credentials were refused: resolve them again; new clients if they changed."""
        if self.auth.source is None:
            return False
        new = await asyncio.to_thread(resolve_auth, self.auth.source, refresh=True)
        if new == self.auth:
            return False
        # Calls in flight keep the old clients; they are closed with the store.
        self._retired.append(self.service)
        self.auth = new
        self._connect()
        return True

    def _obstore(self) -> AzureStore | None:
        """obstore for reads, when it can use the same credential."""
        a = self.auth
        if not (a.account_key or a.sas_token):
            return None
        cfg: dict[str, Any] = {"account_name": a.account_name, "endpoint": a.blob_url}
        if a.account_key:
            cfg["account_key"] = a.account_key
        else:
            cfg["sas_key"] = a.sas_token
        options: Any = {"allow_http": a.blob_url.startswith("http://"),
                        "connect_timeout": timedelta(seconds=10),
                        "timeout": timedelta(seconds=300), **obstore_options()}
        return AzureStore(
            container_name=self.container_name,
            client_options=options,
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=60),
                          "backoff": {"init_backoff": timedelta(milliseconds=100),
                                      "max_backoff": timedelta(seconds=8), "base": 2}},
            **cfg,
        )

    def _where(self, key: str | None = None) -> str:
        return f"{self.name}/{key}" if key else self.name

    # -- reading -------------------------------------------------------------
    async def _native_list(self, prefix: str) -> AsyncIterator[ObjectMeta]:
        if self.fast_listing:
            with azure_errors(self._where()):
                async for entry in fast_list(self.container, prefix):
                    yield entry
            return
        with azure_errors(self._where()):
            pages = self.container.list_blobs(
                name_starts_with=prefix or None, include=["metadata"], results_per_page=5000
            )
            async for blob in pages:
                md = blob.metadata or {}
                if md.get("hdi_isfolder") == "true":
                    continue  # directory marker of a hierarchical namespace
                yield ObjectMeta(
                    blob.name, blob.size, strip_etag(blob.etag), blob.last_modified,
                    b64_to_hex(blob.content_settings.content_md5), _props(blob),
                )

    @renewing_listing(lambda m: m.key)
    def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        # Azure lists in UTF-16 order; the contract is code-point order.
        return utf16_to_codepoint(self._native_list(prefix), key=lambda m: m.key)

    @renewing
    async def head(self, key: str) -> ObjectMeta:
        self._addressable(key)
        with azure_errors(self._where(key)):
            p = await self.container.get_blob_client(key).get_blob_properties()
        return ObjectMeta(key, p.size, strip_etag(p.etag), p.last_modified,
                          b64_to_hex(p.content_settings.content_md5), _props(p))

    @renewing
    async def get(
        self, key: str, *, if_match: str | None = None, byte_range: tuple[int, int] | None = None
    ) -> ObjectReader:
        self._addressable(key)
        if self.fast is not None and obstore_can_address(key):
            opts: dict[str, Any] = {}
            if if_match:
                opts["if_match"] = f'"{if_match}"'
            if byte_range:
                opts["range"] = byte_range
            with obstore_errors(self._where(key)):
                result = await obstore.get_async(self.fast, key, options=opts or None)  # type: ignore[arg-type]
            # obstore lower-cases metadata names; Azure listings carry the exact
            # props, so this reader leaves props empty and callers use the listing's.
            return ObstoreReader(result, key, self._where(key), props=None)
        return await self._sdk_get(key, if_match, byte_range)

    async def _sdk_get(
        self, key: str, if_match: str | None, byte_range: tuple[int, int] | None
    ) -> ObjectReader:
        kw: dict[str, Any] = {}
        if if_match:
            kw = {"etag": f'"{if_match}"', "match_condition": MatchConditions.IfNotModified}
        if byte_range:
            kw["offset"] = byte_range[0]
            kw["length"] = byte_range[1] - byte_range[0]
        with azure_errors(self._where(key)):
            # decompress=False: the SDK would gunzip a blob stored with
            # Content-Encoding: gzip; a copy carries the bytes as stored.
            downloader = await self.container.download_blob(
                key, max_concurrency=1, decompress=False, **kw)
        p = downloader.properties
        # A ranged download's properties give the range's length; the contract's
        # reader.meta describes the whole object ("bytes 0-9/10000").
        size = p.size
        if byte_range and p.content_range:
            size = int(str(p.content_range).rsplit("/", 1)[1])
        meta = ObjectMeta(key, size, strip_etag(p.etag), p.last_modified,
                          b64_to_hex(p.content_settings.content_md5), _props(p))
        return _SdkReader(meta, downloader, self._where(key))

    # -- writing -------------------------------------------------------------
    @renewing
    async def put(
        self,
        key: str,
        data: bytes,
        props: ObjectProps,
        *,
        md5: str,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> WriteReceipt:
        self._writable(key)
        single_put_fits(self._where(key), len(data), self.capabilities)
        with azure_errors(self._where(key)):
            r = await self.container.get_blob_client(key).upload_blob(
                data, length=len(data), metadata=dict(props.metadata),
                content_settings=_content_settings(props, md5),
                headers={"Content-MD5": hex_to_b64(md5)}, max_concurrency=1,
                **_conditions(mode, if_match),
            )
        # The service checked Content-MD5 already; its own hash must agree too.
        require_md5(key, md5, b64_to_hex(r.get("content_md5")), "content MD5")
        return WriteReceipt(key, len(data), _str(r.get("etag")), md5, _str(r.get("version_id")))

    @renewing_once
    async def put_stream(
        self,
        key: str,
        body: StreamBody,
        props: ObjectProps,
        *,
        md5: str | None = None,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> WriteReceipt:
        """One Put Blob whose body streams; ``md5`` is required (Content-MD5)."""
        where = self._where(key)
        self._writable(key)
        single_put_fits(where, body.size, self.capabilities)
        if md5 is None:
            raise StoreError(f"{where}: a streamed Put Blob needs the content MD5 first")
        conditions = ModifiedAccessConditions()
        if mode is PutMode.CREATE:
            conditions.if_none_match = "*"
        elif mode is PutMode.UPDATE:
            conditions.if_match = f'"{if_match}"'
        cs = _content_settings(props, md5)
        headers = BlobHTTPHeaders(
            blob_content_type=cs.content_type, blob_content_encoding=cs.content_encoding,
            blob_content_language=cs.content_language,
            blob_content_disposition=cs.content_disposition,
            blob_cache_control=cs.cache_control,
            blob_content_md5=bytes.fromhex(md5))
        bc = self.container.get_blob_client(key)
        with azure_errors(where):
            try:
                # The SDK's upload_blob reads a whole single-put body into memory
                # first; its generated operation sends what it is given as it
                # comes. No SDK retries: a streamed body cannot be sent twice (the
                # transfer re-reads the source instead).
                r = await bc._client.block_blob.upload(
                    content_length=body.size, body=aiter(body),
                    transactional_content_md5=bytearray(bytes.fromhex(md5)),
                    # As upload_blob sends them: the generated operation's own
                    # ``metadata`` parameter sends nothing.
                    headers={f"x-ms-meta-{k}": v for k, v in props.metadata.items()},
                    blob_http_headers=headers,
                    modified_access_conditions=conditions, cls=return_response_headers,
                    retry_total=0)
            except HttpResponseError as exc:
                process_storage_error(exc)
        sent = body.md5()
        # The service checked the bytes against ``md5``; those sent must be the
        # bytes read (where they were hashed), and its own hash must agree.
        if sent is not None:
            require_md5(key, md5, sent, "MD5 of the bytes read")
        require_md5(key, md5, b64_to_hex(r.get("content_md5")), "content MD5")
        return WriteReceipt(key, body.size, _str(r.get("etag")), md5, _str(r.get("version_id")))

    async def start_upload(
        self,
        key: str,
        props: ObjectProps,
        *,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> AzureUpload:
        self._writable(key)
        return AzureUpload(self, key, props, mode, if_match, secrets.token_hex(6))

    def _writable(self, key: str) -> None:
        """Refuse names the service would store under another name."""
        if "\\" in key:
            raise InvalidKey(
                f"{self._where(key)}: Azure Blob Storage stores '\\' in a blob name as '/', "
                f"so this object would land at {key.replace(chr(92), '/')!r}"
            )
        if len(key) > 1024:
            raise InvalidKey(f"{self._where(key)[:120]}…: blob names are at most 1,024 "
                             f"characters; this one has {len(key)}")
        self._addressable(key)

    def _addressable(self, key: str) -> None:
        """A name no blob URL can reach: the HTTP client resolves dot segments, so
        the signed path differs from the sent one and Azure answers 403. That is
        the key's fault, not the credentials' (which an AuthError would say, and
        count against the endpoint), so it is an InvalidKey naming it."""
        if any(part in (".", "..") for part in key.split("/")):
            raise InvalidKey(f"{self._where(key)}: a '.' or '..' path segment cannot be "
                             "addressed in an Azure blob URL")

    async def abort_upload(self, key: str, upload_id: str) -> None:
        # Uncommitted blocks are never visible and Azure discards them after a week.
        return None

    async def abort_uploads_of(self, key: str) -> int:
        # Nothing to abort: an Azure upload's id is made here before any request
        # (start_upload sends none), so it is always recorded before a block is
        # staged; and uncommitted blocks are discarded by the service anyway.
        return 0

    @renewing
    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._addressable(key)
        kw: dict[str, Any] = {}
        if if_match:
            kw = {"etag": f'"{if_match}"', "match_condition": MatchConditions.IfNotModified}
        try:
            with azure_errors(self._where(key)):
                await self.container.delete_blob(key, **kw)
        except NotFound:
            return
        except PreconditionFailed:
            # Azurite answers If-Match on a missing blob with 412; absent is not an error.
            try:
                await self.head(key)
            except NotFound:
                return
            raise

    @renewing
    async def check(self, *, write: bool = False) -> None:
        if self.auth.sas_token:
            check_sas(self.auth.sas_token, "rlcw" if write else "rl", self.name, "blob",
                      emulator=self.auth.emulator)
        try:
            with azure_errors(self._where()):
                async for _ in self.container.list_blobs(results_per_page=1).by_page():
                    break
        except NotFound:
            raise NotFound(f"{self.name}: container {self.container_name!r} does not exist "
                           "(create it first)") from None

    async def close(self) -> None:
        for old in self._retired:
            await old.close()
        await self.service.close()


@dataclass
class _SdkReader:
    meta: ObjectMeta
    downloader: Any
    where: str

    async def chunks(self) -> AsyncIterator[bytes]:
        with azure_errors(self.where):
            async for chunk in self.downloader.chunks():
                yield bytes(chunk)

    async def read_all(self) -> bytes:
        with azure_errors(self.where):
            return bytes(await self.downloader.readall())


@dataclass
class AzureUpload:
    store: AzureBlobStore
    key: str
    props: ObjectProps
    mode: PutMode
    if_match: str | None
    upload_id: str
    blocks: dict[int, str] = field(default_factory=dict)

    @property
    def renewal(self) -> Renewal:
        return self.store.renewal

    def _block_id(self, number: int) -> str:
        # All block ids of a blob must have the same length.
        return base64.b64encode(f"cw-{self.upload_id}-{number:06d}".encode()).decode()

    @renewing
    async def put_part(self, number: int, data: bytes, md5: str) -> None:
        block_id = self._block_id(number)
        bc = self.store.container.get_blob_client(self.key)
        with azure_errors(self.store._where(self.key)):
            await bc.stage_block(block_id, data, length=len(data),
                                 headers={"Content-MD5": hex_to_b64(md5)})
        self.blocks[number] = block_id

    @renewing
    async def complete(
        self, size: int, md5: str, part_md5s: list[str], late_metadata: Mapping[str, str]
    ) -> WriteReceipt:
        bc = self.store.container.get_blob_client(self.key)
        cond = _conditions(self.mode, self.if_match)
        kw: dict[str, Any] = {}
        if self.mode is PutMode.CREATE:
            # IfMissing takes no etag: the SDK would pass one on to aiohttp.
            kw = {"match_condition": MatchConditions.IfMissing}
        elif self.mode is PutMode.UPDATE:
            kw = {"etag": cond["etag"], "match_condition": cond["match_condition"]}
        with azure_errors(self.store._where(self.key)):
            r = await bc.commit_block_list(
                [BlobBlock(self.blocks[n]) for n in sorted(self.blocks)],
                metadata={**self.props.metadata, **late_metadata},
                content_settings=_content_settings(self.props, md5), **kw,
            )
        return WriteReceipt(self.key, size, _str(r.get("etag")), md5, _str(r.get("version_id")))

    async def abort(self) -> None:
        return None

