"""Secret providers against real servers: Secrets Manager on moto, Key Vault on
a local HTTPS server speaking its REST subset (challenge auth included) with
the real azure-keyvault-secrets and azure-identity clients; a credential
rotated mid-run is refreshed and the run goes on."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.storage.blob import BlobServiceClient, generate_container_sas

from crosswind.config import AwsConfig, Config, parse_config
from crosswind.errors import AuthError, SecretError
from crosswind.model import Direction
from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto
from crosswind.secrets import AUTH_FAILURES, CACHE, SecretSettings, configure, redact, resolve
from crosswind.secrets import cache as cache_mod
from crosswind.state import StateStore
from crosswind.sync.engine import SyncRun
from crosswind.sync.objects import opened_stores, options_from_config, preflight
from tests.integration.conftest import unique
from tests.integration.security.conftest import kv_security
from tests.keyvault_server import KeyVaultServer

pytestmark = pytest.mark.integration


def moto_aws(moto: Moto, bucket: str = "unused") -> AwsConfig:
    return AwsConfig.model_validate({"bucket": bucket, "endpoint_url": moto.endpoint,
                                     "access_key_id": "test", "secret_access_key": "test",
                                     "emulator": True})


def sm_client(moto: Moto) -> Any:
    return boto3.client("secretsmanager", endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


# -- Secrets Manager ---------------------------------------------------------------------


def test_secrets_manager_values_json_keys_and_arns(moto: Moto) -> None:
    sm = sm_client(moto)
    name = unique("cw/plain")
    sm.create_secret(Name=name, SecretString="sm-plain-value-0001")
    doc = unique("cw/json")
    arn = sm.create_secret(Name=doc, SecretString=json.dumps(
        {"AccountKey": "sm-json-value-0002", "other": "sm-json-other-0003"}))["ARN"]
    configure(SecretSettings(aws=moto_aws(moto)))

    def get(ref: str) -> str:
        return resolve(ref, where="[azure].credential", allow_literal=False).get_secret_value()

    assert get(f"secretsmanager:{name}") == "sm-plain-value-0001"
    assert get(f"secretsmanager:{doc}#AccountKey") == "sm-json-value-0002"
    assert get(f"secretsmanager:{arn}#AccountKey") == "sm-json-value-0002"
    assert "sm-json-other-0003" not in redact("x sm-json-other-0003")  # all of the document
    with pytest.raises(SecretError) as e:
        get(f"secretsmanager:{unique('cw/missing')}")
    assert "no such secret in Secrets Manager (us-east-1)" in str(e.value)
    with pytest.raises(SecretError, match="has no key 'Password'"):
        get(f"secretsmanager:{doc}#Password")


# -- Key Vault ----------------------------------------------------------------------------


def test_key_vault_with_challenge_auth(keyvault: KeyVaultServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, app_secret = keyvault.add_app()
    monkeypatch.setenv("CW_KV_APP_SECRET", app_secret)
    name = f"cw-{uuid.uuid4().hex[:8]}"
    v1 = keyvault.vault.set_secret(name, "kv-value-version-one")
    keyvault.vault.set_secret(name, json.dumps({"password": "kv-json-password-02"}))
    before = len(keyvault.vault.requests)
    configure(SecretSettings(ca_bundle=keyvault.ca_file, security=_security(
        kv_security(keyvault, client_id))))
    ref = f"keyvault://{keyvault.host}/{name}"

    def get(r: str) -> str:
        return resolve(r, where="[aws].documentdb_uri", allow_literal=False).get_secret_value()

    assert get(f"{ref}#password") == "kv-json-password-02"
    assert get(f"{ref}/{v1}") == "kv-value-version-one"
    # The SDK's challenge: a request without a token, 401, a token for the tenant the
    # challenge named (OIDC discovery + client credentials), the request again.
    seen = keyvault.vault.requests[before:]
    assert seen[0] == ("GET", f"/secrets/{name}/", False)
    assert any(p.endswith("/oauth2/v2.0/token") for _, p, _ in seen)
    assert ("GET", f"/secrets/{name}/", True) in seen
    with pytest.raises(SecretError) as e:
        get(f"keyvault://{keyvault.host}/does-not-exist")
    assert "no such secret (or version)" in str(e.value)
    assert app_secret not in str(e.value)


def _security(d: dict[str, str]) -> Any:
    from crosswind.config import SecurityConfig

    return SecurityConfig.model_validate(d)


def test_key_vault_refusals_are_one_line(keyvault: KeyVaultServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cw-{uuid.uuid4().hex[:8]}"
    keyvault.vault.set_secret(name, "kv-refused-value-03")
    ref = f"keyvault://{keyvault.host}/{name}"
    outsider, outsider_secret = keyvault.add_app(reader=False)
    monkeypatch.setenv("CW_KV_APP_SECRET", outsider_secret)
    configure(SecretSettings(ca_bundle=keyvault.ca_file, security=_security(
        kv_security(keyvault, outsider))))
    with pytest.raises(SecretError) as e:
        resolve(ref, where="[azure].credential", allow_literal=False)
    assert "access denied by Key Vault" in str(e.value) and "\n" not in str(e.value)
    # A wrong app secret: the sign-in fails.
    client_id, _ = keyvault.add_app()
    monkeypatch.setenv("CW_KV_APP_SECRET", "not-the-app-secret")
    configure(SecretSettings(ca_bundle=keyvault.ca_file, security=_security(
        kv_security(keyvault, client_id))))
    with pytest.raises(SecretError) as e:
        resolve(ref, where="[azure].credential", allow_literal=False)
    assert "signing in to Key Vault failed" in str(e.value)
    assert "not-the-app-secret" not in str(e.value)


def test_key_vault_untrusted_certificate_is_refused(keyvault: KeyVaultServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, app_secret = keyvault.add_app()
    monkeypatch.setenv("CW_KV_APP_SECRET", app_secret)
    name = f"cw-{uuid.uuid4().hex[:8]}"
    keyvault.vault.set_secret(name, "kv-untrusted-value-04")
    # No ca_bundle: the server's throwaway CA is not trusted.
    configure(SecretSettings(security=_security(kv_security(keyvault, client_id))))
    with pytest.raises(SecretError) as e:
        resolve(f"keyvault://{keyvault.host}/{name}", where="[azure].credential",
                allow_literal=False)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value) or "certificate" in str(e.value).lower()


def test_key_vault_with_default_azure_credential(keyvault: KeyVaultServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # DefaultAzureCredential's first source is the environment (an app registration).
    client_id, app_secret = keyvault.add_app()
    monkeypatch.setenv("AZURE_TENANT_ID", keyvault.vault.tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", app_secret)
    name = f"cw-{uuid.uuid4().hex[:8]}"
    keyvault.vault.set_secret(name, "kv-default-cred-value-05")
    configure(SecretSettings(ca_bundle=keyvault.ca_file, security=_security(
        {"keyvault_credential": "default", "keyvault_authority_host": keyvault.base})))
    assert resolve(f"keyvault://{keyvault.host}/{name}", where="w",
                   allow_literal=False).get_secret_value() == "kv-default-cred-value-05"


# -- rotation mid-run ---------------------------------------------------------------------


def _sas(container: str, seconds: float) -> str:
    return generate_container_sas(AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
                                  permission="rl",
                                  expiry=datetime.now(UTC) + timedelta(seconds=seconds))


def _sas_config(tmp: Path, azurite: Azurite, moto: Moto, container: str, bucket: str,
                credential: str, extra: dict[str, Any] | None = None) -> Config:
    data: dict[str, Any] = {
        "azure": {"account_url": azurite.blob_url, "credential": credential,
                  "container": container, "emulator": True},
        "aws": {"bucket": bucket, "endpoint_url": moto.endpoint, "access_key_id": "test",
                "secret_access_key": "test", "emulator": True},
        "state": {"dir": str(tmp / "state")}, "sync": {"concurrency": 8},
        **(extra or {}),
    }
    return parse_config(data, tmp)


@pytest.mark.parametrize("provider", ["secretsmanager", "keyvault"])
def test_a_sas_rotated_mid_run_is_refreshed_and_the_run_goes_on(
        provider: str, azurite: Azurite, moto: Moto, keyvault: KeyVaultServer,
        blob_service: BlobServiceClient, s3_client: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "MIN_REFRESH_S", 0.5)
    container, bucket = unique("rot"), unique("rot")
    cc = blob_service.create_container(container)
    s3_client.create_bucket(Bucket=bucket)
    for i in range(40):
        cc.upload_blob(f"events/{i:03d}.json", f'{{"n": {i}}}'.encode())
    old = _sas(container, 4)  # works at the start, stops working mid-run
    extra: dict[str, Any] = {}
    if provider == "secretsmanager":
        name = unique("cw/azure-sas")
        sm_client(moto).create_secret(Name=name, SecretString=old)
        ref = f"secretsmanager:{name}"
    else:
        client_id, app_secret = keyvault.add_app()
        monkeypatch.setenv("CW_KV_APP_SECRET", app_secret)
        name = f"cw-{uuid.uuid4().hex[:8]}"
        keyvault.vault.set_secret(name, old)
        ref = f"keyvault://{keyvault.host}/{name}"
        extra = {"security": kv_security(keyvault, client_id),
                 "tls": {"ca_bundle": str(keyvault.ca_file)}}
    cfg = _sas_config(tmp_path, azurite, moto, container, bucket, ref, extra)
    configure(cfg)
    direction = Direction.AZURE_TO_AWS

    async def go() -> Any:
        async with opened_stores(cfg, direction) as (src, dst):
            await preflight(src, dst)
            # The old SAS expires; the secret is rotated in its store meanwhile.
            new = _sas(container, 3600)
            if provider == "secretsmanager":
                sm_client(moto).put_secret_value(SecretId=name, SecretString=new)
            else:
                keyvault.vault.set_secret(name, new)
            await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - started)))
            state = StateStore(cfg.state_dir)
            try:
                return await SyncRun(src, dst, state, options_from_config(cfg, direction)).run()
            finally:
                state.close()

    started = time.monotonic()
    result = asyncio.run(go())
    assert result.exit_code == 0, result
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 40
    [count] = AUTH_FAILURES.snapshot()
    assert count["endpoint"] == f"azure://{AZURITE_ACCOUNT}/{container}"
    assert count["principal"] == f"SAS token for {AZURITE_ACCOUNT}"
    assert count["refreshed"] == 1 and count["count"] >= 1 and count["recovered"] >= 1
    assert CACHE.rotations(ref) == 1
    assert "sig=" not in json.dumps(AUTH_FAILURES.snapshot())


def test_a_refused_credential_whose_secret_did_not_change_fails_clearly(
        azurite: Azurite, moto: Moto, blob_service: BlobServiceClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "MIN_REFRESH_S", 0.0)
    container = unique("stale")
    blob_service.create_container(container).upload_blob("a.json", b"{}")
    name = unique("cw/stale-sas")
    sm_client(moto).create_secret(Name=name, SecretString=_sas(container, 2))
    cfg = _sas_config(tmp_path, azurite, moto, container, "unused", f"secretsmanager:{name}")
    configure(cfg)

    async def go() -> None:
        from crosswind.stores.factory import open_object_store

        store = await open_object_store(cfg, "azure")
        try:
            await asyncio.sleep(3)
            await store.head("a.json")
        finally:
            await store.close()

    with pytest.raises(AuthError) as e:
        asyncio.run(go())
    assert f"fetched again from [azure].credential (secretsmanager:{name}) are unchanged" \
        in str(e.value)
    assert "sig=" not in str(e.value)
