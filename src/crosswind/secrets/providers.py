"""Secret providers: one small interface, one class per kind of reference.

``Provider.fetch(ref, where)`` returns the secret's current value or raises
``SecretError`` naming ``where`` and the reference (never a value). Providers
do blocking I/O: the cache calls them (``cache.py``), and code on an event
loop refreshes through ``asyncio.to_thread``.

* ``EnvProvider``, ``FileProvider``: the environment, a file (trimmed).
* ``KeyVaultProvider``: ``azure-keyvault-secrets`` (Key Vault's REST API with its
  401 bearer challenge), signed in with ``DefaultAzureCredential`` or the
  identity ``[security]`` names; ``[tls] ca_bundle`` verifies the vault.
* ``SecretsManagerProvider``: boto3 ``secretsmanager`` through ``[aws]
  endpoint_url`` when set, as crosswind itself on AWS (``secrets/aws.py``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from crosswind.config import is_loopback
from crosswind.errors import SecretError
from crosswind.secrets.aws import boto3_client
from crosswind.secrets.cache import resolve
from crosswind.secrets.redaction import REDACTOR, redact
from crosswind.secrets.references import Reference

if TYPE_CHECKING:
    from crosswind.secrets.settings import SecretSettings


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    return " ".join(redact(text).split())[:200]


def pick_json_key(raw: str, ref: Reference, where: str) -> str:
    """The string under ``ref.json_key`` of a JSON secret (``raw`` itself without one)."""
    if ref.json_key is None:
        return raw
    REDACTOR.register(raw)  # the whole document is a secret too
    try:
        doc = json.loads(raw)
    except ValueError:
        raise SecretError(f"{where}: {ref}: the secret is not JSON, so it has no key "
                          f"{ref.json_key!r}") from None
    if isinstance(doc, dict):  # every value of the document is as secret as the one picked
        for v in doc.values():
            if isinstance(v, str):
                REDACTOR.register(v)
    if not isinstance(doc, dict) or ref.json_key not in doc:
        keys = ", ".join(sorted(map(str, doc))) if isinstance(doc, dict) else "none"
        raise SecretError(f"{where}: {ref}: the JSON secret has no key {ref.json_key!r} "
                          f"(its keys: {keys})")
    value = doc[ref.json_key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SecretError(f"{where}: {ref}: the value under {ref.json_key!r} is not a string")
    return str(value)


class EnvProvider:
    def fetch(self, ref: Reference, where: str) -> str:
        found = os.environ.get(ref.name)
        if not found:
            raise SecretError(f"{where}: environment variable {ref.name} is not set")
        return found


class FileProvider:
    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir

    def fetch(self, ref: Reference, where: str) -> str:
        path = Path(ref.name).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"{where}: cannot read secret file {path}: "
                              f"{exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise SecretError(f"{where}: secret file {path} is not UTF-8 text") from None
        if not secret:
            raise SecretError(f"{where}: secret file {path} is empty")
        return secret


#: Microsoft Entra authorities of Azure's clouds (instance discovery knows them)
_KNOWN_AUTHORITIES = {"login.microsoftonline.com", "login.microsoftonline.us",
                      "login.chinacloudapi.cn", "login.microsoftonline.de"}


class KeyVaultProvider:
    """Key Vault secrets; one ``SecretClient`` per vault, made on first use."""

    def __init__(self, settings: SecretSettings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}
        self._credential: Any = None
        self._lock = threading.Lock()

    def credential(self) -> Any:
        """The identity crosswind signs in to Key Vault with (``[security]``)."""
        s = self.settings
        if self._credential is None:
            kw: dict[str, Any] = {}
            if s.ca_bundle:
                kw["connection_verify"] = str(s.ca_bundle)
            host = s.security.keyvault_authority_host
            if host:
                kw["authority"] = host
                # A private or sovereign authority that is not one of Azure's public
                # clouds is not checked against Azure's instance discovery.
                if (urlparse(host).hostname or "") not in _KNOWN_AUTHORITIES:
                    kw["disable_instance_discovery"] = True
            if s.security.keyvault_credential == "client-secret":
                from azure.identity import ClientSecretCredential

                assert s.security.keyvault_tenant_id and s.security.keyvault_client_id
                ref = s.security.keyvault_client_secret
                if not ref:
                    raise SecretError("[security].keyvault_client_secret is required with "
                                      "keyvault_credential = \"client-secret\"")
                secret = resolve(ref, where="[security].keyvault_client_secret",
                                 allow_literal=False).get_secret_value()
                self._credential = ClientSecretCredential(
                    s.security.keyvault_tenant_id, s.security.keyvault_client_id, secret, **kw)
            elif s.security.keyvault_credential == "managed-identity":
                from azure.identity import ManagedIdentityCredential

                kw.pop("authority", None)
                self._credential = ManagedIdentityCredential(
                    client_id=s.security.keyvault_client_id or None, **kw)
            else:
                from azure.identity import DefaultAzureCredential

                if s.security.keyvault_client_id:
                    kw["managed_identity_client_id"] = s.security.keyvault_client_id
                self._credential = DefaultAzureCredential(**kw)
        return self._credential

    def _client(self, vault_url: str) -> Any:
        with self._lock:
            client = self._clients.get(vault_url)
            if client is None:
                from azure.keyvault.secrets import SecretClient

                kw: dict[str, Any] = {"retry_total": 2, "connection_timeout": 10,
                                      "read_timeout": 30}
                if self.settings.ca_bundle:
                    kw["connection_verify"] = str(self.settings.ca_bundle)
                # The challenge's resource must match the vault's domain (a token is
                # never sent to a look-alike host); a vault on a loopback address (a
                # local test server) has no such domain.
                if is_loopback(vault_url):
                    kw["verify_challenge_resource"] = False
                client = SecretClient(vault_url, self.credential(), **kw)
                self._clients[vault_url] = client
            return client

    def fetch(self, ref: Reference, where: str) -> str:
        from azure.core import exceptions as az

        assert ref.vault_url is not None
        try:
            secret = self._client(ref.vault_url).get_secret(ref.name, ref.version)
        except az.ResourceNotFoundError:
            raise SecretError(f"{where}: {ref}: no such secret (or version) in "
                              f"{ref.vault_url}") from None
        except az.ClientAuthenticationError as exc:
            raise SecretError(f"{where}: {ref}: signing in to Key Vault failed "
                              f"({_one_line(exc)}); check [security] keyvault_credential "
                              "and that the identity may read the vault") from None
        except az.HttpResponseError as exc:
            if exc.status_code == 403:
                raise SecretError(f"{where}: {ref}: access denied by Key Vault "
                                  f"({_one_line(exc)}); the identity needs 'Key Vault "
                                  "Secrets User'") from None
            raise SecretError(f"{where}: {ref}: Key Vault answered "
                              f"{exc.status_code}: {_one_line(exc)}") from None
        except az.AzureError as exc:
            raise SecretError(f"{where}: {ref}: cannot reach Key Vault {ref.vault_url}: "
                              f"{_one_line(exc)}") from None
        except ValueError as exc:  # the SDK refuses http and bad challenges this way
            raise SecretError(f"{where}: {ref}: {_one_line(exc)}") from None
        if secret.value is None:
            raise SecretError(f"{where}: {ref}: the secret has no value (disabled?)")
        return pick_json_key(str(secret.value), ref, where)


class SecretsManagerProvider:
    """AWS Secrets Manager; one client per region, made on first use."""

    def __init__(self, settings: SecretSettings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:

                client = boto3_client("secretsmanager", self.settings, region=region,
                                      for_secrets=True)
                self._clients[region] = client
            return client

    def fetch(self, ref: Reference, where: str) -> str:
        from botocore import exceptions as bx

        aws = self.settings.aws
        region = ref.region or (aws.region if aws is not None else "us-east-1")
        try:
            r = self._client(region).get_secret_value(SecretId=ref.name)
        except bx.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "ResourceNotFoundException":
                raise SecretError(f"{where}: {ref}: no such secret in Secrets Manager "
                                  f"({region})") from None
            if code in ("AccessDeniedException", "UnrecognizedClientException",
                        "InvalidClientTokenId", "ExpiredTokenException"):
                raise SecretError(f"{where}: {ref}: Secrets Manager refused the identity "
                                  f"({code}); it needs secretsmanager:GetSecretValue (and "
                                  "kms:Decrypt for a customer-managed key)") from None
            raise SecretError(f"{where}: {ref}: Secrets Manager answered {code}: "
                              f"{_one_line(exc)}") from None
        except bx.NoCredentialsError:
            raise SecretError(f"{where}: {ref}: no AWS credentials to read Secrets Manager "
                              "with (default chain)") from None
        except bx.BotoCoreError as exc:
            raise SecretError(f"{where}: {ref}: cannot reach Secrets Manager: "
                              f"{_one_line(exc)}") from None
        if "SecretString" in r and r["SecretString"] is not None:
            raw = str(r["SecretString"])
        else:
            try:
                raw = bytes(r.get("SecretBinary") or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise SecretError(f"{where}: {ref}: the binary secret is not UTF-8 "
                                  "text") from None
        if not raw:
            raise SecretError(f"{where}: {ref}: the secret is empty")
        return pick_json_key(raw, ref, where)
