"""What the providers, the AWS identity and the TLS set-up of every client need
from the config, as one process-wide value (like the redactor).

``configure(cfg)`` is called wherever a config starts to be used (the CLI's
``load``, the store factories, the service); without it the defaults hold
(no private CA, no Key Vault identity but ``DefaultAzureCredential``, AWS
through the default chain).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crosswind.config import AwsConfig, SecurityConfig, TlsConfig

if TYPE_CHECKING:
    from crosswind.config import Config


@dataclass(frozen=True)
class SecretSettings:
    #: relative file: references are taken from here (the config's directory)
    base_dir: Path | None = None
    #: [tls] ca_bundle, absolute (None: the system's CAs)
    ca_bundle: Path | None = None
    tls: TlsConfig = field(default_factory=lambda: TlsConfig.model_validate({}))
    security: SecurityConfig = field(default_factory=lambda: SecurityConfig.model_validate({}))
    #: [aws]: what Secrets Manager (and STS for it) is reached through
    aws: AwsConfig | None = None

    @property
    def ttl_s(self) -> float:
        return self.security.secret_ttl_s


def settings_from(cfg: Config) -> SecretSettings:
    ca = cfg.tls.ca_bundle
    if ca is not None and not ca.is_absolute():
        ca = cfg.base_dir / ca
    return SecretSettings(base_dir=cfg.base_dir, ca_bundle=ca, tls=cfg.tls,
                          security=cfg.security, aws=cfg.aws)


_lock = threading.Lock()
_current = SecretSettings()


def current() -> SecretSettings:
    return _current


def install(cfg: Config | SecretSettings) -> bool:
    """Make ``cfg``'s settings current; whether they changed (``cache.configure``
    calls this and then drops what depended on the old ones)."""
    global _current
    new = cfg if isinstance(cfg, SecretSettings) else settings_from(cfg)
    with _lock:
        changed = new != _current
        _current = new
    return changed
