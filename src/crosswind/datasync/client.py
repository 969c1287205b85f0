"""The aiobotocore clients the DataSync engine uses (DataSync, and S3 for the task
report) and the translation of their errors into crosswind's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from crosswind.config import Config
from crosswind.errors import AuthError, CrosswindError, EndpointUnreachable, StoreError
from crosswind.secrets import configure, redact
from crosswind.secrets.aws import aws_credentials, botocore_config, verify_arg


class DataSyncError(StoreError):
    """A DataSync call failed, or an execution ended in ERROR (exit 3)."""


def _translate(exc: BaseException, where: str) -> CrosswindError:
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        msg = redact(str(err.get("Message", "") or code))[:300]
        if code in ("AccessDeniedException", "UnrecognizedClientException",
                    "InvalidSignatureException", "ExpiredTokenException", "AccessDenied"):
            return AuthError(f"{where}: refused ({code}): {msg}")
        return DataSyncError(f"{where}: {code}: {msg}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return EndpointUnreachable(f"{where}: cannot reach the endpoint: {redact(str(exc))}")
    if isinstance(exc, bx.NoCredentialsError):
        return AuthError(f"{where}: no AWS credentials found (config or default chain)")
    # A parameter the SDK refuses before sending: botocore's message quotes the
    # parameters, so only its first line, redacted, ever leaves here.
    first = redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__
    return DataSyncError(f"{where}: {type(exc).__name__}: {first[:300]}")


@contextlib.contextmanager
def calling(where: str) -> Iterator[None]:
    """Errors of one call as crosswind errors naming the call; never the request."""
    import botocore.exceptions as bx

    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise _translate(exc, where) from None


@contextlib.asynccontextmanager
async def opened_clients(cfg: Config) -> AsyncIterator[tuple[Any, Any]]:
    """(DataSync client, S3 client): signed as every AWS store of ``cfg`` signs
    (``[aws]`` keys, an assumed role or the default chain)."""
    from aiobotocore.session import get_session

    assert cfg.datasync is not None
    configure(cfg)
    aws = cfg.aws
    creds = await asyncio.to_thread(aws_credentials, aws)
    kw: dict[str, Any] = creds.as_boto() if creds else {}
    region = cfg.datasync.region or aws.region
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        ds = await stack.enter_async_context(session.create_client(
            "datasync", region_name=region,
            endpoint_url=cfg.datasync.endpoint_url or aws.endpoint_url,
            config=botocore_config(region), verify=verify_arg(), **kw))
        s3 = await stack.enter_async_context(session.create_client(
            "s3", region_name=aws.region, endpoint_url=aws.endpoint_url,
            config=botocore_config(aws.region, s3={
                "addressing_style": "path" if aws.endpoint_url else "auto"}),
            verify=verify_arg(), **kw))
        yield ds, s3
