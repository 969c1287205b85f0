"""Lineage events of every kind of run, built offline and checked against the
OpenLineage JSON Schemas (vendored in tests/openlineage_spec) and
openlineage-python's event model; the spec check refuses broken events; dataset
naming; the file transport; the interval runs of the replication service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import RunEvent
from openlineage.client.serde import Serde

from crosswind.config import Config, parse_config
from crosswind.governance.context import Governance
from crosswind.governance.gate import SchemaGate
from crosswind.governance.lineage import Lineage, open_sink
from crosswind.governance.naming import flow_datasets
from crosswind.governance.runs import (
    IntervalLineage,
    finish_switch,
    finish_validation,
    metadata_lineage,
    objects_lineage,
    switch_lineage,
    validation_lineage,
)
from crosswind.governance.stewardship import Stewardship
from crosswind.governance.subjects import builtin_schema
from crosswind.model import Direction
from tests.lineage_model import check_event

CS = ("DefaultEndpointsProtocol=https;AccountName=nxopstore;AccountKey="
      "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
      "EndpointSuffix=core.windows.net")


class Captured:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def emit(self, event: RunEvent) -> None:
        self.events.append(event)

    def close(self, timeout_s: float = 10.0) -> None:
        return None


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Config:
    monkeypatch.setenv("AZ_CS", CS)
    monkeypatch.setenv("DOCDB", "mongodb://app:hunter2@docdb-1.cluster.example.com:27017,"
                                "docdb-2.cluster.example.com:27017/?tls=true")
    return parse_config({
        "azure": {"connection_string": "env:AZ_CS", "container": "flight-events",
                  "table": "FlightEventMetadata"},
        "aws": {"bucket": "nxop-flight-events", "documentdb_uri": "env:DOCDB",
                "database": "nxop", "collection": "flight_event_metadata"},
        "state": {"dir": str(tmp_path / "state")},
        "governance": {"domain": "ADL", "steward": "ana", "owner": "ops", "flow_id": 26},
    }, tmp_path)


def governance(cfg: Config) -> tuple[Governance, Captured]:
    sink = Captured()
    schemas = {"object-metadata": (1, builtin_schema("object-metadata")),
               "table-entity": (2, builtin_schema("table-entity")),
               "documentdb-document": (1, builtin_schema("documentdb-document"))}
    lin = Lineage(sink, stewardship=Stewardship.from_config(cfg), schemas=schemas.get)
    return Governance(Stewardship.from_config(cfg), SchemaGate.off(), lin), sink


def as_json(e: RunEvent) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(Serde.to_json(e))
    return out


def test_dataset_names(cfg: Config) -> None:
    names = [(d.namespace, d.name) for d in flow_datasets(cfg)]
    assert names == [
        ("wasbs://flight-events@nxopstore.dfs.core.windows.net", "/"),
        ("s3://nxop-flight-events", "/"),
        ("azuretable://nxopstore.table.core.windows.net", "FlightEventMetadata"),
        ("mongodb://docdb-1.cluster.example.com:27017", "nxop.flight_event_metadata"),
    ]
    assert "hunter2" not in repr(flow_datasets(cfg))


def test_every_kind_of_run_is_a_valid_event(cfg: Config) -> None:
    gov, sink = governance(cfg)
    run = objects_lineage(gov, cfg, Direction.AZURE_TO_AWS)
    run.finish_sync("succeeded", None, 7, rows=3, bytes=300, files=3)
    run = metadata_lineage(gov, cfg, Direction.AZURE_TO_AWS, "objects")
    run.finish_sync("aborted", "deletes not done", 8, rows=0)
    checks = ["objects", "metadata", "join-azure"]
    run = validation_lineage(gov, cfg, Direction.AZURE_TO_AWS, checks)
    finish_validation(run, cfg, Direction.AZURE_TO_AWS, {
        "run_id": 9, "verdict": "fail", "error": None,
        "targets": {"completeness_pct": 99.9, "pass_rate_pct": 99.5},
        "checks": {"objects": {"items": 10, "completeness_pct": 100.0, "pass_rate_pct": 90.0},
                   "metadata": {"items": 4, "completeness_pct": 100.0, "pass_rate_pct": 100.0},
                   "join-azure": {"items": 4, "completeness_pct": 75.0,
                                  "pass_rate_pct": 75.0}}})
    run = switch_lineage(gov, cfg, "rollback", "ab" * 32)
    finish_switch(run, "undone", "step 'drain' failed", rto_s=None, phase="post_cutover")
    counts = iter([(0, 0, 0), (5, 500, 2), (5, 500, 2), (6, 600, 4)])
    interval = IntervalLineage(gov, cfg, Direction.AZURE_TO_AWS, 3, lambda: next(counts))
    interval.open()
    interval.roll()
    interval.close("the reconcile failed")
    events = [as_json(e) for e in sink.events]
    for e in events:
        check_event(e)
    kinds = [(e["job"]["name"], e["eventType"]) for e in events]
    assert kinds == [
        ("sync-objects.azure-to-aws", "START"), ("sync-objects.azure-to-aws", "COMPLETE"),
        ("sync-metadata.azure-to-aws", "START"), ("sync-metadata.azure-to-aws", "FAIL"),
        ("validate.azure-to-aws", "START"), ("validate.azure-to-aws", "COMPLETE"),
        ("rollback", "START"), ("rollback", "FAIL"),
        ("replicate.azure-to-aws", "START"), ("replicate.azure-to-aws", "COMPLETE"),
        ("replicate.azure-to-aws", "START"), ("replicate.azure-to-aws", "FAIL")]
    sync = events[1]
    assert sync["outputs"][0]["outputFacets"]["outputStatistics"] == {
        **sync["outputs"][0]["outputFacets"]["outputStatistics"], "rowCount": 3, "size": 300}
    meta_inputs = [(d["namespace"], d["name"]) for d in events[2]["inputs"]]
    assert ("s3://nxop-flight-events", "/") in meta_inputs  # Blob → S3 → DocumentDB
    fields = {f["name"]: f["type"] for f in
              events[2]["inputs"][0]["facets"]["schema"]["fields"]}
    assert fields["Sequence"] == "Edm.Int64" and fields["EventTime"] == "Edm.DateTime"
    doc_fields = {f["name"]: f for f in events[2]["outputs"][0]["facets"]["schema"]["fields"]}
    assert [doc_fields[n]["type"] for n in ("Sequence", "EventTime", "CorrelationId",
                                            "Checksum", "FlightNumber")] == [
        "int64", "date", "uuid", "binData", "integer"]
    assert {f["name"] for f in doc_fields["_cw"]["fields"]} == {"v", "etag", "ts", "dt"}
    quality = {d["namespace"]: d["inputFacets"] for d in events[5]["inputs"]
               if d.get("inputFacets")}
    s3 = quality["s3://nxop-flight-events"]
    assert [(a["name"], a["success"]) for a in s3["dataQualityAssertions"]["assertions"]] == [
        ("objects.completeness", True), ("objects.pass_rate", False)]
    assert events[7]["run"]["facets"]["errorMessage"]["message"] == "step 'drain' failed"
    first, last = events[9], events[11]
    assert first["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
    stats = {o["namespace"]: o["outputFacets"]["outputStatistics"] for o in first["outputs"]}
    assert stats["s3://nxop-flight-events"]["rowCount"] == 5
    assert stats["mongodb://docdb-1.cluster.example.com:27017"]["rowCount"] == 2
    later = {o["namespace"]: o["outputFacets"]["outputStatistics"] for o in last["outputs"]}
    assert later["s3://nxop-flight-events"]["rowCount"] == 1  # the interval's, not the total
    for e in events:
        tags = {t["key"]: t["value"] for t in e["job"]["facets"]["tags"]["tags"]}
        assert tags == {"domain": "ADL", "steward": "ana", "owner": "ops", "flow_id": "26"}


def test_file_transport_appends_json_lines(cfg: Config) -> None:
    lin = Lineage.from_config(cfg)
    for _ in range(2):
        run = lin.run("sync-objects.azure-to-aws", inputs=flow_datasets(cfg)[:1],
                      outputs=flow_datasets(cfg)[1:2], job_type="SYNC", description="d")
        run.start()
        run.complete()
    lin.close()
    lines = (cfg.state_dir / "lineage" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 4
    for line in lines:
        check_event(json.loads(line))
    assert lin.status()["sent"] == 4


def test_lineage_off_sends_nothing(cfg: Config) -> None:
    off = parse_config({**cfg.model_dump(exclude={"base_dir"}, mode="json"),
                        "governance": {"lineage": "off"}}, cfg.base_dir)
    assert open_sink(off).__class__.__name__ == "NullSink"
    lin = Lineage.from_config(off)
    lin.run("x", inputs=[], outputs=[], job_type="SYNC", description="d").start()
    lin.close()
    assert not (off.state_dir / "lineage").exists()


def test_the_spec_check_refuses_what_breaks_the_openlineage_schema(cfg: Config) -> None:
    import copy

    from tests.lineage_model import spec_violations

    gov, sink = governance(cfg)
    run = objects_lineage(gov, cfg, Direction.AZURE_TO_AWS)
    run.finish_sync("succeeded", None, 7, rows=3, bytes=300, files=3)
    good = as_json(sink.events[1])
    assert spec_violations(good) == []

    def broken(change: Any) -> list[str]:
        ev = copy.deepcopy(good)
        change(ev)
        return spec_violations(ev)

    out = good["outputs"][0]
    assert any("runId" in v for v in broken(lambda e: e["run"].pop("runId")))
    assert any("uuid" in v for v in broken(lambda e: e["run"].update(runId="run-7")))
    assert any("date-time" in v for v in broken(lambda e: e.update(eventTime="yesterday")))
    assert any("'DONE' is not one of" in v for v in broken(lambda e: e.update(eventType="DONE")))
    assert any("producer" in v for v in broken(lambda e: e.update(producer="crosswind 0.1")))
    # a facet is checked against the file its _schemaURL names, under its own key
    assert any("rowCount" in v for v in broken(
        lambda e: e["outputs"][0]["outputFacets"]["outputStatistics"].update(rowCount="3")))
    assert any("_producer" in v for v in broken(
        lambda e: e["outputs"][0]["outputFacets"]["outputStatistics"].pop("_producer")))
    assert any("not 'stats'" in v for v in broken(lambda e: e["outputs"][0].update(
        outputFacets={"stats": out["outputFacets"]["outputStatistics"]})))
    assert any("not in tests/openlineage_spec" in v for v in broken(
        lambda e: e["job"]["facets"]["jobType"].update(
            _schemaURL="https://openlineage.io/spec/facets/9-9-9/JobTypeJobFacet.json"
                       "#/$defs/JobTypeJobFacet")))
    assert any("fields" in v and "type" in v for v in broken(
        lambda e: e["inputs"][0]["facets"]["schema"]["fields"][0].update(type=7)))
