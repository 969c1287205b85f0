"""Secret references: how a secret is named in the config (pure, no I/O).

    env:NAME                               an environment variable
    file:PATH                              a file holding only the secret (trimmed)
    keyvault://VAULT/NAME[/VERSION][#KEY]  an Azure Key Vault secret; VAULT is a vault
                                           name (https://VAULT.vault.azure.net) or a
                                           host[:port] (sovereign clouds, private
                                           endpoints, the test server)
    secretsmanager:NAME_OR_ARN[#KEY]       an AWS Secrets Manager secret (an ARN names
                                           its region)

``#KEY`` picks one string from a JSON secret (``{"username": ..., "password": ...}``).
A reference is shown in messages, plans and reports; a value never is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from crosswind.errors import SecretError

Scheme = Literal["env", "file", "keyvault", "secretsmanager"]

#: prefixes that make a setting a reference (the old spellings too, refused with a hint)
PREFIXES = ("env:", "file:", "keyvault:", "secretsmanager:")
_MISSPELT = {"kv:": "keyvault://VAULT/NAME", "aws-sm:": "secretsmanager:NAME_OR_ARN",
             "sm:": "secretsmanager:NAME_OR_ARN", "vault:": "keyvault://VAULT/NAME"}

_VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
_VAULT_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_KV_SECRET = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_KV_VERSION = re.compile(r"^[0-9A-Fa-f]{32}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$")
_SM_NAME = re.compile(r"^[A-Za-z0-9/_+=.@!-]{1,512}$")


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``text`` is the reference as written (safe to show)."""

    scheme: Scheme
    text: str
    #: env: the variable; file: the path; keyvault: the secret's name;
    #: secretsmanager: the name or ARN
    name: str
    #: keyvault: https://VAULT.vault.azure.net (or https://HOST[:PORT])
    vault_url: str | None = None
    #: keyvault: a 32-hex version (None: the current one)
    version: str | None = None
    #: a key of a JSON secret
    json_key: str | None = None
    #: secretsmanager: the region an ARN names
    region: str | None = None

    def __str__(self) -> str:
        return self.text


def is_reference(value: str) -> bool:
    """Whether a setting is a reference (of any scheme, also a misspelt one) rather
    than a literal."""
    return value.startswith(PREFIXES + tuple(_MISSPELT))


def _json_key(body: str, where: str, text: str) -> tuple[str, str | None]:
    if "#" not in body:
        return body, None
    body, key = body.split("#", 1)
    if not key:
        raise SecretError(f"{where}: {text!r}: nothing after '#' (the JSON key)")
    return body, key


def parse_reference(value: str, *, where: str) -> Reference | None:
    """The reference ``value`` names, or None for a literal. ``SecretError`` (naming
    ``where`` and the reference, never a value) when it is malformed."""
    for bad, right in _MISSPELT.items():
        if value.startswith(bad):
            raise SecretError(f"{where}: secret scheme {bad!r} is not known; write {right}")
    if value.startswith("env:"):
        name = value[4:]
        if not name:
            raise SecretError(f"{where}: 'env:' needs a variable name")
        return Reference("env", value, name)
    if value.startswith("file:"):
        path = value[5:]
        if not path:
            raise SecretError(f"{where}: 'file:' needs a path")
        return Reference("file", value, path)
    if value.startswith("keyvault:"):
        return _keyvault(value, where)
    if value.startswith("secretsmanager:"):
        body, key = _json_key(value[len("secretsmanager:"):], where, value)
        if not body:
            raise SecretError(f"{where}: 'secretsmanager:' needs a secret name or ARN")
        m = _ARN.match(body)
        if m is None and not _SM_NAME.match(body):
            raise SecretError(f"{where}: {value!r} is not a Secrets Manager secret name "
                              "(letters, digits and /_+=.@!-) or ARN")
        return Reference("secretsmanager", value, body, json_key=key,
                         region=m.group(1) if m else None)
    return None


def _keyvault(value: str, where: str) -> Reference:
    form = "keyvault://VAULT/NAME[/VERSION][#KEY]"
    if not value.startswith("keyvault://"):
        raise SecretError(f"{where}: {value!r} is not a Key Vault reference; write {form}")
    body, key = _json_key(value[len("keyvault://"):], where, value)
    parts = body.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SecretError(f"{where}: {value!r} is not a Key Vault reference; write {form}")
    vault, name = parts[0], parts[1]
    version = parts[2] if len(parts) == 3 else None
    if "." in vault or ":" in vault:
        if not _VAULT_HOST.match(vault):
            raise SecretError(f"{where}: {value!r}: {vault!r} is not a host[:port]")
        url = f"https://{vault}"
    elif _VAULT_NAME.match(vault):
        url = f"https://{vault}.vault.azure.net"
    else:
        raise SecretError(f"{where}: {value!r}: {vault!r} is not a vault name (3-24 letters, "
                          "digits and hyphens, starting with a letter) or a host")
    if not _KV_SECRET.match(name):
        raise SecretError(f"{where}: {value!r}: {name!r} is not a Key Vault secret name "
                          "(1-127 letters, digits and hyphens)")
    if version is not None and not _KV_VERSION.match(version):
        raise SecretError(f"{where}: {value!r}: {version!r} is not a secret version "
                          "(32 hex digits)")
    return Reference("keyvault", value, name, vault_url=url, version=version, json_key=key)
