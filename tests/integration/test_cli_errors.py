"""The CLI on bad input: one clear line, a non-zero exit code, no traceback, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from crosswind.rig.emulators import AZURITE_KEY, Azurite, Moto, free_port

pytestmark = pytest.mark.integration

FAKE_KEY = "ZmFrZS1rZXktdGhhdC1tdXN0LW5ldmVyLWJlLXByaW50ZWQtYW55d2hlcmU="


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crosswind", *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_clean_error(p: subprocess.CompletedProcess[str], code: int, *needles: str,
                       secrets: tuple[str, ...] = ()) -> None:
    text = p.stdout + p.stderr
    assert p.returncode == code, text
    assert "Traceback" not in text
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr
    for s in secrets:
        assert s not in text


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "cw.toml"
    p.write_text(textwrap.dedent(body))
    return p


def base(azure: str, aws: str) -> str:
    return f"[azure]\n{textwrap.dedent(azure)}\n[aws]\n{textwrap.dedent(aws)}\n"


def test_bad_toml(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[azure\ncontainer = 1\n")
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws")
    assert_clean_error(p, 2, "not valid TOML")


def test_missing_and_unknown_settings(tmp_path: Path) -> None:
    cfg = write(tmp_path, base('container = "c"\nconnection_string = "env:X"\n',
                               'region = "us-east-1"\nbuckett = "typo"\n'))
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws")
    assert_clean_error(p, 2, "[aws].bucket is required", "[aws].buckett is not a known setting")


def test_missing_config_file(tmp_path: Path) -> None:
    p = cli("sync", "objects", "--config", str(tmp_path / "nope.toml"), "--direction",
            "azure-to-aws")
    assert_clean_error(p, 2, "cannot read config")


def test_missing_secret_reference(tmp_path: Path) -> None:
    cfg = write(tmp_path, base('container = "c"\nconnection_string = "env:CW_TEST_UNSET_VAR"\n',
                               'bucket = "b"\n'))
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws",
            env={"CW_TEST_UNSET_VAR": ""})
    assert_clean_error(p, 2, "[azure].connection_string", "CW_TEST_UNSET_VAR is not set")


def test_literal_secret_refused_without_emulator(tmp_path: Path) -> None:
    cs = f"AccountName=acct;AccountKey={FAKE_KEY};EndpointSuffix=core.windows.net"
    cfg = write(tmp_path, base(f'container = "c"\nconnection_string = "{cs}"\n',
                               'bucket = "b"\n'))
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws")
    assert_clean_error(p, 2, "literal secret is refused", secrets=(FAKE_KEY,))


def test_plain_http_needs_loopback_emulator(tmp_path: Path) -> None:
    cfg = write(tmp_path, base('container = "c"\nconnection_string = "env:X"\n',
                               'bucket = "b"\nendpoint_url = "http://s3.example.com"\n'))
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws")
    assert_clean_error(p, 2, "plain http is allowed only for a loopback emulator")


@pytest.fixture(scope="module")
def strict_moto() -> Iterator[Moto]:
    """A moto server that checks credentials (its IAM emulation is on)."""
    m = Moto(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()
    yield m
    m.stop()


def estate(azurite: Azurite, moto: Moto, blob_service: Any, s3_client: Any,
           tmp_path: Path, *, azure: str | None = None, aws: str | None = None) -> Path:
    from tests.integration.conftest import unique

    name = unique("cwe")
    blob_service.create_container(name)
    s3_client.create_bucket(Bucket=name)
    azure = azure or (f'connection_string = "env:CW_TEST_AZ"\ncontainer = "{name}"\n'
                      'emulator = true\n')
    aws = aws or (f'bucket = "{name}"\nendpoint_url = "{moto.endpoint}"\n'
                  'access_key_id = "test"\nsecret_access_key = "test"\nemulator = true\n')
    return write(tmp_path, base(azure, aws) + f'[state]\ndir = "{tmp_path / "state"}"\n')


def test_wrong_azure_key_is_one_line_without_the_key(
    azurite: Azurite, moto: Moto, blob_service: Any, s3_client: Any, tmp_path: Path
) -> None:
    cfg = estate(azurite, moto, blob_service, s3_client, tmp_path)
    bad = azurite.connection_string.replace(AZURITE_KEY, FAKE_KEY)
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws",
            env={"CW_TEST_AZ": bad})
    assert_clean_error(p, 3, "credentials rejected", secrets=(FAKE_KEY,))


def test_wrong_aws_keys(
    azurite: Azurite, moto: Moto, strict_moto: Moto, blob_service: Any, s3_client: Any,
    tmp_path: Path,
) -> None:
    aws = (f'bucket = "whatever"\nendpoint_url = "{strict_moto.endpoint}"\n'
           'access_key_id = "env:CW_TEST_AK"\nsecret_access_key = "env:CW_TEST_SK"\n'
           'emulator = true\n')
    cfg = estate(azurite, moto, blob_service, s3_client, tmp_path, aws=aws)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNOTAREALKEY"
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws",
            env={"CW_TEST_AZ": azurite.connection_string, "CW_TEST_AK": "AKIAWRONGWRONGWRONG",
                 "CW_TEST_SK": secret})
    assert_clean_error(p, 3, "s3://whatever", "credentials rejected", secrets=(secret,))


def test_unreachable_endpoints(
    azurite: Azurite, moto: Moto, blob_service: Any, s3_client: Any, tmp_path: Path
) -> None:
    dead = free_port()  # nothing listens here
    aws = (f'bucket = "b"\nendpoint_url = "http://127.0.0.1:{dead}"\n'
           'access_key_id = "test"\nsecret_access_key = "test"\nemulator = true\n')
    cfg = estate(azurite, moto, blob_service, s3_client, tmp_path, aws=aws)
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws",
            env={"CW_TEST_AZ": azurite.connection_string})
    assert_clean_error(p, 3, "cannot reach the endpoint")

    cs = azurite.connection_string.replace(str(azurite.blob_port), str(dead))
    cfg = estate(azurite, moto, blob_service, s3_client, tmp_path)
    p = cli("sync", "objects", "--config", str(cfg), "--direction", "azure-to-aws",
            env={"CW_TEST_AZ": cs})
    assert_clean_error(p, 3, "cannot reach the endpoint", secrets=(AZURITE_KEY,))


@pytest.mark.parametrize("case", ["expired", "read-only-destination"])
def test_sas_checked_before_the_run(
    case: str, azurite: Azurite, moto: Moto, blob_service: Any, s3_client: Any, tmp_path: Path
) -> None:
    from tests.integration.conftest import unique

    name = unique("cws")
    blob_service.create_container(name)
    expired = case == "expired"
    sas = generate_container_sas(
        "devstoreaccount1", name, account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + (timedelta(hours=-1) if expired else timedelta(hours=1)),
    )
    azure = (f'account_url = "{azurite.blob_url}"\ncredential = "env:CW_TEST_SAS"\n'
             f'container = "{name}"\nemulator = true\n')
    cfg = estate(azurite, moto, blob_service, s3_client, tmp_path, azure=azure)
    direction = "azure-to-aws" if expired else "aws-to-azure"
    p = cli("sync", "objects", "--config", str(cfg), "--direction", direction,
            env={"CW_TEST_SAS": sas})
    sig = next(part for part in sas.split("&") if part.startswith("sig="))[4:]
    if expired:
        assert_clean_error(p, 3, "SAS token is refused: it expired", secrets=(sig,))
    else:
        assert_clean_error(p, 3, "lacks permission", secrets=(sig,))


def test_help_shows_no_secrets() -> None:
    p = cli("sync", "objects", "--help", env={"AZURE_STORAGE_CONNECTION_STRING":
                                             f"AccountKey={FAKE_KEY}"})
    assert p.returncode == 0 and "--direction" in p.stdout
    assert FAKE_KEY not in p.stdout + p.stderr


def test_no_aws_credentials_anywhere(
    azurite: Azurite, moto: Moto, blob_service: Any, s3_client: Any, tmp_path: Path
) -> None:
    aws = f'bucket = "b"\nendpoint_url = "{moto.endpoint}"\nemulator = true\n'
    cfg = estate(azurite, moto, blob_service, s3_client, tmp_path, aws=aws)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"CW_TEST_AZ": azurite.connection_string, "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"})
    p = subprocess.run([sys.executable, "-m", "crosswind", "sync", "objects", "--config",
                        str(cfg), "--direction", "azure-to-aws"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert_clean_error(p, 3, "no AWS credentials")
