"""Secrets: references, providers, caching/refresh and redaction.

A secret in the config is a *reference* (``references.py``): ``env:NAME``,
``file:PATH``, ``keyvault://VAULT/NAME[/VERSION]`` or
``secretsmanager:NAME_OR_ARN[#KEY]``; literal secrets only for a local
emulator. Modules:

* ``references`` — parsing references (pure)
* ``providers``  — env, file, Azure Key Vault, AWS Secrets Manager
* ``cache``      — ``resolve``: values cached for ``[security] secret_ttl_s``,
  refreshed on demand; ``configure`` (the settings below, from a config)
* ``renewal``    — a store's credentials refused mid-run: counted per endpoint
  and principal (``AUTH_FAILURES``), refreshed once, retried once
* ``aws``        — the AWS identity (keys, default chain, an assumed role) every
  AWS client uses
* ``settings``   — what the above need from the config (``configure``)
* ``redaction``  — ``redact``, ``REDACTOR``, ``RedactingFilter``: no value ever
  reaches a log, report, exception, state, audit record or HTTP answer

May import: errors, config (types and ``is_loopback``); the cloud SDKs lazily.
Stores, engines and everything above import this package, never the reverse.
"""

from __future__ import annotations

from crosswind.secrets.cache import CACHE, FACTORIES, configure, resolve
from crosswind.secrets.providers import (
    EnvProvider,
    FileProvider,
    KeyVaultProvider,
    SecretsManagerProvider,
)
from crosswind.secrets.redaction import MASK, REDACTOR, RedactingFilter, Redactor, redact
from crosswind.secrets.references import Reference, is_reference, parse_reference
from crosswind.secrets.renewal import AUTH_FAILURES, Renewal
from crosswind.secrets.settings import SecretSettings, current

FACTORIES.update({
    "env": lambda s: EnvProvider(),
    "file": lambda s: FileProvider(s.base_dir),
    "keyvault": KeyVaultProvider,
    "secretsmanager": SecretsManagerProvider,
})

__all__ = [
    "AUTH_FAILURES",
    "CACHE",
    "MASK",
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "Reference",
    "Renewal",
    "SecretSettings",
    "configure",
    "current",
    "is_reference",
    "parse_reference",
    "redact",
    "resolve",
]
