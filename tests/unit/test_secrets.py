"""Secret references, the cache and its refresh, and the refresh-once-on-refusal
wrapper of the stores (with a fake store; the real ones are tested on the rig)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crosswind import secrets
from crosswind.config import parse_config
from crosswind.errors import AuthError, ConfigError, SecretError, TransientError
from crosswind.secrets import (
    AUTH_FAILURES,
    CACHE,
    REDACTOR,
    Renewal,
    SecretSettings,
    configure,
    parse_reference,
    redact,
    resolve,
)
from crosswind.secrets import cache as cache_mod
from crosswind.secrets.renewal import renewing, renewing_listing, renewing_once


@pytest.fixture(autouse=True)
def _fresh() -> None:
    configure(SecretSettings())
    CACHE.reset()
    AUTH_FAILURES.reset()


# -- references ------------------------------------------------------------------------


def test_references_parse() -> None:
    kv = parse_reference("keyvault://prod-vault/azure-key", where="w")
    assert kv is not None and kv.vault_url == "https://prod-vault.vault.azure.net"
    assert kv.name == "azure-key" and kv.version is None
    v = parse_reference("keyvault://kv.vault.azure.cn/k/" + "a" * 32 + "#password", where="w")
    assert v is not None and v.vault_url == "https://kv.vault.azure.cn"
    assert v.version == "a" * 32 and v.json_key == "password"
    local = parse_reference("keyvault://127.0.0.1:8443/k", where="w")
    assert local is not None and local.vault_url == "https://127.0.0.1:8443"
    sm = parse_reference("secretsmanager:prod/crosswind#AccountKey", where="w")
    assert sm is not None and sm.name == "prod/crosswind" and sm.json_key == "AccountKey"
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cw-AbCdEf"
    a = parse_reference(f"secretsmanager:{arn}", where="w")
    assert a is not None and a.region == "eu-west-1" and a.name == arn
    assert parse_reference("plain-literal", where="w") is None
    assert str(sm) == "secretsmanager:prod/crosswind#AccountKey"


@pytest.mark.parametrize(("ref", "message"), [
    ("keyvault:vault/name", "not a Key Vault reference"),
    ("keyvault://vault", "not a Key Vault reference"),
    ("keyvault://v/name", "is not a vault name"),
    ("keyvault://vault1/bad_name", "is not a Key Vault secret name"),
    ("keyvault://vault1/name/notaversion", "is not a secret version"),
    ("keyvault://vault1/name#", "nothing after '#'"),
    ("secretsmanager:", "needs a secret name or ARN"),
    ("secretsmanager:has space", "is not a Secrets Manager secret name"),
    ("aws-sm:x", "write secretsmanager:NAME_OR_ARN"),
    ("kv:x", "write keyvault://VAULT/NAME"),
    ("file:", "needs a path"),
])
def test_bad_references_name_the_setting(ref: str, message: str) -> None:
    with pytest.raises(SecretError) as e:
        resolve(ref, where="[azure].credential", allow_literal=False)
    assert message in str(e.value) and str(e.value).startswith("[azure].credential: ")


def test_relative_file_reference_is_taken_from_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("relative-secret-value\n")
    configure(SecretSettings(base_dir=tmp_path))
    assert resolve("file:key.txt", where="w", allow_literal=False).get_secret_value() == \
        "relative-secret-value"


def test_json_key_errors_show_the_keys_never_the_values(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from crosswind.secrets.providers import pick_json_key

    ref = parse_reference("secretsmanager:x#password", where="w")
    assert ref is not None
    assert pick_json_key('{"password": "pw-123456", "user": "u"}', ref, "w") == "pw-123456"
    with pytest.raises(SecretError) as e:
        pick_json_key('{"pass": "pw-7654321"}', ref, "w")
    assert "its keys: pass" in str(e.value) and "pw-7654321" not in str(e.value)
    assert "pw-7654321" not in redact("leak pw-7654321 here")  # the document is registered
    with pytest.raises(SecretError, match="not JSON"):
        pick_json_key("not-json-at-all", ref, "w")


# -- cache -----------------------------------------------------------------------------


def test_values_are_cached_for_the_ttl_and_refreshed_on_demand(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_ROTATING", "first-value-123")
    assert resolve("env:CW_ROTATING", where="w", allow_literal=False).get_secret_value() == \
        "first-value-123"
    monkeypatch.setenv("CW_ROTATING", "second-value-456")
    # Within the TTL the cached value is used ...
    assert resolve("env:CW_ROTATING", where="w", allow_literal=False).get_secret_value() == \
        "first-value-123"
    # ... a refresh right after the fetch too (many refusals at once refresh once) ...
    assert resolve("env:CW_ROTATING", where="w", allow_literal=False,
                   refresh=True).get_secret_value() == "first-value-123"
    monkeypatch.setattr(cache_mod, "MIN_REFRESH_S", 0.0)
    # ... and a refresh after that fetches again.
    assert resolve("env:CW_ROTATING", where="w", allow_literal=False,
                   refresh=True).get_secret_value() == "second-value-456"
    assert CACHE.rotations("env:CW_ROTATING") == 1
    assert "second-value-456" not in redact("x second-value-456 y")


def test_ttl_zero_reads_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config({"azure": {"connection_string": "env:AZ", "container": "c"},
                        "aws": {"bucket": "b"}, "security": {"secret_ttl_s": 0}}, tmp_path)
    configure(cfg)
    monkeypatch.setenv("CW_TTL0", "value-one-111")
    resolve("env:CW_TTL0", where="w", allow_literal=False)
    monkeypatch.setenv("CW_TTL0", "value-two-222")
    assert resolve("env:CW_TTL0", where="w", allow_literal=False).get_secret_value() == \
        "value-two-222"


def test_the_old_api_is_still_importable() -> None:
    from crosswind.secrets import MASK, RedactingFilter, is_reference  # noqa: F401

    assert secrets.is_reference("keyvault://v1x/n") and secrets.is_reference("env:X")
    assert not secrets.is_reference("plain")
    REDACTOR.register("registered-value-42")
    assert secrets.redact("a registered-value-42 b") == f"a {MASK} b"


def test_sas_signatures_and_bearer_tokens_are_masked() -> None:
    REDACTOR.register("sv=2024-05-04&sp=rl&se=2030-01-01&sig=AbC%2Bdef%3D123")
    assert "AbC+def=123" not in redact("GET ...&sig=AbC+def=123 failed")
    assert "tok-abcdef" not in redact("Authorization: Bearer tok-abcdef")


# -- config ----------------------------------------------------------------------------


def _cfg(tmp_path: Path, **over: object) -> object:
    d: dict[str, object] = {"azure": {"connection_string": "env:AZ", "container": "c"},
                            "aws": {"bucket": "b"}}
    d.update(over)
    return parse_config(d, tmp_path, "cw.toml")


@pytest.mark.parametrize(("over", "message"), [
    ({"replicate": {"http": "0.0.0.0:9464"}},
     "needs [monitoring] http_token, http_tls_cert, http_tls_key"),
    ({"replicate": {"http": "0.0.0.0:9464"}, "monitoring": {"http_token": "env:T"}},
     "needs [monitoring] http_tls_cert, http_tls_key"),
    ({"replicate": {"http": "10.0.0.5:9464"},
      "monitoring": {"http_token": "plain", "http_tls_cert": "file:c", "http_tls_key": "file:k"}},
     "http_token must be a reference"),
    ({"security": {"keyvault_credential": "client-secret"}},
     "needs keyvault_tenant_id, keyvault_client_id, keyvault_client_secret"),
    ({"security": {"keyvault_client_secret": "literal"}}, "must be an env:, file: or"),
    ({"aws": {"bucket": "b", "role_arn": "arn:aws:iam::1:role/x"}}, "is not an IAM role ARN"),
    ({"aws": {"bucket": "b", "external_id": "x"}}, "external_id needs role_arn"),
    ({"tls": {"ca_bundle": "missing.pem"}}, "is not a readable file"),
    ({"tls": {"verify": False}}, "[tls].verify is not a known setting"),
])
def test_security_settings_are_checked(tmp_path: Path, over: dict[str, object],
                                       message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _cfg(tmp_path, **over)
    assert message in str(e.value)


def test_security_settings_accepted(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    cfg = _cfg(tmp_path, replicate={"http": "0.0.0.0:0"},
               monitoring={"http_token": "env:T", "http_tls_cert": "file:/c.pem",
                           "http_tls_key": "keyvault://vault1/key"},
               aws={"bucket": "b", "role_arn": "arn:aws:iam::123456789012:role/crosswind",
                    "external_id": "ext-1"},
               tls={"ca_bundle": "ca.pem"}, security={"sas_min_validity_h": 48})
    s = configure(cfg)  # type: ignore[arg-type]
    assert s.ca_bundle == tmp_path.resolve() / "ca.pem" and s.security.sas_min_validity_h == 48


# -- refresh once on refusal -----------------------------------------------------------


class FakeStore:
    """Refuses calls until its credential is the current value of env:CW_FAKE."""

    def __init__(self, rotate_to: str | None) -> None:
        self.accepted = "new-credential-value"
        self.held = "old-credential-value"
        self.rotate_to = rotate_to
        self.rebuilds = 0
        self.calls = 0
        self.renewal = Renewal("fake://store", "fake principal", ["[x].key (env:CW_FAKE)"],
                               self._rebuild)

    async def _rebuild(self) -> bool:
        self.rebuilds += 1
        await asyncio.sleep(0.01)
        if self.rotate_to is None or self.rotate_to == self.held:
            return False
        self.held = self.rotate_to
        return True

    def _auth(self) -> None:
        self.calls += 1
        if self.held != self.accepted:
            raise AuthError("fake://store: credentials rejected (403)")

    @renewing
    async def op(self) -> str:
        self._auth()
        return "ok"

    @renewing_once
    async def stream(self) -> str:
        self._auth()
        return "sent"

    @renewing_listing(lambda k: k)
    async def listing(self, fail_after: int) -> AsyncIterator[str]:
        for i, k in enumerate(["a", "b", "c", "d"]):
            if i == fail_after and self.held != self.accepted:
                self._auth()
            yield k


def test_a_rotated_credential_is_refreshed_once_and_the_call_retried() -> None:
    store = FakeStore(rotate_to="new-credential-value")

    async def go() -> list[str]:
        return list(await asyncio.gather(*(store.op() for _ in range(20))))

    assert asyncio.run(go()) == ["ok"] * 20
    assert store.rebuilds == 1  # twenty refusals, one refresh
    [c] = AUTH_FAILURES.snapshot()
    assert c["endpoint"] == "fake://store" and c["principal"] == "fake principal"
    assert c["count"] == 20 and c["refreshed"] == 1 and c["recovered"] == 20


def test_an_unchanged_secret_fails_with_a_clear_error_and_is_not_hammered() -> None:
    store = FakeStore(rotate_to=None)
    with pytest.raises(AuthError) as e:
        asyncio.run(store.op())
    assert "fetched again from [x].key (env:CW_FAKE) are unchanged" in str(e.value)
    with pytest.raises(AuthError):
        asyncio.run(store.op())
    assert store.rebuilds == 1  # the second refusal within RETRY_REFRESH_S reads nothing


def test_still_refused_after_a_refresh_says_so() -> None:
    store = FakeStore(rotate_to="another-wrong-value")
    with pytest.raises(AuthError) as e:
        asyncio.run(store.op())
    assert "still refused after the credentials were fetched again" in str(e.value)
    assert AUTH_FAILURES.total() == 2


def test_a_streamed_call_refreshes_and_asks_the_caller_to_retry() -> None:
    store = FakeStore(rotate_to="new-credential-value")
    with pytest.raises(TransientError, match="the write is sent again"):
        asyncio.run(store.stream())
    assert asyncio.run(store.stream()) == "sent"


def test_a_listing_refused_midway_goes_on_after_its_last_key() -> None:
    store = FakeStore(rotate_to="new-credential-value")

    async def go() -> list[str]:
        return [k async for k in store.listing(2)]

    assert asyncio.run(go()) == ["a", "b", "c", "d"]
    assert store.rebuilds == 1
