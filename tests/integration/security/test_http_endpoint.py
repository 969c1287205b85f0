"""The service's HTTP endpoint: loopback by default; any other bind only with a
bearer token and TLS (references); a request without the token gets 401 and
nothing else, and is counted."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from crosswind.errors import ConfigError
from crosswind.live.http import HttpEndpoint, endpoint_security, make_app
from crosswind.secrets import AUTH_FAILURES

pytestmark = pytest.mark.integration

TOKEN = "endpoint-bearer-token-0123456789"


def status() -> dict[str, object]:
    return {"phase": "pre_cutover", "note": "status document"}


def test_loopback_needs_nothing_and_other_binds_need_token_and_tls() -> None:
    async def go() -> None:
        sec = endpoint_security("127.0.0.1:0", token=None, cert=None, key=None, where="w")
        ep = HttpEndpoint("127.0.0.1:0", make_app(status, list, security=sec), sec)
        await ep.start()
        try:
            assert ep.url is not None and ep.url.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession() as s, s.get(f"{ep.url}/healthz") as r:
                assert r.status == 200
        finally:
            await ep.stop()

    asyncio.run(go())
    with pytest.raises(ConfigError, match="not a loopback address"):
        endpoint_security("0.0.0.0:0", token="env:X", cert=None, key=None, where="w")
    with pytest.raises(ConfigError, match="not a loopback address"):
        HttpEndpoint("0.0.0.0:0", make_app(status, list))


def test_a_non_loopback_bind_serves_tls_and_asks_for_the_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    (tmp_path / "cert.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    monkeypatch.setenv("CW_HTTP_KEY", cert.private_key_pem.bytes().decode())
    monkeypatch.setenv("CW_HTTP_TOKEN", TOKEN)
    AUTH_FAILURES.reset()
    sec = endpoint_security("0.0.0.0:0", token="env:CW_HTTP_TOKEN",
                            cert=f"file:{tmp_path / 'cert.pem'}", key="env:CW_HTTP_KEY",
                            where="[replicate].http")
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)

    async def go() -> None:
        ep = HttpEndpoint("0.0.0.0:0", make_app(status, list, security=sec,
                                                endpoint="[replicate].http 0.0.0.0:0"), sec)
        await ep.start()
        url = f"https://127.0.0.1:{ep.port}"
        try:
            assert ep.url is not None and ep.url.startswith("https://")
            async with aiohttp.ClientSession() as s:
                for headers in ({}, {"Authorization": "Bearer wrong-token"},
                                {"Authorization": TOKEN}):
                    async with s.get(f"{url}/api/status", ssl=trusted, headers=headers) as r:
                        assert r.status == 401
                        assert await r.read() == b""
                        assert "Content-Type" not in r.headers or r.content_length == 0
                async with s.get(f"{url}/api/status", ssl=trusted,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 200 and (await r.json())["phase"] == "pre_cutover"
                # The API is read-only: no control action can be requested over it.
                for method in ("POST", "PUT", "PATCH", "DELETE"):
                    for path in ("/api/status", "/api/cutover", "/api/rollback", "/healthz"):
                        async with s.request(method, f"{url}{path}", ssl=trusted, headers={
                                "Authorization": f"Bearer {TOKEN}"}) as r:
                            assert r.status in (404, 405), (method, path, r.status)
                # An untrusted server certificate is refused by a verifying client ...
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    async with s.get(f"{url}/healthz"):
                        pass
                # ... and plain http to the TLS port gets nowhere.
                with pytest.raises(aiohttp.ClientError):
                    async with s.get(f"http://127.0.0.1:{ep.port}/healthz") as r:
                        assert r.status != 200
        finally:
            await ep.stop()

    asyncio.run(go())
    [count] = AUTH_FAILURES.snapshot()
    assert count["endpoint"] == "[replicate].http 0.0.0.0:0"
    assert count["principal"] == "client 127.0.0.1" and count["count"] == 3
    assert TOKEN not in str(AUTH_FAILURES.snapshot())


def test_a_key_that_is_not_the_certificates_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    cert, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    monkeypatch.setenv("CW_HTTP_CERT", cert.cert_chain_pems[0].bytes().decode())
    monkeypatch.setenv("CW_HTTP_KEY", other.private_key_pem.bytes().decode())
    monkeypatch.setenv("CW_HTTP_TOKEN", TOKEN)
    with pytest.raises(ConfigError) as e:
        endpoint_security("0.0.0.0:0", token="env:CW_HTTP_TOKEN", cert="env:CW_HTTP_CERT",
                          key="env:CW_HTTP_KEY", where="[replicate].http")
    assert "do not load" in str(e.value) and "PRIVATE KEY" not in str(e.value)
