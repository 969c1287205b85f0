"""``[tls] ca_bundle`` as each client library takes it.

Certificates and host names are always verified; nothing here can turn that
off. Without a bundle every client uses the system's CAs (botocore also
honours ``AWS_CA_BUNDLE``). TLS 1.2 is the oldest version any of them
negotiates: Python's ``ssl`` contexts (Azure SDK, aiohttp, pymongo, Key Vault)
and urllib3 (botocore) default to a 1.2 minimum, rustls (obstore) has nothing
older; ``ssl_context`` sets it explicitly for the contexts crosswind makes.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from crosswind.errors import ConfigError
from crosswind.secrets import settings as _settings


def ca_bundle() -> Path | None:
    return _settings.current().ca_bundle


def ssl_context() -> ssl.SSLContext:
    """A verifying client context: the configured CAs (or the system's), TLS ≥ 1.2."""
    ca = ca_bundle()
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def azure_kwargs() -> dict[str, Any]:
    """For every Azure SDK client (azure-core's ``connection_verify``)."""
    ca = ca_bundle()
    return {"connection_verify": str(ca)} if ca else {}


def obstore_options() -> dict[str, Any]:
    """obstore's client options: the bundle is added to the trusted roots."""
    ca = ca_bundle()
    if not ca:
        return {}
    try:
        return {"root_certificate": ca.read_bytes()}
    except OSError as exc:
        raise ConfigError(f"[tls] ca_bundle {str(ca)!r} cannot be read: "
                          f"{exc.strerror or type(exc).__name__}") from None


def botocore_verify() -> str | None:
    """``verify=`` of boto3 and aiobotocore clients (None: the default)."""
    ca = ca_bundle()
    return str(ca) if ca else None


def pymongo_kwargs(uri_options: dict[str, str]) -> dict[str, Any]:
    """``tlsCAFile`` for pymongo, unless the URI names its own."""
    ca = ca_bundle()
    if not ca or "tlscafile" in uri_options:
        return {}
    return {"tlsCAFile": str(ca)}
