"""A local HTTPS server speaking the subset of Azure Key Vault's REST API that
crosswind uses, plus the subset of Microsoft Entra ID (OAuth2 client
credentials) that azure-identity needs to sign in to it.

No Key Vault emulator installs here, so the real ``azure-keyvault-secrets``
client (and the real ``azure-identity`` credential) talk to this:

* ``GET /secrets/NAME[/VERSION]?api-version=...`` without a valid bearer token:
  401 with ``WWW-Authenticate: Bearer authorization="<base>/<tenant>",
  resource="https://vault.azure.net"`` — Key Vault's challenge, which the SDK
  answers by asking its credential for a token for that tenant and resource;
  with the token: the secret's JSON (``value``, ``id``, ``attributes``), or
  404 ``SecretNotFound``; a token of an identity without access: 403.
* ``GET /<tenant>/v2.0/.well-known/openid-configuration``, ``POST
  /<tenant>/oauth2/v2.0/token`` (grant_type=client_credentials, the client id
  and secret checked): what MSAL asks the authority.

The certificate is issued by a throwaway ``trustme`` CA; clients must be given
the CA (``[tls] ca_bundle``) or they refuse the server.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme


@dataclass
class Vault:
    """The vault's state: secrets (name -> versions, newest last) and identities."""

    tenant: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: client id -> client secret of the app registrations that may sign in
    apps: dict[str, str] = field(default_factory=dict)
    #: client ids whose tokens may read secrets (others get 403)
    readers: set[str] = field(default_factory=set)
    secrets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: access token -> client id
    tokens: dict[str, str] = field(default_factory=dict)
    #: (method, path, had a bearer token) of every request, for assertions
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    #: every response body sent (the redaction sweep greps them)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_secret(self, name: str, value: str) -> str:
        version = uuid.uuid4().hex
        with self.lock:
            self.secrets.setdefault(name, []).append((version, value))
        return version


class KeyVaultServer:
    def __init__(self, tmp: Path, ca: trustme.CA | None = None) -> None:
        self.ca = ca or trustme.CA()
        self.vault = Vault()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = tmp / "kv-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        server_ref: list[KeyVaultServer] = [self]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: dict[str, Any] | None,
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server_ref[0]._get(self)

            def do_POST(self) -> None:
                server_ref[0]._post(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- life ---------------------------------------------------------------------
    def start(self) -> KeyVaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def host(self) -> str:
        """The VAULT part of a ``keyvault://`` reference to this server."""
        return f"127.0.0.1:{self.port}"

    def add_app(self, *, reader: bool = True) -> tuple[str, str]:
        client_id, secret = str(uuid.uuid4()), secrets.token_urlsafe(24)
        with self.vault.lock:
            self.vault.apps[client_id] = secret
            if reader:
                self.vault.readers.add(client_id)
        return client_id, secret

    # -- handlers -----------------------------------------------------------------
    def _get(self, h: Any) -> None:
        v = self.vault
        url = urlsplit(h.path)
        auth = h.headers.get("Authorization", "")
        with v.lock:
            v.requests.append(("GET", url.path, auth.startswith("Bearer ")))
        parts = url.path.strip("/").split("/")
        if url.path.endswith("/.well-known/openid-configuration"):
            tenant = parts[0]
            base = f"{self.base}/{tenant}"
            h._send(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                          "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                          "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                          "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/keys",
                          "response_types_supported": ["code", "token"],
                          "subject_types_supported": ["pairwise"],
                          "id_token_signing_alg_values_supported": ["RS256"]})
            return
        if parts[:1] == ["common"] and "discovery" in parts:
            h._send(200, {"tenant_discovery_endpoint":
                          f"{self.base}/{v.tenant}/v2.0/.well-known/openid-configuration",
                          "api-version": "1.1", "metadata": []})
            return
        if parts[:1] != ["secrets"] or len(parts) not in (2, 3):
            h._send(404, {"error": {"code": "NotFound", "message": "no such route"}})
            return
        token = auth.removeprefix("Bearer ").strip()
        with v.lock:
            client = v.tokens.get(token) if auth.startswith("Bearer ") else None
        if client is None:
            h._send(401, {"error": {"code": "Unauthorized",
                                    "message": "AKV10000: Request is missing a Bearer token."}},
                    {"WWW-Authenticate": f'Bearer authorization="{self.base}/{v.tenant}", '
                                        'resource="https://vault.azure.net"'})
            return
        if client not in v.readers:
            h._send(403, {"error": {"code": "Forbidden", "message": "Caller is not authorized "
                                    "to perform action on resource.",
                                    "innererror": {"code": "ForbiddenByRbac"}}})
            return
        name = parts[1]
        version = parts[2] if len(parts) == 3 and parts[2] else None
        with v.lock:
            versions = list(v.secrets.get(name, []))
        found = [x for x in versions if version in (None, x[0])]
        if not found:
            h._send(404, {"error": {"code": "SecretNotFound",
                                    "message": f"A secret with (name/id) {name} was not found "
                                               "in this key vault."}})
            return
        ver, value = found[-1]
        h._send(200, {"value": value, "id": f"{self.base}/secrets/{name}/{ver}",
                      "attributes": {"enabled": True, "created": 1764633600,
                                     "updated": 1764633600, "recoveryLevel": "Recoverable"}})

    def _post(self, h: Any) -> None:
        v = self.vault
        url = urlsplit(h.path)
        with v.lock:
            v.requests.append(("POST", url.path, False))
        length = int(h.headers.get("Content-Length", "0") or 0)
        form = {k: x[0] for k, x in parse_qs(h.rfile.read(length).decode()).items()}
        if not url.path.endswith("/oauth2/v2.0/token"):
            h._send(404, {"error": "not_found"})
            return
        client, secret = form.get("client_id", ""), form.get("client_secret", "")
        with v.lock:
            ok = form.get("grant_type") == "client_credentials" and v.apps.get(client) == secret
        if not ok:
            h._send(401, {"error": "invalid_client",
                          "error_description": "AADSTS7000215: Invalid client secret provided."})
            return
        token = secrets.token_urlsafe(32)
        with v.lock:
            v.tokens[token] = client
        h._send(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                      "access_token": token})
