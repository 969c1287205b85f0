"""TLS is always verified, per client library: each emulator is put behind a
TLS-terminating proxy whose certificate comes from a throwaway ``trustme`` CA.
Without ``[tls] ca_bundle`` every client refuses the certificate; with it
every client accepts it: the Azure SDK (Blob, Tables, Queue), obstore (Azure
and S3 reads), aiobotocore (S3, SQS), the S3 streaming path (aiohttp), boto3
(Secrets Manager, STS, CloudWatch) and pymongo. (Key Vault's client is shown the
same in test_secret_providers.py.)

Every AWS client is given only ``[aws] endpoint_url`` (the proxy in front of
moto): that the accepted run reached that proxy shows each of them (S3, SQS,
Secrets Manager, STS, CloudWatch) uses the endpoint."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient
from botocore.exceptions import BotoCoreError

from crosswind.config import Config, parse_config
from crosswind.errors import CrosswindError
from crosswind.model import ObjectProps
from crosswind.rig.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto, Secantus
from crosswind.secrets import SecretSettings, configure, resolve
from crosswind.stores.azure_common import resolve_auth
from tests.integration.conftest import unique
from tests.tls_proxy import TlsProxy

pytestmark = pytest.mark.integration


@dataclass
class TlsRig:
    ca_file: Path
    #: "blob", "table", "queue", "moto", "mongo" -> a proxy speaking TLS 1.2/1.3 ...
    modern: dict[str, TlsProxy]
    #: ... and one speaking only TLS 1.1 (with the same trusted certificate)
    old: dict[str, TlsProxy]
    name: str
    secret: str
    #: the queue's path on the emulator (ACCOUNT/NAME)
    queue_path: str


@pytest.fixture(scope="module")
def tls_rig(azurite: Azurite, moto: Moto, secantus: Secantus,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRig]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    old_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(old_ctx)
    old_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    old_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    old_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 serves TLS 1.1 only at level 0
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ports = {"blob": azurite.blob_port, "table": azurite.table_port,
             "queue": azurite.queue_port, "moto": int(moto.endpoint.rsplit(":", 1)[1]),
             "mongo": int(secantus.uri.split(":")[2].split("/")[0])}
    modern = {k: TlsProxy(p, ctx).start() for k, p in ports.items()}
    old = {k: TlsProxy(p, old_ctx).start() for k, p in ports.items()}
    name = unique("tls").lower()
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        name).upload_blob("k.json", b"{}")
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(
        name.replace("-", ""))
    QueueServiceClient.from_connection_string(azurite.connection_string).create_queue(name)
    kw = {"endpoint_url": moto.endpoint, "region_name": "us-east-1",
          "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", **kw).create_bucket(Bucket=name)
    boto3.client("s3", **kw).put_object(Bucket=name, Key="k.json", Body=b"{}")
    url = boto3.client("sqs", **kw).create_queue(QueueName=name)["QueueUrl"]
    secret = f"{name}/secret"
    boto3.client("secretsmanager", **kw).create_secret(Name=secret,
                                                       SecretString="tls-secret-value-42")
    yield TlsRig(ca_file, modern, old, name, secret, url.replace(moto.endpoint, "").lstrip("/"))
    for p in (*modern.values(), *old.values()):
        p.stop()


def _config(r: TlsRig, tmp: Path, trusted: bool, old: bool = False) -> Config:
    return parse_config(_config_data(r, tmp, trusted, old), tmp)


def _config_data(r: TlsRig, tmp: Path, trusted: bool, old: bool = False) -> dict[str, Any]:
    px = r.old if old else r.modern
    cs = (f"DefaultEndpointsProtocol=https;AccountName={AZURITE_ACCOUNT};"
          f"AccountKey={AZURITE_KEY};BlobEndpoint={px['blob'].url}/{AZURITE_ACCOUNT};"
          f"TableEndpoint={px['table'].url}/{AZURITE_ACCOUNT};"
          f"QueueEndpoint={px['queue'].url}/{AZURITE_ACCOUNT};")
    data: dict[str, Any] = {
        "azure": {"connection_string": cs, "container": r.name,
                  "table": r.name.replace("-", ""), "queue": r.name, "emulator": True},
        "aws": {"bucket": r.name, "endpoint_url": px["moto"].url, "access_key_id": "test",
                "secret_access_key": "test", "emulator": True,
                "sqs_queue_url": f"{px['moto'].url}/{r.queue_path}",
                "documentdb_uri": f"mongodb://127.0.0.1:{px['mongo'].port}/?tls=true&"
                                  "directConnection=true&retryWrites=false&"
                                  "serverSelectionTimeoutMS=3000"},
        "state": {"dir": str(tmp / "state")},
    }
    if trusted:
        data["tls"] = {"ca_bundle": str(r.ca_file)}
    return data


async def azure_blob_sdk(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.azure_blob import AzureBlobStore

    store = AzureBlobStore(resolve_auth(cfg.azure), r.name)
    store.fast = None  # the SDK's reads only
    try:
        await store.check()
        body = b"tls"
        await store.put("t.bin", body, ObjectProps(),
                        md5=hashlib.md5(body, usedforsecurity=False).hexdigest())
    finally:
        await store.close()


async def azure_obstore(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.azure_blob import AzureBlobStore

    store = AzureBlobStore(resolve_auth(cfg.azure), r.name)
    try:
        assert store.fast is not None
        assert await (await store.get("k.json")).read_all() == b"{}"
    finally:
        await store.close()


async def azure_tables_sdk(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.azure_tables import open_table_store

    store = open_table_store(resolve_auth(cfg.azure), cfg.azure.table)
    try:
        await store.check()
    finally:
        await store.close()


async def azure_queue_sdk(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.factory import open_azure_event_queue

    q = await open_azure_event_queue(cfg)
    try:
        await q.check()
    finally:
        await q.close()


async def s3_aiobotocore(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.s3 import S3ObjectStore

    store = await S3ObjectStore.open(cfg.aws)
    try:
        assert (await store.head("k.json")).size == 2
    finally:
        await store.close()


async def s3_obstore(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.s3 import S3ObjectStore

    store = await S3ObjectStore.open(cfg.aws)
    try:
        assert [m.key async for m in store.list("")] == ["k.json"]
        assert await (await store.get("k.json")).read_all() == b"{}"
    finally:
        await store.close()


async def s3_aiohttp_stream(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.s3 import S3ObjectStore, s3_errors

    store = await S3ObjectStore.open(cfg.aws)
    try:
        body = b"streamed over tls"
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()

        async def chunks() -> Any:
            yield body

        with s3_errors("s3"):
            await store.http.put_object("streamed.bin", chunks(), len(body),
                                        {"Content-MD5": base64.b64encode(
                                            bytes.fromhex(md5)).decode()}, "s3")
    finally:
        await store.close()


async def sqs_aiobotocore(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.factory import open_sqs_event_queue

    q = await open_sqs_event_queue(cfg)
    try:
        await q.check()
    finally:
        await q.close()


async def secrets_manager_boto3(cfg: Config, r: TlsRig) -> None:
    assert resolve(f"secretsmanager:{r.secret}", where="w",
                   allow_literal=False).get_secret_value() == "tls-secret-value-42"


async def sts_boto3(cfg: Config, r: TlsRig) -> None:
    from crosswind.secrets.aws import caller_identity

    assert caller_identity(cfg.aws)["arn"].startswith("arn:aws:")


async def cloudwatch_boto3(cfg: Config, r: TlsRig) -> None:
    from crosswind.observability.aws import client

    assert "Metrics" in client(cfg.aws, "cloudwatch").list_metrics(Namespace="CrosswindTls")


async def documentdb_pymongo(cfg: Config, r: TlsRig) -> None:
    from crosswind.stores.documentdb import DocumentDBStore

    store = DocumentDBStore.open(cfg.aws)
    try:
        await store.check()
    finally:
        await store.close()


CLIENTS: dict[str, Callable[[Config, TlsRig], Awaitable[None]]] = {
    "azure-sdk blob": azure_blob_sdk, "obstore azure": azure_obstore,
    "azure-sdk tables": azure_tables_sdk, "azure-sdk queue": azure_queue_sdk,
    "aiobotocore s3": s3_aiobotocore, "obstore s3": s3_obstore,
    "aiohttp s3 stream": s3_aiohttp_stream, "aiobotocore sqs": sqs_aiobotocore,
    "boto3 secretsmanager": secrets_manager_boto3, "boto3 sts": sts_boto3,
    "boto3 cloudwatch": cloudwatch_boto3, "pymongo documentdb": documentdb_pymongo,
}
#: the proxy each client must reach (through its endpoint setting alone)
PROXY = {"azure-sdk blob": "blob", "obstore azure": "blob", "azure-sdk tables": "table",
         "azure-sdk queue": "queue", "pymongo documentdb": "mongo"}
REFUSED = (CrosswindError, OSError, BotoCoreError)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_untrusted_refused_configured_ca_accepted(client: str, tls_rig: TlsRig,
                                                  tmp_path: Path) -> None:
    fn = CLIENTS[client]
    untrusted = _config(tls_rig, tmp_path, trusted=False)
    configure(untrusted)
    with pytest.raises(REFUSED) as e:
        asyncio.run(fn(untrusted, tls_rig))
    text = str(e.value).lower()
    assert any(w in text for w in ("certificate", "ssl", "tls", "unknownissuer",
                                   "cannot reach", "handshake")), text
    trusted = _config(tls_rig, tmp_path, trusted=True)
    configure(trusted)
    proxy = tls_rig.modern[PROXY.get(client, "moto")]
    before = proxy.connections
    try:
        asyncio.run(fn(trusted, tls_rig))
    finally:
        configure(SecretSettings())
    assert proxy.connections > before, f"{client} did not go through its configured endpoint"


@pytest.mark.parametrize("client", list(CLIENTS))
def test_tls_older_than_1_2_is_refused(client: str, tls_rig: TlsRig, tmp_path: Path) -> None:
    # The certificate is trusted; only the protocol version is too old.
    cfg = _config(tls_rig, tmp_path, trusted=True, old=True)
    configure(cfg)
    try:
        with pytest.raises(REFUSED) as e:
            asyncio.run(CLIENTS[client](cfg, tls_rig))
    finally:
        configure(SecretSettings())
    text = str(e.value).lower()
    assert any(w in text for w in ("protocol", "version", "ssl", "tls", "handshake",
                                   "cannot reach")), text


@pytest.mark.parametrize("case", ["untrusted certificate", "TLS 1.1"])
def test_the_cli_refuses_in_one_line_with_exit_3(case: str, tls_rig: TlsRig,
                                                  tmp_path: Path) -> None:
    data = _config_data(tls_rig, tmp_path, trusted=case != "untrusted certificate",
                        old=case == "TLS 1.1")
    # TOML from plain strings and booleans: JSON's literals are TOML's
    path = tmp_path / "tls.toml"
    path.write_text("".join(f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                       for k, v in values.items())
                            for section, values in data.items()))
    r = subprocess.run([sys.executable, "-m", "crosswind", "sync", "objects", "-d",
                        "azure-to-aws", "-c", str(path)], capture_output=True, text=True,
                       timeout=300)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert r.returncode == 3 and len(errors) == 1, (r.returncode, r.stderr[-2000:])
    assert any(w in errors[0].lower() for w in ("certificate", "ssl", "tls", "protocol")), \
        errors[0]
