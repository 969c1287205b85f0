"""Governance on the rig: validation before write of objects (reject, the DLQ,
a replay after a schema change), OpenLineage events of real runs (file
transport, checked against the OpenLineage JSON Schemas and openlineage-python's
event model), the HTTP transport against a local receiver (Marquez's API
shape), the Glue mirror on moto, and the catalog export."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.config import load_config
from crosswind.governance.lineage import Lineage, Stats, open_sink
from crosswind.governance.naming import objects_dataset
from crosswind.governance.registry import Registry
from crosswind.governance.stewardship import Stewardship
from crosswind.governance.subjects import builtin_schema
from crosswind.rig.emulators import Moto
from crosswind.state import StateStore
from tests.integration.conftest import Env
from tests.lineage_model import check_event

pytestmark = pytest.mark.integration

GOVERNANCE = """
[governance]
enforce = "reject"
domain = "ADL"
steward = "ana.steward@example.com"
owner = "flight-ops"
flow_id = 26
"""
KEY = "events/2026/11/26/AA{:04d}/DFW-LAX/departure-{:08d}-0000-0000-0000-000000000000.json"


def invoke(*args: str, code: int | None = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    if code is not None:
        assert result.exit_code == code, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def s3_keys(env: Env) -> set[str]:
    listed = env.s3.list_objects_v2(Bucket=env.bucket)  # type: ignore[attr-defined]
    return {o["Key"] for o in listed.get("Contents", [])}


def events(env: Env) -> list[dict[str, Any]]:
    path = env.config.state_dir / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_objects_rejected_then_replayed_and_the_run_in_lineage(make_env: Callable[..., Env]
                                                                ) -> None:
    env = make_env(extra=GOVERNANCE)
    c = str(env.config_path)
    state = StateStore(env.config.state_dir)
    try:
        Registry(state).register("object-metadata", builtin_schema("object-metadata"))
    finally:
        state.close()
    from azure.storage.blob import ContentSettings

    json_type = ContentSettings(content_type="application/json")
    for i in range(4):
        env.container.upload_blob(KEY.format(i, i), b'{"ok": true}', content_settings=json_type,
                                  metadata={"EventType": "departure", "Carrier": "AA",
                                            "SourceSystem": "FXIP"})
    bad = KEY.format(9, 9)
    env.container.upload_blob(bad, b'{"bad": true}', content_settings=json_type,
                              metadata={"EventType": "departure", "Carrier": "aa1"})
    report = invoke("sync", "objects", "-c", c, "-d", "azure-to-aws", code=1)
    assert report["copied"]["count"] == 4 and report["failed"]["count"] == 1
    assert report["failures"][0]["kind"] == "SchemaRejected"
    sv = report["schema_validation"]
    assert (sv["checked"], sv["rejected"]) == (5, 1)
    assert sv["examples"][0] == {"item": bad, "subject": "object-metadata", "version": 1,
                                 "path": "$.metadata.carrier", "rule": "pattern",
                                 "message": "'aa1' does not match '^[A-Z0-9]{2}$'"}
    assert report["stewardship"] == {"domain": "ADL", "steward": "ana.steward@example.com",
                                     "owner": "flight-ops", "flow_id": "26"}
    assert bad not in s3_keys(env) and len(s3_keys(env)) == 4
    [item] = invoke("dlq", "list", "-c", c, "--kind", "schema")["items"]
    assert item["item"] == bad and item["item_kind"] == "object-key"
    # the counts as metrics (crosswind metrics reads the runs' reports)
    m = metrics(c)
    run = {("mode", "oneshot"), ("direction", "azure-to-aws"), ("subject", "object-metadata")}
    assert m[("crosswind_schema_checks_total", frozenset({*run, ("outcome", "passed")}))] == 4
    assert m[("crosswind_schema_checks_total", frozenset({*run, ("outcome", "rejected")}))] == 1
    assert m[("crosswind_schema_rejections_total", frozenset(run))] == 1
    assert m[("crosswind_dlq_entries", frozenset({("kind", "schema")}))] == 1
    assert m[("crosswind_governance_info", frozenset({
        ("domain", "ADL"), ("steward", "ana.steward@example.com"), ("owner", "flight-ops"),
        ("flow_id", "26"), ("enforce", "reject"), ("lineage", "file")}))] == 1
    # the lineage of that run: START then COMPLETE, Azure Blob in, S3 out
    evs = events(env)
    assert [e["eventType"] for e in evs] == ["START", "COMPLETE"]
    for e in evs:
        check_event(e)
    start, done = evs
    assert start["run"]["runId"] == done["run"]["runId"]
    assert done["job"] == {**done["job"], "namespace": "crosswind",
                           "name": "sync-objects.azure-to-aws"}
    [src] = done["inputs"]
    [dst] = done["outputs"]
    container = env.config.azure.container
    assert src["namespace"] == f"wasbs://{container}@devstoreaccount1.dfs.core.windows.net"
    assert src["name"] == "/"
    assert (dst["namespace"], dst["name"]) == (f"s3://{env.bucket}", "/")
    assert dst["outputFacets"]["outputStatistics"]["rowCount"] == 4
    assert dst["facets"]["version"]["datasetVersion"] == "object-metadata:v1"
    assert {f["name"] for f in dst["facets"]["schema"]["fields"]} >= {"key", "metadata"}
    tags = {t["key"]: t["value"] for t in done["job"]["facets"]["tags"]["tags"]}
    assert tags == {"domain": "ADL", "steward": "ana.steward@example.com",
                    "owner": "flight-ops", "flow_id": "26"}
    owners = done["job"]["facets"]["ownership"]["owners"]
    assert owners == [{"name": "flight-ops", "type": "OWNER"},
                      {"name": "ana.steward@example.com", "type": "STEWARD"}]
    # a version without the carrier pattern lets the object through on replay
    relaxed = copy.deepcopy(builtin_schema("object-metadata"))
    relaxed["properties"]["metadata"]["properties"]["carrier"] = {"type": "string"}
    code = CliRunner().invoke(app, ["schema", "check", "-c", c, "--subject", "object-metadata",
                                    "--schema", _write(env.tmp / "v2.json", relaxed)])
    assert code.exit_code == 0, code.output
    invoke("schema", "register", "-c", c, "--subject", "object-metadata", "--schema",
           str(env.tmp / "v2.json"))
    replay = invoke("dlq", "replay", "-c", c, "--all")
    assert replay["resolved_ids"] == [item["id"]]
    assert bad in s3_keys(env)


def metrics(c: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    result = CliRunner().invoke(app, ["metrics", "-c", c, "--once"])
    assert result.exit_code == 0, result.output
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(result.stdout) for s in f.samples}


def _write(path: Path, doc: Any) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_validation_and_status_carry_stewardship_and_quality(make_env: Callable[..., Env]
                                                             ) -> None:
    env = make_env(extra=GOVERNANCE.replace('"reject"', '"warn"'))
    c = str(env.config_path)
    env.container.upload_blob("a.json", b"{}")
    invoke("sync", "objects", "-c", c, "-d", "azure-to-aws")
    html = env.tmp / "v.html"
    report = invoke("validate", "-c", c, "--objects", "--full", "--html", str(html))
    assert report["stewardship"]["steward"] == "ana.steward@example.com"
    assert "steward ana.steward@example.com" in html.read_text()
    done = [e for e in events(env) if e["job"]["name"] == "validate.azure-to-aws"]
    assert [e["eventType"] for e in done] == ["START", "COMPLETE"]
    check_event(done[1])
    [about] = [d for d in done[1]["inputs"] if d["inputFacets"]]
    assert about["namespace"] == f"s3://{env.bucket}"
    q = about["inputFacets"]
    assert q["dataQualityMetrics"]["rowCount"] == 1
    assert [a["success"] for a in q["dataQualityAssertions"]["assertions"]] == [True, True]
    status = invoke("status", "-c", c)
    assert status["governance"]["stewardship"]["flow_id"] == "26"
    # the catalog: datasets, schemas, lineage, quality
    cat = invoke("catalog", "export", "-c", c, "--out", str(env.tmp / "catalog"))
    assert cat["flow"]["name"].startswith("Flow 26")
    assert cat["quality"]["history"][0]["verdict"] == "pass"
    assert {r["job"] for r in cat["lineage"]["recent_runs"]} == {
        "sync-objects.azure-to-aws", "validate.azure-to-aws"}
    md = (env.tmp / "catalog" / "catalog.md").read_text()
    assert "```mermaid" in md and "| ADL | ana.steward@example.com | flight-ops | 26 |" in md


# -- HTTP transport ------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.got.append((self.path, dict(self.headers), body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_transport_posts_marquez_shaped_events(receiver: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGE_TOKEN", "s3cr3t-token")
    cfg_path = tmp_path / "cw.toml"
    cfg_path.write_text(f"""
[azure]
connection_string = "env:NOT_SET_HERE"
container = "flight-events"
[aws]
bucket = "nxop-flight-events"
[governance]
lineage = "http"
lineage_url = "{receiver}"
lineage_api_key = "env:LINEAGE_TOKEN"
domain = "ADL"
flow_id = "26"
""")
    cfg = load_config(cfg_path)
    lineage = Lineage(open_sink(cfg), stewardship=Stewardship.from_config(cfg))
    out = objects_dataset(cfg, "aws")
    run = lineage.run("sync-objects.azure-to-aws", inputs=[objects_dataset(cfg, "azure")],
                      outputs=[out], job_type="SYNC", description="test")
    run.start()
    run.finish("failed", "an endpoint went away", stats={out.uri: Stats(rows=3, bytes=12)})
    lineage.close()
    assert [p for p, _, _ in Receiver.got] == ["/api/v1/lineage", "/api/v1/lineage"]
    assert Receiver.got[0][1]["Authorization"] == "Bearer s3cr3t-token"
    assert Receiver.got[0][1]["Content-Type"] == "application/json"
    start, fail = (body for _, _, body in Receiver.got)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    for body in (start, fail):
        check_event(body)
    assert fail["run"]["facets"]["errorMessage"]["message"] == "an endpoint went away"
    assert fail["inputs"][0]["namespace"] == "wasbs://flight-events@unresolved.dfs.core.windows.net"


def test_an_unreachable_receiver_never_fails_the_run(tmp_path: Path) -> None:
    from crosswind.rig.emulators import free_port

    cfg_path = tmp_path / "cw.toml"
    cfg_path.write_text(f"""
[azure]
connection_string = "env:NOT_SET_HERE"
container = "c"
[aws]
bucket = "b"
[governance]
lineage = "http"
lineage_url = "http://127.0.0.1:{free_port()}"
lineage_timeout_s = 1
""")
    cfg = load_config(cfg_path)
    lineage = Lineage.from_config(cfg)
    run = lineage.run("x", inputs=[], outputs=[], job_type="SYNC", description="d")
    run.start()
    run.complete()
    lineage.close(30)
    status = lineage.status()
    assert status["sent"] == 0 and status["failed"] == 2 and status["last_error"]


def test_glue_mirror_on_moto(make_env: Callable[..., Env], moto: Moto) -> None:
    env = make_env(extra='[governance]\nglue_registry = "crosswind-flow-26"\n')
    c = str(env.config_path)
    out = CliRunner().invoke(app, ["schema", "init", "-c", c])
    assert out.exit_code == 0, out.output
    v2 = copy.deepcopy(builtin_schema("documentdb-document"))
    v2["properties"]["Gate"] = {"type": "string"}
    reg = invoke("schema", "register", "-c", c, "--subject", "documentdb-document",
                 "--schema", _write(env.tmp / "doc-v2.json", v2))
    assert reg["version"] == 2 and reg["glue"]["glue_version"] == 2
    import boto3

    glue = boto3.client("glue", endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")
    got = glue.get_schema_version(
        SchemaId={"RegistryName": "crosswind-flow-26", "SchemaName": "documentdb-document"},
        SchemaVersionNumber={"VersionNumber": 2})
    definition = json.loads(got["SchemaDefinition"])
    assert definition["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert definition["properties"]["Gate"] == {"type": "string"}
    schema = glue.get_schema(SchemaId={"RegistryName": "crosswind-flow-26",
                                       "SchemaName": "documentdb-document"})
    assert schema["Compatibility"] == "NONE" and schema["DataFormat"] == "JSON"
