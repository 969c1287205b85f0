"""The redaction sweep: unique canary secrets behind every reference kind and
provider (env:, file:, a Secrets Manager JSON key on moto, Key Vault on the
local HTTPS vault), used for real by one estate (Azure connection string from
Key Vault, AWS keys from env: and Secrets Manager, the DocumentDB password
from a file, the Key Vault app secret, the endpoint's bearer token, the
webhook URL). Then preflight, sync, replicate (the HTTP endpoint asked with,
without and with a wrong token), validate, a cutover with approvals, and the
failing paths (a wrong account key, a wrong DocumentDB password, a missing
Key Vault secret, an unapproved plan, a literal secret). Every log, report,
HTML file, state database, audit export, HTTP response and webhook body is
then searched for every canary (raw, URL-encoded and JSON-escaped): none may
appear."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import boto3
import pytest
from pymongo import MongoClient

from crosswind.entities import Edm, Entity, Prop
from crosswind.rig.emulators import AZURITE_KEY, Azurite, Moto, Secantus
from tests.integration.conftest import unique
from tests.integration.live.conftest import (
    LiveEnv,
    Service,
    make_live_env,
    mongo,
    services,
    stream,
    table_service,
)
from tests.integration.monitoring_rig import Receiver, receiver
from tests.integration.security.conftest import kv_security
from tests.keyvault_server import KeyVaultServer
from tests.unit.cutover_fixtures import make_key

__all__ = ["make_live_env", "mongo", "receiver", "services", "table_service"]  # fixtures

pytestmark = pytest.mark.integration


def canary(kind: str) -> str:
    return f"cnry-{kind}-{uuid.uuid4().hex}"


class Sweep:
    """What the runs left: outputs of every command, HTTP bodies, files to search."""

    def __init__(self, live: LiveEnv, env: dict[str, str]) -> None:
        self.live = live
        self.env = env
        self.texts: dict[str, str] = {}

    def cli(self, *args: str, config: Path | None = None, ok: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "crosswind", *args, "-c",
                            str(config or self.live.path)],
                           capture_output=True, text=True, timeout=timeout, env=self.env)
        name = " ".join(args) + (f" ({config.name})" if config else "")
        self.texts[f"stdout of {name}"] = r.stdout
        self.texts[f"stderr of {name}"] = r.stderr
        if ok:
            assert r.returncode == 0, f"{name}: {r.returncode}\n{r.stdout[-2000:]}{r.stderr}"
        return r

    def http(self, url: str, token: str | None) -> int:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}  # noqa: S310
                                     if token else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
                body, code = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            body, code = exc.read(), exc.code
        self.texts[f"GET {url} ({'token' if token else 'none'})"] = body.decode(
            errors="replace")
        return int(code)


def forms(secret: str) -> set[str]:
    """The ways a leaked value could be written: raw, URL-encoded, JSON-escaped."""
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            json.dumps(secret)[1:-1]}


def test_no_secret_reaches_any_output(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service],
        keyvault: KeyVaultServer, azurite: Azurite, moto: Moto, secantus: Secantus,
        receiver: Callable[..., Receiver], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    live = make_live_env(rows=True, replicate="max_delete_percent = 100\n"
                                              "validate_interval_s = 0")
    secrets_dir = tmp_path / "secrets"  # the file: references: excluded from the search
    secrets_dir.mkdir()
    hook = receiver()

    # -- canaries, one per reference kind and provider, all of them in use --------------
    akid = "AKIA" + uuid.uuid4().hex[:16].upper()  # env:
    aws_secret = canary("aws-secret")  # Secrets Manager, a JSON key
    http_token = canary("http-token")  # file:
    wrong_token = canary("wrong-token")  # sent by a client, refused
    mongo_pw = canary("mongo-password")  # file: (inside the DocumentDB URI)
    hook_secret = canary("webhook")  # env: (a webhook URL carries its secret)
    kv_client, kv_app_secret = keyvault.add_app()  # the Key Vault app secret: env:
    wrong_key = base64.b64encode(os.urandom(64)).decode()  # a wrong account key: env:
    wrong_pw = canary("wrong-mongo-password")
    secrets = [AZURITE_KEY, akid, aws_secret, http_token, wrong_token, mongo_pw, hook_secret,
               kv_app_secret, wrong_key, wrong_pw]

    sm = boto3.client("secretsmanager", endpoint_url=moto.endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    sm_name = unique("sweep/aws")
    sm.create_secret(Name=sm_name, SecretString=json.dumps({"secret_access_key": aws_secret}))
    kv_name = f"sweep-{uuid.uuid4().hex[:8]}"
    keyvault.vault.set_secret(kv_name, azurite.connection_string)  # holds AZURITE_KEY
    user = f"sweep{uuid.uuid4().hex[:8]}"
    MongoClient(secantus.uri).admin.command("createUser", user, pwd=mongo_pw, roles=["root"])
    host_port = secantus.uri.split("//", 1)[1].split("/", 1)[0]
    (secrets_dir / "mongo").write_text(
        f"mongodb://{user}:{mongo_pw}@{host_port}/?directConnection=true&retryWrites=false\n")
    (secrets_dir / "token").write_text(http_token + "\n")
    (secrets_dir / "wrong-mongo").write_text(
        f"mongodb://{user}:{wrong_pw}@{host_port}/?directConnection=true&retryWrites=false&"
        "serverSelectionTimeoutMS=3000\n")

    text = live.path.read_text()
    text = re.sub(r'connection_string = "[^"]*"',
                  f'connection_string = "keyvault://{keyvault.host}/{kv_name}"', text, count=1)
    text = text.replace('access_key_id = "test"', 'access_key_id = "env:CW_SWEEP_AKID"')
    text = text.replace('secret_access_key = "test"',
                        f'secret_access_key = "secretsmanager:{sm_name}#secret_access_key"')
    text = re.sub(r'documentdb_uri = "[^"]*"',
                  f'documentdb_uri = "file:{secrets_dir / "mongo"}"', text, count=1)
    assert "keyvault://" in text and "env:CW_SWEEP_AKID" in text and "file:" in text
    sec = kv_security(keyvault, kv_client)
    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    text += ("\n[security]\n" + "".join(f'{k} = "{v}"\n' for k, v in sec.items())
             + f'\n[tls]\nca_bundle = "{keyvault.ca_file}"\n'
             + f'\n[monitoring]\ninterval_s = 0.5\nhttp_token = "file:{secrets_dir / "token"}"\n'
             + 'webhook_url = "env:CW_SWEEP_HOOK"\n'
             + "\n[cutover]\nmax_lag_s = 30\nquiet_period_s = 1\ndrain_timeout_s = 90\n"
             + "probe_timeout_s = 60\n"
             + f'[cutover.approvers.alice]\npublic_key = "{alice.public}"\nrole = "platform"\n'
             + f'[cutover.approvers.bob]\npublic_key = "{bob.public}"\nrole = "security"\n')
    live.path.write_text(text)
    env = {**os.environ, "CROSSWIND_VERBOSE": "1", "CW_SWEEP_AKID": akid,
           "CW_KV_APP_SECRET": kv_app_secret, "CW_SWEEP_HOOK": f"{hook.url}/{hook_secret}",
           "CW_SWEEP_WRONG": azurite.connection_string.replace(AZURITE_KEY, wrong_key),
           # Secrets Manager itself is read with the default chain (the [aws] keys are in it)
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    for k in ("CW_SWEEP_AKID", "CW_KV_APP_SECRET", "CW_SWEEP_HOOK", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, env[k])  # the service child process inherits these
    monkeypatch.setenv("CROSSWIND_VERBOSE", "1")
    sweep = Sweep(live, env)

    for i in range(4):
        live.container.upload_blob(f"seed/{i}.json", b"{}", metadata={"Carrier": "FX"})
        live.put_rows(Entity("FX", f"s{i}", MappingProxyType({"n": Prop(Edm.INT64, i)})))

    # -- the runs -------------------------------------------------------------------------
    sweep.cli("preflight", "--direction", "both")
    sweep.cli("sync", "objects", "-d", "azure-to-aws")
    sweep.cli("sync", "metadata", "-d", "azure-to-aws")
    svc = services(live)
    st = svc.wait_until(lambda s: bool(s["service"]["http"]) and
                        s["last_reconcile"] is not None, what="the service up")
    url = st["service"]["http"]
    for i in range(4):
        live.put_blob(f"live/{i}.json", b'{"live": true}')
        live.put_rows(Entity("FX", f"l{i}", MappingProxyType({"n": Prop(Edm.INT64, i)})))
    svc.wait_until(lambda s: stream(s, "azure-blob-events")["applied"] >= 4
                   and len(live.documents()) == 8, what="replicated")
    live.queue.send_message("not an event: the DLQ grows, an alert goes to the webhook")
    for path in ("/api/status", "/metrics", "/healthz", "/", "/api/dashboard"):
        assert sweep.http(url + path, None) == 401
        assert sweep.http(url + path, wrong_token) == 401
        assert sweep.http(url + path, http_token) in (200, 503)
    st = svc.wait_until(lambda s: any(a["principal"].startswith("client ")
                                      for a in s["auth_failures"])
                        and (s["alerts"] or {}).get("firing"), what="refusals counted")
    refused = next(a for a in st["auth_failures"] if a["principal"].startswith("client "))
    assert refused["count"] == 10
    hook.wait(lambda b: any(x["status"] == "firing" for x in b))
    sweep.http(url + "/api/status", http_token)
    sweep.http(url + "/metrics", http_token)
    metrics = sweep.texts[f"GET {url}/metrics (token)"]
    assert re.search(r'crosswind_auth_failures_total\{endpoint="[^"]*",'
                     r'principal="client 127\.0\.0\.1"\} 10', metrics), metrics[-3000:]
    sweep.cli("validate", "--objects", "--metadata")
    plan = json.loads(sweep.cli("cutover", "plan", "--json", "--ack-dlq", "1").stdout)["plan_hash"]
    unapproved = sweep.cli("cutover", "start", "--plan", plan, ok=False)
    assert unapproved.returncode == 2 and "not approved" in unapproved.stderr
    for key in (alice, bob):
        sweep.cli("cutover", "approve", "--plan", plan, "--key", str(key.private))
    sweep.cli("cutover", "start", "--plan", plan, "--json", timeout=600)
    st = svc.wait_until(lambda s: s["direction"] == "aws-to-azure" and
                        bool(s["service"]["http"]), what="the service flipped")
    assert sweep.http(st["service"]["http"] + "/api/status", http_token) == 200
    assert svc.terminate() == 0
    sweep.texts["service log"] = svc.stderr()
    sweep.cli("status", "--json")
    sweep.cli("metrics", "--once")
    sweep.cli("audit", "export", "--out", str(tmp_path / "audit.jsonl"))
    sweep.cli("audit", "verify")

    # -- failing paths, each one line and its exit code --------------------------------------
    def variant(name: str, old: str, new: str) -> Path:
        p = tmp_path / f"{name}.toml"
        t = live.path.read_text()
        assert old in t
        p.write_text(t.replace(old, new).replace(
            f"state-{live.bucket}", f"state-{live.bucket}-{name}"))
        return p

    kv_ref = f'connection_string = "keyvault://{keyvault.host}/{kv_name}"'
    objects, rows = ("sync", "objects", "-d", "azure-to-aws"), ("sync", "metadata", "-d",
                                                                "azure-to-aws")
    # exit 3: a store refused (AuthError); exit 2: the config or a secret (SecretError)
    failing = {
        "wrong-key": (variant("wrong-key", kv_ref, 'connection_string = "env:CW_SWEEP_WRONG"'),
                      objects, 3),
        "missing-kv": (variant("missing-kv", kv_ref, kv_ref.replace(kv_name, "no-such")),
                       objects, 2),
        "wrong-mongo": (variant("wrong-mongo", str(secrets_dir / "mongo"),
                                str(secrets_dir / "wrong-mongo")), rows, 3),
        # (literal.toml holds the canary itself: left out of the search below)
        "literal": (variant("literal", f'http_token = "file:{secrets_dir / "token"}"',
                            f'http_token = "{http_token}"'), objects, 2),
    }
    for name, (cfg_path, args, code) in failing.items():
        r = sweep.cli(*args, config=cfg_path, ok=False)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
        assert r.returncode == code and len(lines) == 1, (name, r.returncode, r.stderr[-2000:])

    # -- the search -------------------------------------------------------------------------
    files = [p for p in tmp_path.rglob("*") if p.is_file() and secrets_dir not in p.parents
             and p.name != "literal.toml"]
    assert any(p.suffix == ".html" for p in files), "no HTML report was written"
    assert any(p.name.endswith(".db") or p.name.endswith(".sqlite") for p in files), \
        "no state database found"
    haystacks = {str(p): p.read_bytes().decode("latin-1") for p in files}
    haystacks.update(sweep.texts)
    haystacks.update({f"webhook POST {path}": json.dumps(body) + json.dumps(headers)
                      for path, headers, body in hook.posts})
    # the sweep can find what it looks for: each canary is where it was put
    assert http_token in (secrets_dir / "token").read_text()
    assert any(hook_secret in path for path, _, _ in hook.posts)  # the URL works ...
    assert leaks({"literal.toml": (tmp_path / "literal.toml").read_text()}, secrets) == [
        (http_token[:12] + "…", "literal.toml")]  # ... and so does the search
    found = leaks(haystacks, secrets)
    assert not found, found


def leaks(haystacks: dict[str, str], secrets: list[str]) -> list[tuple[str, str]]:
    return sorted({(s[:12] + "…", where) for s in secrets for form in forms(s)
                   for where, text in haystacks.items() if form in text})
