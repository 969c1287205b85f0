"""The two S3 requests that carry object bytes, sent straight over aiohttp.

PutObject with a body that streams as it is read, and UploadPart. Neither SDK
does what these need: obstore's single PUT and aiobotocore's both hold the
whole body in memory, and botocore hashes every body once more (SHA-256 for
the signature over plain http, plus its default CRC32), which costs more CPU
than the copy itself. Here the payload is ``UNSIGNED-PAYLOAD`` (TLS protects
the wire on real endpoints; the signature still covers the headers), the
integrity checks are the ones crosswind chooses:

* a streamed PutObject carries ``Content-MD5`` when the source's MD5 is known
  before the bytes are sent (S3 then rejects a body that does not match before
  the object becomes visible); in every case the ETag it returns (the MD5 of
  what it stored) is compared with the MD5 of the bytes read. (A CRC64NVME
  trailer, ``aws-chunked``, would let S3 check every streamed body before it
  is visible, but moto stores such bodies still encoded, so it could not be
  tested on the rig; it is not sent.)
* an UploadPart carries ``Content-MD5`` and ``x-amz-checksum-crc64nvme`` of the
  part (a FULL_OBJECT CRC64NVME upload), and its ETag is compared too.

Requests are signed with botocore's SigV4 signer; credentials are the same as
the store's (static or the default chain, refreshed by botocore). Errors are
translated by ``s3.translate`` from the XML error document, as for the SDK.
A streamed body cannot be replayed: such requests are sent once and the
transfer re-reads the source to retry; a part (bytes in memory) is retried
here on transient errors, as the SDKs would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import random
import re
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from botocore import exceptions as bx
from yarl import URL

from crosswind.errors import EndpointUnreachable, StoreError, TransientError
from crosswind.tls import ca_bundle, ssl_context

_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


def crc64nvme_b64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(8, "big")).decode()


# CRC64NVME (reflected, init and xorout all ones) as used by S3's checksums.
_CRC64_POLY = 0x9A6C9329AC4BC9B5


def _gf2_times(mat: list[int], vec: int) -> int:
    out = 0
    i = 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(64)]


@functools.lru_cache(maxsize=64)
def _zeros_operator(len2: int) -> tuple[int, ...]:
    """The GF(2) matrix that appends ``len2`` zero bytes to a CRC's register
    (cached: the parts of an upload have one or two lengths)."""
    op = [1 << n for n in range(64)]  # identity
    square = [_CRC64_POLY] + [1 << n for n in range(63)]  # one zero bit
    for _ in range(3):
        square = _gf2_square(square)  # one zero byte
    while len2:
        if len2 & 1:
            op = [_gf2_times(square, op[n]) for n in range(64)]
        len2 >>= 1
        if len2:
            square = _gf2_square(square)
    return tuple(op)


def crc64nvme_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC64NVME of A+B from crc(A), crc(B) and len(B) (zlib's crc32_combine,
    for 64 bits): part checksums arrive in any order, the whole object's is
    needed at completion, and the bytes are gone by then."""
    if len2 <= 0:
        return crc1
    return _gf2_times(list(_zeros_operator(len2)), crc1) ^ crc2


@functools.cache
def _signer_class() -> Any:
    """botocore's SigV4 signer for S3 with an unsigned payload; imported on the
    first signed request (a run that writes only small objects never needs it)."""
    from botocore.auth import S3SigV4Auth

    class UnsignedPayload(S3SigV4Auth):  # type: ignore[misc]
        def _should_sha256_sign_payload(self, request: Any) -> bool:
            return False

    return UnsignedPayload


class S3Http:
    """Signed PutObject/UploadPart requests for one bucket."""

    def __init__(self, *, bucket: str, region: str, endpoint_url: str | None,
                 credentials: Any, pool: int) -> None:
        """``credentials``: botocore credentials (refreshed by botocore) or a
        static (access key, secret key, session token) tuple."""
        self.bucket = bucket
        self.region = region
        if endpoint_url:
            self._base = f"{endpoint_url.rstrip('/')}/{quote(bucket)}"
        else:
            self._base = f"https://{bucket}.s3.{region}.amazonaws.com"
        self._credentials = credentials
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop.
        if self._session is None:
            ctx: ssl.SSLContext | bool = False
            if self._base.startswith("https://"):
                # [tls] ca_bundle, else botocore's own AWS_CA_BUNDLE, else the system's.
                ctx = ssl_context() if ca_bundle() else ssl.create_default_context(
                    cafile=os.environ.get("AWS_CA_BUNDLE") or None)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool, ssl=ctx),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
                auto_decompress=False, skip_auto_headers=("Content-Type",))
        return self._session

    def set_credentials(self, credentials: Any) -> None:
        """New credentials (refreshed after a refusal) for the next requests."""
        self._credentials = credentials

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, key: str, query: str = "") -> str:
        # Every byte of the key as S3 expects it (no dot-segment or slash
        # normalisation: the URL is passed on encoded, exactly as signed).
        return f"{self._base}/{quote(key, safe='/~')}{query}"

    def _signed(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        creds = self._credentials
        if isinstance(creds, tuple):
            creds = self._credentials = Credentials(*creds)
        frozen = creds.get_frozen_credentials() if hasattr(creds, "get_frozen_credentials") \
            else creds
        req = AWSRequest(method=method, url=url, headers=headers)
        _signer_class()(frozen, "s3", self.region).add_auth(req)
        return dict(req.headers.items())

    async def _send(self, method: str, url: str, headers: dict[str, str], data: Any,
                    where: str) -> Mapping[str, str]:
        signed = self._signed(method, url, headers)
        with _http_errors(where):
            async with self._client().request(method, URL(url, encoded=True), data=data,
                                              headers=signed) as r:
                body = await r.read()
                if r.status >= 300:
                    raise _client_error(r.status, body, method)
                return r.headers

    async def put_object(self, key: str, body: AsyncIterator[bytes], size: int,
                         headers: Mapping[str, str], where: str) -> Mapping[str, str]:
        """PutObject with a streamed body of ``size`` bytes; sent once."""
        h = {**headers, "Content-Length": str(size)}
        return await self._send("PUT", self.url(key), h, body, where)

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5_b64: str, crc64: int, where: str) -> Mapping[str, str]:
        """UploadPart of bytes in memory, retried on transient errors."""
        url = self.url(key, f"?partNumber={number}&uploadId={quote(upload_id, safe='')}")
        h = {"Content-Length": str(len(data)), "Content-MD5": md5_b64,
             "x-amz-checksum-crc64nvme": crc64nvme_b64(crc64)}
        for attempt in range(3):
            try:
                return await self._send("PUT", url, h, data, where)
            except TransientError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1 * 2 ** attempt + random.random() * 0.1)
        raise AssertionError("unreachable")


def _client_error(status: int, body: bytes, op: str) -> bx.ClientError:
    """The answer as botocore would have raised it, for ``s3.translate``."""
    code = _CODE.search(body)
    msg = _MESSAGE.search(body)
    err = {"Code": code.group(1).decode() if code else str(status),
           "Message": msg.group(1).decode(errors="replace") if msg else ""}
    return bx.ClientError({"Error": err, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


@contextlib.contextmanager
def _http_errors(where: str) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        # Say why: botocore's EndpointConnectionError would only name the URL.
        raise EndpointUnreachable(f"{where}: cannot reach the endpoint: its TLS certificate "
                                  f"is not trusted ({exc.certificate_error})"[:300]) from None
    except aiohttp.ClientConnectorError as exc:
        raise bx.EndpointConnectionError(endpoint_url=where, error=exc) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The connection broke or timed out mid-request: worth another try.
        raise TransientError(f"{where}: {type(exc).__name__}: {exc}"[:300]) from None
    except StoreError:
        raise
