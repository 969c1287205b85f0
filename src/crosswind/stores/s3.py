"""Amazon S3 bucket.

Listings, reads and single-request writes go through obstore (Rust: cheap per
request, and listing XML is parsed outside the interpreter; a PUT costs about a
fifth of the CPU of an aiobotocore one, which decides the small-object rate on
a busy machine). obstore's writes are unsigned-payload (TLS protects the wire;
no second hash of the body) and are verified end to end by the ETag S3 returns,
which for single-part objects is the MD5 of the bytes it stored and must equal
the MD5 of the bytes crosswind read. Where ETags are not MD5s (SSE-KMS buckets,
``etag_is_md5 = false``) and for what obstore cannot express exactly (keys it
cannot parse, e.g. with ``..`` segments; metadata it would take for a header
or send unencoded), writes go through aiobotocore with ``Content-MD5`` of the
bytes read: S3 rejects a body that does not match it (``BadDigest``).
Objects that stream (``put_stream``: the body is sent while it is read from
the source) and the parts of multipart uploads go straight over aiohttp
(``s3_http.py``), unsigned-payload like obstore's, with ``Content-MD5`` where
the MD5 is known first. Multipart uploads are FULL_OBJECT CRC64NVME uploads:
every part carries its CRC64NVME, the completion the whole object's (combined
from the parts'), so every object has a whole-object checksum S3 verified,
also when the source's MD5 was not known before the upload. Creating,
completing and aborting uploads, HEAD and deletes go through aiobotocore; for
multipart objects the expected ETag is the MD5 of the part MD5s plus ``-N``.
Servers that check no header (moto) are caught by the ETag comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import obstore
from botocore import exceptions as bx
from obstore import exceptions as ox
from obstore.store import S3Store as ObS3Store

from crosswind.config import AwsConfig
from crosswind.errors import (
    AlreadyExists,
    AuthError,
    EndpointUnreachable,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    StoreError,
    TransientError,
)
from crosswind.model import ObjectMeta, ObjectProps, PutMode, WriteReceipt, strip_etag
from crosswind.secrets import Renewal, redact
from crosswind.secrets.aws import AwsCredentials, aws_credentials, aws_references
from crosswind.secrets.renewal import renewing, renewing_listing, renewing_once
from crosswind.stores.base import Capabilities, ObjectReader, StreamBody
from crosswind.stores.common import hex_to_b64, multipart_etag, require_md5, single_put_fits
from crosswind.stores.obstore_common import (
    FIELD_TO_ATTR,
    ObstoreReader,
    is_invalid_path,
    obstore_can_address,
    obstore_errors,
    props_from_attributes,
)
from crosswind.stores.obstore_common import translate as obstore_translate
from crosswind.stores.s3_http import S3Http, crc64nvme_b64, crc64nvme_combine
from crosswind.tls import botocore_verify, obstore_options

MiB = 1024 * 1024
_MD5_ETAG = re.compile(r"[0-9a-f]{32}\Z")

_HEADER_ARGS = {
    "content_type": "ContentType",
    "content_encoding": "ContentEncoding",
    "content_language": "ContentLanguage",
    "content_disposition": "ContentDisposition",
    "cache_control": "CacheControl",
}


def translate(exc: BaseException, where: str) -> StoreError:
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        msg = redact(str(err.get("Message", "") or code))[:300]
        if code in ("NoSuchKey", "NoSuchBucket", "NoSuchUpload", "404", "NotFound"):
            return NotFound(f"{where}: not found ({code})")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "TokenRefreshRequired", "403", "Forbidden") or status == 401:
            return AuthError(f"{where}: credentials rejected ({code}): {msg}")
        if code in ("AccessDenied", "AllAccessDisabled"):
            return AuthError(f"{where}: permission denied ({code}): {msg}")
        if code in ("PreconditionFailed", "412") or status == 412:
            return PreconditionFailed(f"{where}: condition not met ({code})")
        if code in ("ConditionalRequestConflict",) or status == 409:
            return PreconditionFailed(f"{where}: concurrent write ({code})")
        if code in ("BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"):
            return IntegrityError(f"{where}: S3 rejected the content checksum ({code})")
        if code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout") or (
            status and status >= 500
        ):
            return TransientError(f"{where}: service error ({code}): {msg}")
        return StoreError(f"{where}: {code or status}: {msg}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return EndpointUnreachable(f"{where}: cannot reach the endpoint: {redact(str(exc))}")
    if isinstance(exc, bx.NoCredentialsError):
        return AuthError(f"{where}: no AWS credentials found (config or default chain)")
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectionClosedError, bx.HTTPClientError)):
        return TransientError(f"{where}: {redact(str(exc))[:300]}")
    return StoreError(f"{where}: {type(exc).__name__}: {redact(str(exc))[:300]}")


@contextlib.contextmanager
def s3_errors(where: str) -> Iterator[None]:
    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise translate(exc, where) from None


def _header_args(props: ObjectProps) -> dict[str, Any]:
    out: dict[str, Any] = {arg: getattr(props, f) for f, arg in _HEADER_ARGS.items()
                           if getattr(props, f)}
    if props.metadata:
        out["Metadata"] = dict(props.metadata)
    return out


_HTTP_HEADERS = {
    "content_type": "Content-Type",
    "content_encoding": "Content-Encoding",
    "content_language": "Content-Language",
    "content_disposition": "Content-Disposition",
    "cache_control": "Cache-Control",
}


def _http_headers(props: ObjectProps, where: str) -> dict[str, str]:
    """``props`` as PutObject headers. S3 takes header values in ASCII only
    (botocore refuses anything else too), so other text is refused here."""
    out = {_HTTP_HEADERS[f]: v for f, v in props.headers().items()}
    for name, value in props.metadata.items():
        out[f"x-amz-meta-{name}"] = value
    for name, value in out.items():
        if not (name.isascii() and value.isascii()) or any(
                c in "\r\n" for c in name + value):
            raise StoreError(f"{where}: {name} is not ASCII text on one line; S3 cannot "
                             "hold it as a header")
    return out


# obstore treats these names (in any case) as headers, everything else as metadata.
_OBSTORE_HEADER_NAMES = frozenset(n.lower() for n in (*FIELD_TO_ATTR.values(), "Storage-Class"))


def _obstore_attributes(props: ObjectProps) -> dict[str, str] | None:
    """``props`` as obstore attributes, or None when obstore would not send them
    as aiobotocore does: a metadata name it would take for a header, or
    non-ASCII text (botocore refuses it; obstore would send raw UTF-8)."""
    attrs = {FIELD_TO_ATTR[f]: v for f, v in props.headers().items()}
    for name, value in props.metadata.items():
        if name.lower() in _OBSTORE_HEADER_NAMES:
            return None
        attrs[name] = value
    if not all(t.isascii() for item in attrs.items() for t in item):
        return None
    return attrs


class _KeyOutsideObstore(Exception):
    """obstore cannot list or address a key; the SDK takes over."""


@dataclass
class _SdkReader:
    meta: ObjectMeta
    body: Any
    where: str
    chunk_size: int = 1024 * 1024

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            with s3_errors(self.where):
                async for chunk in self.body.iter_chunks(self.chunk_size):
                    yield chunk
        finally:
            self.body.close()

    async def read_all(self) -> bytes:
        try:
            with s3_errors(self.where):
                return bytes(await self.body.read())
        finally:
            self.body.close()


class _NotForObstore(Exception):
    """obstore cannot express this key; the write goes through aiobotocore."""


def _head_props(r: Mapping[str, Any]) -> ObjectProps:
    return ObjectProps(
        content_type=r.get("ContentType") or None,
        content_encoding=r.get("ContentEncoding") or None,
        content_language=r.get("ContentLanguage") or None,
        content_disposition=r.get("ContentDisposition") or None,
        cache_control=r.get("CacheControl") or None,
        metadata=dict(r.get("Metadata") or {}),
    )


class S3ObjectStore:
    """Create with ``await S3ObjectStore.open(cfg)``; ``close()`` when done."""

    def __init__(self, cfg: AwsConfig, creds: dict[str, str], pool: int, fast: ObS3Store,
                 etag_is_md5: bool = True, signing: Any = None) -> None:
        self.cfg = cfg
        self.bucket = cfg.bucket
        self.name = f"s3://{cfg.bucket}"
        self._creds = creds
        self._pool = pool
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self.fast = fast
        self.etag_is_md5 = etag_is_md5
        self.capabilities = Capabilities(
            listing_has_props=False, late_metadata=False, metadata_flavor="s3",
            # PutObject takes up to 5 GiB; parts 5 MiB to 5 GiB, 10,000 of them.
            min_part_size=5 * MiB, max_parts=10_000, max_single_put=5 * 1024 * MiB,
            max_metadata_bytes=2048, etag_tracks_metadata=False,
            # The ETag (MD5 of what S3 stored) verifies a streamed write after the
            # fact; without MD5 ETags only a Content-MD5 sent first does.
            streamed_put="after" if etag_is_md5 else "md5_first",
        )
        if signing is None:
            signing = (creds.get("aws_access_key_id", ""), creds.get("aws_secret_access_key", ""),
                       creds.get("aws_session_token"))
        self.http = S3Http(bucket=cfg.bucket, region=cfg.region, endpoint_url=cfg.endpoint_url,
                           credentials=signing, pool=pool)
        self._aws: AwsCredentials | None = None
        self.renewal = Renewal(self.name, "AWS default chain", ())

    @property
    def pool_size(self) -> int:
        """The client's connection pool (max_pool_connections): monitoring's
        denominator for connection-pool use."""
        return self._pool

    @classmethod
    async def open(cls, cfg: AwsConfig, pool: int = 64) -> S3ObjectStore:
        aws = await asyncio.to_thread(aws_credentials, cfg)
        creds = aws.as_boto() if aws else {}
        signing: Any = None
        if not creds:
            import boto3  # type: ignore[import-untyped]

            # The default chain (botocore refreshes what expires), as for the SDK.
            signing = boto3.Session(region_name=cfg.region).get_credentials()
        store = cls(cfg, creds, pool, cls._obstore(cfg, creds), cfg.etag_is_md5, signing)
        store._aws = aws
        store.renewal = Renewal(store.name, aws.principal if aws else "AWS default chain",
                                aws_references(cfg), store._renew,
                                lambda: store._aws.expires_at if store._aws else None)
        return store

    async def _renew(self) -> bool:
        """The credentials were refused (or expire): resolve them again (an assumed
        role is assumed again); new clients if they changed."""
        new = await asyncio.to_thread(aws_credentials, self.cfg, refresh=True)
        if new is None or new == self._aws:
            return False
        self._aws = new
        self._creds = new.as_boto()
        self.fast = self._obstore(self.cfg, self._creds)
        self.http.set_credentials((new.access_key_id, new.secret_access_key,
                                   new.session_token))
        async with self._client_lock:
            # The old client stays open (calls in flight) until the store closes.
            self._client = None
        return True

    async def client(self) -> Any:
        """The aiobotocore client, created on first use: a run that only lists,
        reads and writes single objects (obstore) never pays for importing and
        building it (about 0.2 s of every start-up)."""
        async with self._client_lock:
            if self._client is None:
                from aiobotocore.session import get_session
                from botocore.config import Config as BotoConfig

                cfg = self.cfg
                boto_cfg = BotoConfig(
                    region_name=cfg.region,
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10, read_timeout=120, max_pool_connections=self._pool,
                    s3={"addressing_style": "path" if cfg.endpoint_url else "auto"},
                )
                self._client = await self._stack.enter_async_context(
                    get_session().create_client("s3", endpoint_url=cfg.endpoint_url,
                                                config=boto_cfg, verify=botocore_verify(),
                                                **self._creds))
            return self._client

    @staticmethod
    def _obstore(cfg: AwsConfig, creds: dict[str, str]) -> ObS3Store:
        kw: dict[str, Any] = {"region": cfg.region}
        if creds:
            kw["access_key_id"] = creds["aws_access_key_id"]
            kw["secret_access_key"] = creds["aws_secret_access_key"]
            if "aws_session_token" in creds:
                kw["session_token"] = creds["aws_session_token"]
        else:
            import boto3
            from obstore.auth.boto3 import Boto3CredentialProvider

            session = boto3.Session(region_name=cfg.region)
            if session.get_credentials() is None:
                raise AuthError(
                    f"s3://{cfg.bucket}: no AWS credentials: none in the config "
                    "([aws].access_key_id/secret_access_key) and none in the default chain "
                    "(environment, profile, SSO, instance role)"
                )
            kw["credential_provider"] = Boto3CredentialProvider(session)
        if cfg.endpoint_url:
            kw["endpoint"] = cfg.endpoint_url
            kw["virtual_hosted_style_request"] = False
        options: Any = {"allow_http": bool(cfg.endpoint_url and
                                           cfg.endpoint_url.startswith("http://")),
                        "connect_timeout": timedelta(seconds=10),
                        "timeout": timedelta(seconds=300), **obstore_options()}
        return ObS3Store(
            cfg.bucket,
            client_options=options,
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=60),
                          "backoff": {"init_backoff": timedelta(milliseconds=100),
                                      "max_backoff": timedelta(seconds=8), "base": 2}},
            unsigned_payload=True,
            **kw,
        )

    def _where(self, key: str | None = None) -> str:
        return f"{self.name}/{key}" if key else self.name

    def _md5_of_etag(self, etag: str | None) -> str | None:
        if self.etag_is_md5 and etag and _MD5_ETAG.match(etag):
            return etag
        return None

    # -- reading -------------------------------------------------------------
    @renewing_listing(lambda m: m.key)
    async def list(self, prefix: str = "") -> AsyncIterator[ObjectMeta]:
        last: str | None = None
        try:
            async for m in self._fast_list(prefix):
                last = m.key
                yield m
            return
        except _KeyOutsideObstore:
            pass
        # A key obstore cannot hold ("a//b", "dir/") ended its listing: go on
        # from the last key it yielded with the SDK, which lists every key.
        async for m in self._sdk_list(prefix, start_after=last):
            yield m

    async def _fast_list(self, prefix: str) -> AsyncIterator[ObjectMeta]:
        # obstore's prefix is a whole path ("k/a" lists only "k/a/..."); the
        # contract's is a string prefix, so list from its last "/" and filter.
        parent = prefix.rpartition("/")[0]
        if not obstore_can_address(prefix) and prefix:
            raise _KeyOutsideObstore(prefix)
        try:
            with obstore_errors(self._where()):
                stream = obstore.list(self.fast, prefix=parent or None, chunk_size=1000)
                async for chunk in stream:
                    for m in chunk:
                        if not m["path"].startswith(prefix):
                            if m["path"] > prefix:
                                return  # sorted: nothing further can match
                            continue
                        etag = strip_etag(m.get("e_tag"))
                        yield ObjectMeta(m["path"], int(m["size"]), etag,
                                         m.get("last_modified"), self._md5_of_etag(etag))
        except StoreError as exc:
            if is_invalid_path(exc):
                raise _KeyOutsideObstore(str(exc)) from None
            raise

    async def _sdk_list(self, prefix: str, start_after: str | None) -> AsyncIterator[ObjectMeta]:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after is not None:
            kw["StartAfter"] = start_after
        with s3_errors(self._where()):
            client = await self.client()
            async for page in client.get_paginator("list_objects_v2").paginate(**kw):
                for o in page.get("Contents", []):
                    etag = strip_etag(o.get("ETag"))
                    yield ObjectMeta(o["Key"], int(o["Size"]), etag, o.get("LastModified"),
                                     self._md5_of_etag(etag))

    @renewing
    async def head(self, key: str) -> ObjectMeta:
        with s3_errors(self._where(key)):
            client = await self.client()
            r = await client.head_object(Bucket=self.bucket, Key=key)
        etag = strip_etag(r.get("ETag"))
        md5 = self._md5_of_etag(etag) or (r.get("Metadata") or {}).get("crosswind-md5")
        return ObjectMeta(key, int(r["ContentLength"]), etag, r.get("LastModified"), md5,
                          _head_props(r))

    @renewing
    async def get(
        self, key: str, *, if_match: str | None = None, byte_range: tuple[int, int] | None = None
    ) -> ObjectReader:
        opts: dict[str, Any] = {}
        if if_match:
            opts["if_match"] = f'"{if_match}"'
        if byte_range:
            opts["range"] = byte_range
        if not obstore_can_address(key):
            return await self._sdk_get(key, if_match, byte_range)
        with obstore_errors(self._where(key)):
            result = await obstore.get_async(self.fast, key, options=opts or None)  # type: ignore[arg-type]
        return ObstoreReader(result, key, self._where(key),
                             props=props_from_attributes(result.attributes))

    async def _sdk_get(
        self, key: str, if_match: str | None, byte_range: tuple[int, int] | None
    ) -> ObjectReader:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match:
            kw["IfMatch"] = f'"{if_match}"'
        if byte_range:
            kw["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        with s3_errors(self._where(key)):
            client = await self.client()
            r = await client.get_object(**kw)
        etag = strip_etag(r.get("ETag"))
        size = int(r["ContentRange"].rsplit("/", 1)[1]) if byte_range else int(
            r["ContentLength"])
        meta = ObjectMeta(key, size, etag, r.get("LastModified"), self._md5_of_etag(etag),
                          _head_props(r))
        return _SdkReader(meta, r["Body"], self._where(key))

    # -- writing -------------------------------------------------------------
    @staticmethod
    def _conditions(mode: PutMode, if_match: str | None) -> dict[str, str]:
        if mode is PutMode.CREATE:
            return {"IfNoneMatch": "*"}
        if mode is PutMode.UPDATE:
            return {"IfMatch": f'"{if_match}"'}
        return {}

    async def _discard(self, key: str, etag: str | None, version: str | None) -> str:
        """Remove the object a write just made that failed verification (no object
        beats a corrupt one), and nothing else: by its version id where the
        bucket keeps versions (the version before it becomes current again), else
        only while it still has the ETag the write returned (a concurrent
        writer's newer object stays). Returns what was done, for the message."""
        if version is not None:
            cond: dict[str, str] = {"VersionId": version}
        elif etag is not None:
            cond = {"IfMatch": f'"{etag}"'}
        else:
            # Nothing says the object there is the one this write made. It is not
            # recorded as verified, so the next run copies it again.
            return "the destination named no version or ETag, so the object was left"
        try:
            with s3_errors(self._where(key)):
                client = await self.client()
                await client.delete_object(Bucket=self.bucket, Key=key, **cond)
        except PreconditionFailed:
            return "another write replaced it meanwhile and was left alone"
        except NotFound:
            return "it is already gone"
        except StoreError as exc:
            return f"removing it failed ({exc}); it is not recorded and will be copied again"
        return "the corrupt object was removed"

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
        single_put_fits(self._where(key), len(data), self.capabilities)
        attrs = _obstore_attributes(props)
        # Without MD5 ETags only Content-MD5 (aiobotocore) verifies a write.
        if attrs is not None and obstore_can_address(key) and self.etag_is_md5:
            try:
                etag, version = await self._fast_put(key, data, attrs, mode, if_match)
            except _NotForObstore:
                pass
            else:
                # Sent without Content-MD5: the ETag is the only check, so a
                # missing or non-MD5 one fails the write instead of passing it.
                return await self._verified(key, len(data), md5, etag, version, required=True)
        etag, version = await self._boto_put(key, data, props, md5, mode, if_match)
        return await self._verified(key, len(data), md5, etag, version)

    async def _fast_put(
        self, key: str, data: bytes, attrs: dict[str, str], mode: PutMode, if_match: str | None
    ) -> tuple[str | None, str | None]:
        where = self._where(key)
        ob_mode: Any = {PutMode.OVERWRITE: "overwrite", PutMode.CREATE: "create"}.get(mode)
        if mode is PutMode.UPDATE:
            ob_mode = {"e_tag": f'"{if_match}"'}
        try:
            r = await obstore.put_async(self.fast, key, data, attributes=attrs, mode=ob_mode,
                                        use_multipart=False)
        except ValueError as exc:  # raised by obstore's path parser, before any request
            raise _NotForObstore(str(exc)) from None
        except ox.BaseError as exc:
            text = str(exc)
            if any(c in text for c in ("BadDigest", "InvalidDigest", "ChecksumMismatch")):
                raise IntegrityError(f"{where}: S3 rejected the content checksum") from None
            raise obstore_translate(exc, where) from None
        return strip_etag(r.get("e_tag")), r.get("version")

    async def _boto_put(
        self, key: str, data: bytes, props: ObjectProps, md5: str, mode: PutMode,
        if_match: str | None,
    ) -> tuple[str | None, str | None]:
        try:
            with s3_errors(self._where(key)):
                client = await self.client()
                r = await client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentMD5=hex_to_b64(md5),
                    **_header_args(props), **self._conditions(mode, if_match),
                )
        except PreconditionFailed:
            if mode is PutMode.CREATE:
                raise AlreadyExists(f"{self._where(key)}: already exists") from None
            raise
        except NotFound as exc:
            # If-Match on a missing key is answered 404 NoSuchKey: the condition did not hold.
            if mode is PutMode.UPDATE and "NoSuchKey" in str(exc):
                raise PreconditionFailed(f"{self._where(key)}: etag does not match") from None
            raise
        return strip_etag(r.get("ETag")), r.get("VersionId")

    async def _verified(
        self, key: str, size: int, md5: str, etag: str | None, version: str | None,
        *, required: bool = False,
    ) -> WriteReceipt:
        if required or (self.etag_is_md5 and etag and "-" not in etag):
            try:
                require_md5(key, md5, etag, "ETag")
            except IntegrityError as exc:
                done = await self._discard(key, etag, version)
                raise IntegrityError(f"{exc}; {done}") from None
        return WriteReceipt(key, size, etag, md5, version)

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
        """One PutObject whose body is sent as it is read (see ``s3_http.py``)."""
        where = self._where(key)
        single_put_fits(where, body.size, self.capabilities)
        if md5 is None and (not self.etag_is_md5 or body.md5() is None):
            raise StoreError(f"{where}: a streamed write needs the content MD5 first "
                             "(without MD5 ETags, or for a body that is not hashed)")
        headers = _http_headers(props, where)
        if md5 is not None:
            headers["Content-MD5"] = hex_to_b64(md5)
        if mode is PutMode.CREATE:
            headers["If-None-Match"] = "*"
        elif mode is PutMode.UPDATE:
            headers["If-Match"] = f'"{if_match}"'
        try:
            with s3_errors(where):
                r = await self.http.put_object(key, aiter(body), body.size, headers, where)
        except PreconditionFailed:
            if mode is PutMode.CREATE:
                raise AlreadyExists(f"{where}: already exists") from None
            raise
        except NotFound as exc:
            if mode is PutMode.UPDATE and "NoSuchKey" in str(exc):
                raise PreconditionFailed(f"{where}: etag does not match") from None
            raise
        etag, version = strip_etag(r.get("ETag")), r.get("x-amz-version-id")
        sent = body.md5()
        if sent is None:
            assert md5 is not None
            # Not hashed here: the ETag (the MD5 of what S3 stored) must be the
            # source's own MD5, which proves the same as hashing the bytes read.
            return await self._verified(key, body.size, md5, etag, version,
                                        required=self.etag_is_md5)
        if md5 is not None and md5 != sent:
            # The bytes read are not the source's own (S3 stored them as sent
            # where it does not check Content-MD5, as moto does not).
            done = await self._discard(key, etag, version)
            raise IntegrityError(f"{key}: bytes read from the source do not match its own "
                                 f"MD5 ({sent} vs {md5}); {done}")
        return await self._verified(key, body.size, sent, etag, version,
                                    required=self.etag_is_md5)

    @renewing
    async def start_upload(
        self,
        key: str,
        props: ObjectProps,
        *,
        mode: PutMode = PutMode.OVERWRITE,
        if_match: str | None = None,
    ) -> S3Upload:
        with s3_errors(self._where(key)):
            client = await self.client()
            r = await client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC64NVME",
                ChecksumType="FULL_OBJECT", **_header_args(props)
            )
        return S3Upload(self, key, mode, if_match, r["UploadId"])

    @renewing
    async def abort_upload(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(NotFound), s3_errors(self._where(key)):
            client = await self.client()
            await client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                     UploadId=upload_id)

    @renewing
    async def abort_uploads_of(self, key: str) -> int:
        # By exact key: ListMultipartUploads returns no metadata or tags that
        # could mark an upload as crosswind's (and moto reports a fixed
        # Initiated time, so a time filter could not be tested on the rig).
        # The prefix also lists longer keys.
        aborted = 0
        with s3_errors(self._where(key)):
            client = await self.client()
            pages = client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=key)
            async for page in pages:
                for u in page.get("Uploads", []):
                    if u["Key"] == key:
                        await self.abort_upload(key, u["UploadId"])
                        aborted += 1
        return aborted

    @renewing
    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        kw = {"IfMatch": f'"{if_match}"'} if if_match else {}
        with contextlib.suppress(NotFound), s3_errors(self._where(key)):
            client = await self.client()
            await client.delete_object(Bucket=self.bucket, Key=key, **kw)

    @renewing
    async def check(self, *, write: bool = False) -> None:
        try:
            # One listed key proves the bucket exists and the credentials work,
            # without building the aiobotocore client.
            with obstore_errors(self._where()):
                async for _ in obstore.list(self.fast, chunk_size=1):
                    break
        except StoreError as exc:
            if is_invalid_path(exc):
                return  # a key obstore cannot hold was listed: the bucket answers
            if not isinstance(exc, NotFound):
                raise
            raise NotFound(f"{self.name}: bucket {self.bucket!r} does not exist "
                           "(create it first)") from None

    async def close(self) -> None:
        await self.http.close()
        await self._stack.aclose()


@dataclass
class S3Upload:
    store: S3ObjectStore
    key: str
    mode: PutMode
    if_match: str | None
    upload_id: str
    etags: dict[int, str] = field(default_factory=dict)
    #: part number -> (CRC64NVME, length) of what was sent
    crcs: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def renewal(self) -> Renewal:
        return self.store.renewal

    @renewing
    async def put_part(self, number: int, data: bytes, md5: str) -> None:
        # Imported here: a run without multipart uploads never loads it (30 ms).
        from awscrt import checksums  # type: ignore[import-untyped]

        s = self.store
        crc = checksums.crc64nvme(data)
        where = s._where(self.key)
        with s3_errors(where):
            r = await s.http.upload_part(self.key, self.upload_id, number, data,
                                         hex_to_b64(md5), crc, where)
        etag = strip_etag(r.get("ETag")) or ""
        if s.etag_is_md5:
            require_md5(self.key, md5, etag, f"ETag of part {number}")
        self.etags[number] = etag
        self.crcs[number] = (crc, len(data))

    def whole_crc64(self) -> int:
        """The whole object's CRC64NVME, combined from its parts' in order."""
        whole = 0
        for n in sorted(self.crcs):
            crc, length = self.crcs[n]
            whole = crc64nvme_combine(whole, crc, length)
        return whole

    @renewing
    async def complete(
        self, size: int, md5: str, part_md5s: list[str], late_metadata: Mapping[str, str]
    ) -> WriteReceipt:
        s = self.store
        parts = [{"ETag": f'"{self.etags[n]}"', "PartNumber": n,
                  "ChecksumCRC64NVME": crc64nvme_b64(self.crcs[n][0])}
                 for n in sorted(self.etags)]
        whole = crc64nvme_b64(self.whole_crc64())
        try:
            with s3_errors(s._where(self.key)):
                client = await s.client()
                r = await client.complete_multipart_upload(
                    Bucket=s.bucket, Key=self.key, UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts}, ChecksumCRC64NVME=whole,
                    ChecksumType="FULL_OBJECT",
                    **S3ObjectStore._conditions(self.mode, self.if_match),
                )
        except PreconditionFailed:
            await self.abort()
            if self.mode is PutMode.CREATE:
                raise AlreadyExists(f"{s._where(self.key)}: already exists") from None
            raise
        etag = strip_etag(r.get("ETag"))
        reported = r.get("ChecksumCRC64NVME")
        if reported is not None and reported != whole:
            # S3 checks the whole-object CRC against the parts' itself; an answer
            # that names another one means the object is not what was sent.
            done = await s._discard(self.key, etag, r.get("VersionId"))
            raise IntegrityError(f"{self.key}: the destination reports CRC64NVME {reported}, "
                                 f"the bytes sent have {whole}; {done}")
        if s.etag_is_md5 and etag and "-" in etag:
            try:
                require_md5(self.key, multipart_etag(part_md5s), etag, "multipart ETag")
            except IntegrityError as exc:
                done = await s._discard(self.key, etag, r.get("VersionId"))
                raise IntegrityError(f"{exc}; {done}") from None
        return WriteReceipt(self.key, size, etag, md5, r.get("VersionId"))

    async def abort(self) -> None:
        await self.store.abort_upload(self.key, self.upload_id)
