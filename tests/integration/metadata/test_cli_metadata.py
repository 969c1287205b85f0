"""The metadata commands as an operator runs them: `python -m crosswind ...`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.entities import Edm, Entity, Prop
from crosswind.rig.emulators import Azurite, free_port
from tests.integration.metadata.conftest import DEMO_KEYS, MetaEnv, meta_config
from tests.integration.test_cli_errors import assert_clean_error, cli

pytestmark = pytest.mark.integration
GOOD = "events/2026/11/26/AA1234/DFW-LAX/departure-{}.json"


def row(pk: str, rk: str, **props: Prop) -> Entity:
    return Entity(pk, rk, MappingProxyType(props))


def run_json(*args: str, code: int = 0) -> dict[str, Any]:
    """In-process (the CLI's start-up costs a second a call on a busy machine);
    the subprocess runs in ``test_bad_input_is_one_clear_line`` cover the real thing."""
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def run_text(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def test_sync_dlq_and_conflict_commands(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    c = str(env.config_path)
    env.put_many([row("p", f"r{i}", v=Prop(Edm.INT32, i)) for i in range(10)])
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "poison", "_cw": "reserved"})
    report = run_json("sync", "metadata", "-c", c, "-d", "azure-to-aws", code=1)
    assert report["kind"] == "sync-metadata" and report["status"] == "failed"
    assert report["written"] == 10 and report["failed"] == 1
    saved = env.config.state_dir / "reports" / f"sync-metadata-{report['run_id']}.json"
    assert json.loads(saved.read_text())["written"] == 10
    # the DLQ, as an operator sees it
    listing = run_json("dlq", "list", "-c", c)
    [item] = listing["items"]
    assert item["item"] == "p/poison" and item["kind"] == "unmappable"
    shown = run_json("dlq", "show", "-c", c, str(item["id"]))
    assert shown["payload"]["properties"]["_cw"]["value"] == "reserved"
    code, text = run_text("dlq", "replay", "-c", c, str(item["id"]))
    assert code == 1 and "still failing 1" in text
    env.table.upsert_entity({"PartitionKey": "p", "RowKey": "poison", "cw": "renamed"},
                            mode="replace")
    replayed = run_json("dlq", "replay", "-c", c, "--all")
    assert replayed["resolved_ids"] == [item["id"]]
    assert run_json("dlq", "list", "-c", c)["items"] == []
    assert len(run_json("dlq", "list", "-c", c, "--status", "resolved")["items"]) == 1
    code, text = run_text("dlq", "purge", "-c", c, "--all")
    assert code == 2 and "add --yes" in text
    assert run_json("dlq", "purge", "-c", c, "--resolved")["purged"] == 1
    # a dry run plans, writes nothing
    env.put_rows(row("p", "new"))
    dry = run_json("sync", "metadata", "-c", c, "-d", "azure-to-aws", "--dry-run")
    assert dry["would_write"]["count"] == 1 and ("p", "new") not in env.documents()
    # the way back: a conflict, listed, shown, resolved
    run_json("sync", "metadata", "-c", c, "-d", "azure-to-aws")
    back = run_json("sync", "metadata", "-c", c, "-d", "aws-to-azure")
    assert back["mode"] == "changes" and back["change_stream"]["reconciles"]
    env.put_rows(row("p", "r1", v=Prop(Edm.INT32, -1)))
    env.coll.update_one({"_id": "p/r1"}, {"$set": {"v": 1000}})
    back = run_json("sync", "metadata", "-c", c, "-d", "aws-to-azure")
    assert back["conflicts"] == 1
    [conflict] = run_json("conflicts", "list", "-c", c)["conflicts"]
    both = run_json("conflicts", "show", "-c", c, str(conflict["id"]))
    assert both["azure_version"]["properties"]["v"]["value"] == -1
    assert both["aws_version"]["properties"]["v"]["value"] == 1000
    run_json("conflicts", "resolve", "-c", c, str(conflict["id"]), "--keep", "aws")
    assert env.azure_rows()[("p", "r1")].properties["v"].value == 1000
    assert run_json("conflicts", "list", "-c", c)["conflicts"] == []


def test_keys_parse_and_check(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    c = str(env.config_path)
    good = GOOD.format(uuid.uuid4())
    parsed = run_json("keys", "parse", good, "-c", c)
    [r] = parsed["results"]
    assert r["ok"] and r["partition_key"] == "AA1234_20261126"
    assert r["fields"]["flight"] == 1234 and r["fields"]["date"] == "2026-11-26"
    code, text = run_text("keys", "parse", "events/2026/11/26/AA1234/DFW-LAX/nohyphen.json",
                          "-c", c)
    assert code == 1 and "literal '-' at offset" in text
    code, text = run_text("keys", "parse", "x/1", "--pattern", "x/{n:int}", "--partition-key",
                          "{n}", "--row-key", "r")
    assert code == 0 and "PartitionKey = '1'" in text
    for name in (good, GOOD.format("b"), "events/2026/11/26/AA1234/DFWLAX/x-y.json",
                 "readme.txt"):
        env.container.upload_blob(name, b"{}")
    checked = run_json("keys", "check", "-c", c, "--side", "azure", code=1)
    assert checked["checked"] == 4 and checked["failed"] == 2
    assert checked["failed_by_segment"] == {"literal '-'": 1, "literal 'events/'": 1}
    assert run_json("keys", "check", "-c", c, "--limit", "2", code=0)["limit_reached"] is True


def test_object_driven_mode_from_the_cli(make_meta_env: Callable[..., MetaEnv]) -> None:
    env = make_meta_env()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i in ids:
        env.container.upload_blob(GOOD.format(i), b"{}")
    env.container.upload_blob("events/bad-name.json", b"{}")
    env.put_many([row("AA1234_20261126", i) for i in ids[:2]])
    r = run_json("sync", "metadata", "-c", str(env.config_path), "-d", "azure-to-aws",
                 "--mode", "objects", "--objects", "listing", code=1)
    assert r["objects"] == {"read": 4, "bad_names": 1, "missing_rows": 1}
    assert r["written"] == 2


def test_bad_input_is_one_clear_line(make_meta_env: Callable[..., MetaEnv], azurite: Azurite,
                                     table_service: TableServiceClient, tmp_path: Path) -> None:
    env = make_meta_env()
    c = str(env.config_path)
    assert_clean_error(cli("sync", "metadata", "-c", c, "-d", "azure-to-aws", "--since",
                           "yesterday"), 2, "--since 'yesterday' is not an ISO 8601")
    assert_clean_error(cli("sync", "metadata", "-c", c, "-d", "aws-to-azure", "--mode",
                           "objects"), 2, "--mode objects is for azure-to-aws")
    assert_clean_error(cli("sync", "metadata", "-c", c, "-d", "aws-to-azure", "--since",
                           "2026-01-01"), 2, "--since is for azure-to-aws")
    assert_clean_error(cli("dlq", "show", "-c", c, "999"), 2, "no DLQ entry with id 999")
    assert_clean_error(cli("keys", "parse", "x"), 2, "give --config")
    no_table = tmp_path / "no-table.toml"
    no_table.write_text(env.config_path.read_text().replace(
        f'table = "{env.config.azure.table}"\n', ""))
    assert_clean_error(cli("sync", "metadata", "-c", str(no_table), "-d", "azure-to-aws"), 2,
                       "[azure].table is required")
    bad_keys = tmp_path / "bad-keys.toml"
    bad_keys.write_text(env.config_path.read_text().replace("{flight:int}", "{flight:int"))
    assert_clean_error(cli("keys", "parse", "x", "-c", str(bad_keys)), 2, "[keys] pattern:")
    # a password in a literal URI is refused, and never printed
    pw = "hunter2-" + uuid.uuid4().hex
    literal = tmp_path / "literal.toml"
    literal.write_text(meta_config(azurite, f"mongodb://u:{pw}@db.example.com:27017/?tls=true",
                                   "lit", keys=DEMO_KEYS).replace(
                                       "emulator = true\n\n[state]", "emulator = false\n\n[state]"))
    assert_clean_error(cli("sync", "metadata", "-c", str(literal), "-d", "azure-to-aws"), 2,
                       "literal password is refused", secrets=(pw,))
    # an unreachable server, with the password behind a reference: exit 3, no secret shown
    port = free_port()
    by_ref = tmp_path / "ref.toml"
    by_ref.write_text(meta_config(azurite, "env:CW_TEST_DOCDB_URI", "ref"))
    assert_clean_error(cli("sync", "metadata", "-c", str(by_ref), "-d", "azure-to-aws"), 2,
                       "environment variable CW_TEST_DOCDB_URI is not set")
    assert_clean_error(cli("sync", "metadata", "-c", str(by_ref), "-d", "azure-to-aws",
                           env={"CW_TEST_DOCDB_URI": "mongodb://127.0.0.1:1/"}), 3,
                       "table 'ref' does not exist")
    table_service.create_table_if_not_exists("ref")
    uri = f"mongodb://u:{pw}@127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500"
    p = cli("sync", "metadata", "-c", str(by_ref), "-d", "azure-to-aws",
            env={"CW_TEST_DOCDB_URI": uri})
    assert_clean_error(p, 3, "cannot reach the server", secrets=(pw,))


def test_no_delete_is_refused_for_aws_to_azure(tmp_path: Path) -> None:
    cfg = tmp_path / "cw.toml"
    cfg.write_text('[azure]\nconnection_string = "env:X"\ncontainer = "c"\n[aws]\nbucket = "b"\n')
    p = cli("sync", "metadata", "--config", str(cfg), "--direction", "aws-to-azure",
            "--no-delete")
    assert_clean_error(p, 2, "--no-delete is for azure-to-aws")


def test_documentdb_uri_options_that_cannot_work_are_config_errors(
    azurite: Azurite, tmp_path: Path,
) -> None:
    """A URI naming a TLS file that is missing or unusable, or switching TLS
    verification off, is a one-line config error (exit 2) naming the setting,
    never "internal error" (exit 70); the password behind the reference is never shown."""
    pw = "hunter2-" + uuid.uuid4().hex
    cfg = tmp_path / "tls.toml"
    cfg.write_text(meta_config(azurite, "env:CW_TEST_DOCDB_URI", "tls"))
    host = f"mongodb://u:{pw}@docdb.example.com:27017/?tls=true&retryWrites=false"
    missing = tmp_path / "no-such-dir" / "global-bundle.pem"
    p = cli("sync", "metadata", "-c", str(cfg), "-d", "aws-to-azure",
            env={"CW_TEST_DOCDB_URI": f"{host}&tlsCAFile={missing}"})
    assert_clean_error(p, 2, "[aws].documentdb_uri", "tlsCAFile", str(missing), secrets=(pw,))
    not_a_cert = tmp_path / "not-a-cert.pem"
    not_a_cert.write_text("hello\n")
    for uri, needle in [
        (f"{host}&tlsCertificateKeyFile={missing}", "tlsCertificateKeyFile"),
        (f"{host}&tlsCAFile={not_a_cert}", "tlsCAFile"),
        (f"{host}&tlsCertificateKeyFile={not_a_cert}", "tlsCertificateKeyFile"),
        (f"{host}&tlsAllowInvalidCertificates=true", "tlsAllowInvalidCertificates"),
        (f"{host}&tlsInsecure=true", "tlsInsecure"),
        (host.replace("tls=true", "tls=maybe"), "tls"),
        (f"{host}&authMechanism=GSSAPI&authSource=admin", "authentication source"),
        (host.replace("docdb.example.com", ""), "no host"),
    ]:
        result = CliRunner().invoke(app, ["sync", "metadata", "-c", str(cfg), "-d",
                                          "aws-to-azure"], env={"CW_TEST_DOCDB_URI": uri})
        options = uri[len(host):] or uri
        text = result.stdout + result.stderr
        assert result.exit_code == 2, (options, text)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (options, result.stderr)
        assert "[aws].documentdb_uri" in text and needle in text, (options, text)
        assert pw not in text and "Traceback" not in text


def test_connection_strings_that_cannot_work_are_config_errors(tmp_path: Path) -> None:
    """The same class for the Azure side: an endpoint that is not an http(s) URL
    (was "cannot reach the endpoint", exit 3, or an internal error, exit 70) or an
    account key that is not base64 (was "credentials rejected", exit 3): exit 2."""
    cfg = tmp_path / "cs.toml"
    cfg.write_text('[azure]\nconnection_string = "env:CW_TEST_CS"\ncontainer = "c"\n'
                   'table = "t"\n[aws]\nbucket = "b"\ndocumentdb_uri = "env:CW_TEST_DB"\n'
                   'database = "d"\ncollection = "c"\n')
    key = "aGVsbG8gd29ybGQ="
    for cs, needle in [
        (f"AccountName=a;AccountKey={key};TableEndpoint=ftp://x", "TableEndpoint: 'ftp://x'"),
        (f"AccountName=a;AccountKey={key};TableEndpoint=https://[::1", "TableEndpoint"),
        ("AccountName=a;AccountKey=not-base64!!;EndpointSuffix=core.windows.net",
         "account key is not valid base64"),
    ]:
        result = CliRunner().invoke(app, ["sync", "metadata", "-c", str(cfg), "-d",
                                          "azure-to-aws"],
                                    env={"CW_TEST_CS": cs, "CW_TEST_DB": "mongodb://127.0.0.1:1/"})
        text = result.stdout + result.stderr
        assert result.exit_code == 2, (cs, text)
        assert needle in result.stderr and "[azure].connection_string" in result.stderr, text
        assert "not-base64" not in text and key not in text
