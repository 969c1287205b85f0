"""Azure credentials and error translation shared by the Blob, Table and Queue stores.

``resolve_auth`` turns ``[azure]`` into an ``AzureAuth`` (endpoints, the secret
parts, who it signs in as, and the references they came from); a store whose
credentials are refused mid-run calls it again with ``refresh=True``
(``AzureAuth.source``) and rebuilds its clients when the secret changed.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from azure.core import exceptions as az

from crosswind.config import AzureConfig, check_plain_http
from crosswind.errors import (
    AlreadyExists,
    AuthError,
    ConfigError,
    EndpointUnreachable,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    StoreError,
    TransientError,
)
from crosswind.secrets import current as secret_settings
from crosswind.secrets import is_reference, redact, resolve
from crosswind.stores.azure_sas import Service, check_sas_token, parse_sas, sas_warnings
from crosswind.tls import azure_kwargs

log = logging.getLogger("crosswind.stores")


@dataclass(frozen=True)
class AzureAuth:
    """Resolved Azure endpoint and credential (the secret parts stay inside)."""

    account_name: str
    blob_url: str
    table_url: str | None
    queue_url: str | None
    #: account key, SAS token (no leading '?'), or None for DefaultAzureCredential
    account_key: str | None = None
    sas_token: str | None = None
    connection_string: str | None = None
    #: the settings the secret came from, as references ("[azure].credential
    #: (keyvault://v/sas)"): what a refresh reads again; empty for literals
    refs: tuple[str, ...] = ()
    emulator: bool = False
    #: the config this was resolved from (a refresh resolves it again)
    source: AzureConfig | None = field(default=None, compare=False)

    @property
    def principal(self) -> str:
        """Who the requests are signed as, safe to show."""
        if self.account_key:
            return f"account key of {self.account_name}"
        if self.sas_token:
            return f"SAS token for {self.account_name}"
        return "Azure AD (DefaultAzureCredential)"

    def __repr__(self) -> str:  # never show a key
        return f"AzureAuth(account_name={self.account_name!r}, blob_url={self.blob_url!r})"


def _parse_connection_string(cs: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in cs.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _check_endpoint(url: str, where: str) -> None:
    """An endpoint must be an http(s) URL with a host: anything else failed later
    as "cannot reach the endpoint" (ftp://x) or an internal error (a bad IPv6 host)."""
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError as exc:
        raise ConfigError(f"{where}: {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL with a host")


def _check_account_key(key: str, where: str) -> None:
    """An account key is base64; a mangled one is a config error (exit 2), not
    "credentials rejected" from a request that could never be signed."""
    try:
        base64.b64decode(key, validate=True)
    except ValueError:
        raise ConfigError(f"{where}: the account key is not valid base64 (was it cut or "
                          "quoted?)") from None


def _refs(where: str, value: str) -> tuple[str, ...]:
    return (f"{where} ({value})",) if is_reference(value) else ()


def resolve_auth(cfg: AzureConfig, *, refresh: bool = False) -> AzureAuth:
    """``[azure]`` resolved; ``refresh`` reads the secret references again now."""
    if cfg.connection_string:
        where = "[azure].connection_string"
        cs = resolve(cfg.connection_string, where=where,
                     allow_literal=cfg.emulator, refresh=refresh).get_secret_value()
        parts = _parse_connection_string(cs)
        name = parts.get("accountname", "")
        proto = parts.get("defaultendpointsprotocol", "https")
        suffix = parts.get("endpointsuffix", "core.windows.net")
        for label in ("BlobEndpoint", "TableEndpoint", "QueueEndpoint"):
            if parts.get(label.lower()):
                _check_endpoint(parts[label.lower()], f"{where}: {label}")
        if parts.get("accountkey"):
            _check_account_key(parts["accountkey"], where)
        blob = parts.get("blobendpoint") or (f"{proto}://{name}.blob.{suffix}" if name else "")
        if not blob:
            raise ConfigError("[azure].connection_string: has neither AccountName nor BlobEndpoint")
        if not name:
            name = (urlparse(blob).hostname or "").split(".")[0]
        # Endpoints are derived from the account name only for a plain account
        # connection string; with explicit endpoints, a missing one stays missing.
        derive = bool(name) and "blobendpoint" not in parts
        table = parts.get("tableendpoint") or (
            f"{proto}://{name}.table.{suffix}" if derive else None)
        queue = parts.get("queueendpoint") or (
            f"{proto}://{name}.queue.{suffix}" if derive else None)
        for url in (blob, table, queue):
            if url:
                check_plain_http(url, emulator=cfg.emulator, where="[azure] endpoint")
        return AzureAuth(name, blob.rstrip("/"), table, queue, parts.get("accountkey"),
                         parts.get("sharedaccesssignature"), cs,
                         _refs(where, cfg.connection_string), cfg.emulator, cfg)
    assert cfg.account_url and cfg.credential
    url = cfg.account_url.rstrip("/")
    host = urlparse(url).hostname or ""
    name = host.split(".")[0]
    if urlparse(url).path.strip("/"):  # emulator style: http://127.0.0.1:10000/devstoreaccount1
        name = urlparse(url).path.strip("/").split("/")[0]
    key = sas = None
    if cfg.credential != "default":
        secret = resolve(cfg.credential, where="[azure].credential",
                         allow_literal=cfg.emulator, refresh=refresh).get_secret_value()
        if "sig=" in secret:
            sas = secret.lstrip("?")
        else:
            _check_account_key(secret, "[azure].credential")
            key = secret
    return AzureAuth(name, url, None, None, key, sas, None,
                     _refs("[azure].credential", cfg.credential), cfg.emulator, cfg)


# -- SAS tokens -----------------------------------------------------------------
@dataclass(frozen=True)
class SasInfo:
    expires: datetime | None
    permissions: str


def sas_info(token: str) -> SasInfo:
    t = parse_sas(token)
    return SasInfo(t.expires, t.permissions)


def check_sas(token: str, needed: str, what: str, service: Service = "blob", *,
              emulator: bool = False) -> None:
    """Refuse a SAS that cannot do the work (``azure_sas.sas_problems``: expiry,
    start, the letters of ``needed``, services, resource types, http); warn when it
    expires within ``[security] sas_min_validity_h``."""
    parsed = check_sas_token(token, service, needed, what, emulator=emulator)
    for w in sas_warnings(parsed, secret_settings().security.sas_min_validity_h):
        log.warning("%s: the SAS token: %s", what, w)


# -- errors ----------------------------------------------------------------------
def _summary(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    first = str(msg).strip().splitlines()[0] if str(msg).strip() else type(exc).__name__
    return redact(first)[:300]


def translate(exc: BaseException, where: str) -> StoreError:
    """Map an Azure SDK exception to the crosswind error tree."""
    s = _summary(exc)
    code = getattr(exc, "error_code", None) or ""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, az.ClientAuthenticationError) or status in (401, 403):
        if code == "AuthorizationPermissionMismatch" or "permission" in s.lower():
            return AuthError(f"{where}: permission denied ({code or status}): {s}")
        return AuthError(f"{where}: credentials rejected ({code or status}): {s}")
    if isinstance(exc, az.ResourceNotFoundError) or status == 404:
        return NotFound(f"{where}: not found ({code or 404})")
    if isinstance(exc, az.ResourceExistsError) or status == 409:
        return AlreadyExists(f"{where}: already exists ({code or 409})")
    if isinstance(exc, (az.ResourceModifiedError, az.ResourceNotModifiedError)) or status == 412:
        return PreconditionFailed(f"{where}: condition not met ({code or 412})")
    if code in ("Md5Mismatch", "InvalidMd5") or ("md5" in s.lower() and status == 400):
        return IntegrityError(f"{where}: the service rejected the content MD5 ({code}): {s}")
    if isinstance(exc, az.ServiceRequestError):
        return EndpointUnreachable(f"{where}: cannot reach the endpoint: {s}")
    if isinstance(exc, az.ServiceResponseError) or (status and (status >= 500 or status == 429)):
        return TransientError(f"{where}: service error ({code or status}): {s}")
    return StoreError(f"{where}: {code or status or type(exc).__name__}: {s}")


@contextlib.contextmanager
def azure_errors(where: str) -> Iterator[None]:
    try:
        yield
    except az.AzureError as exc:
        raise translate(exc, where) from None


def client_kwargs() -> dict[str, Any]:
    """Bounded SDK retries and timeouts: an unreachable endpoint fails in seconds,
    and crosswind's own retries never stack on top of these."""
    return {"retry_total": 3, "retry_backoff_factor": 0.5, "retry_backoff_max": 8,
            "connection_timeout": 10, "read_timeout": 120, **azure_kwargs()}
