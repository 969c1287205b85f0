"""Fixtures of the security tests: a local Key Vault (HTTPS, challenge auth,
``trustme`` CA; see ``tests/keyvault_server.py``) and settings that point the
secret providers at it and at moto's Secrets Manager."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crosswind.secrets import AUTH_FAILURES, CACHE, SecretSettings, configure
from tests.keyvault_server import KeyVaultServer


@pytest.fixture(scope="session")
def keyvault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyVaultServer]:
    server = KeyVaultServer(tmp_path_factory.mktemp("keyvault")).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    CACHE.reset()
    AUTH_FAILURES.reset()
    yield
    configure(SecretSettings())
    CACHE.reset()


def kv_security(keyvault: KeyVaultServer, client_id: str, env: str = "CW_KV_APP_SECRET"
                ) -> dict[str, str]:
    """``[security]`` signing in to the test vault as an app registration."""
    return {"keyvault_credential": "client-secret", "keyvault_tenant_id": keyvault.vault.tenant,
            "keyvault_client_id": client_id, "keyvault_client_secret": f"env:{env}",
            "keyvault_authority_host": keyvault.base}


def write_pem(path: Path, pem: bytes) -> Path:
    path.write_bytes(pem)
    return path
