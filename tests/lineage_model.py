"""Checks an emitted OpenLineage event against the event model openlineage-python
defines (the package ships its model as attrs classes generated from the spec,
not the spec's JSON Schema, and the schema cannot be fetched offline): the event
is rebuilt from its JSON with those classes — every required field must be
there, the classes' validators run (eventTime, a UUID runId, the schema URLs),
every facet must be one the model knows under that name — and serialized again
by the package, which must give the very same JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    datasource_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    processing_engine_run,
    schema_dataset,
    storage_dataset,
    tags_job,
    tags_run,
)
from openlineage.client.serde import Serde


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("_producer", "_schemaURL")}


def _fields(items: list[dict[str, Any]]) -> list[schema_dataset.SchemaDatasetFacetFields]:
    return [schema_dataset.SchemaDatasetFacetFields(
        **{**_plain(f), "fields": _fields(f["fields"]) if "fields" in f else None})
        for f in items]


Build = Callable[[dict[str, Any]], Any]
JOB: dict[str, Build] = {
    "jobType": lambda d: job_type_job.JobTypeJobFacet(**_plain(d)),
    "documentation": lambda d: documentation_job.DocumentationJobFacet(**_plain(d)),
    "tags": lambda d: tags_job.TagsJobFacet(
        tags=[tags_job.TagsJobFacetFields(**t) for t in d.get("tags", [])]),
    "ownership": lambda d: ownership_job.OwnershipJobFacet(
        owners=[ownership_job.Owner(**o) for o in d.get("owners", [])]),
}
RUN: dict[str, Build] = {
    "processing_engine": lambda d: processing_engine_run.ProcessingEngineRunFacet(**_plain(d)),
    "tags": lambda d: tags_run.TagsRunFacet(
        tags=[tags_run.TagsRunFacetFields(**t) for t in d.get("tags", [])]),
    "errorMessage": lambda d: error_message_run.ErrorMessageRunFacet(**_plain(d)),
}
DATASET: dict[str, Build] = {
    "dataSource": lambda d: datasource_dataset.DatasourceDatasetFacet(**_plain(d)),
    "storage": lambda d: storage_dataset.StorageDatasetFacet(**_plain(d)),
    "schema": lambda d: schema_dataset.SchemaDatasetFacet(fields=_fields(d.get("fields", []))),
    "version": lambda d: dataset_version_dataset.DatasetVersionDatasetFacet(**_plain(d)),
    "ownership": lambda d: ownership_dataset.OwnershipDatasetFacet(
        owners=[ownership_dataset.Owner(**o) for o in d.get("owners", [])]),
}
INPUT: dict[str, Build] = {
    "dataQualityMetrics": lambda d: data_quality_metrics_input_dataset
    .DataQualityMetricsInputDatasetFacet(**{**_plain(d), "columnMetrics": {
        k: data_quality_metrics_input_dataset.ColumnMetrics(**v)
        for k, v in d.get("columnMetrics", {}).items()}}),
    "dataQualityAssertions": lambda d: data_quality_assertions_dataset
    .DataQualityAssertionsDatasetFacet(assertions=[
        data_quality_assertions_dataset.Assertion(**a) for a in d.get("assertions", [])]),
}
OUTPUT: dict[str, Build] = {
    "outputStatistics": lambda d: output_statistics_output_dataset
    .OutputStatisticsOutputDatasetFacet(**_plain(d)),
}


def _facets(given: dict[str, Any] | None, known: dict[str, Build]) -> dict[str, Any]:
    out = {}
    for name, d in (given or {}).items():
        assert name in known, f"facet {name!r} is not in the model under that name"
        out[name] = known[name](d)
        assert out[name]._schemaURL == d["_schemaURL"], name
        out[name]._producer = d["_producer"]
    return out


def check_event(ev: dict[str, Any]) -> RunEvent:
    """Rebuild ``ev`` with the package's classes; assert it serializes back the same."""
    rebuilt = RunEvent(
        eventType=RunState(ev["eventType"]), eventTime=ev["eventTime"],
        run=Run(runId=ev["run"]["runId"], facets=_facets(ev["run"].get("facets"), RUN)),
        job=Job(namespace=ev["job"]["namespace"], name=ev["job"]["name"],
                facets=_facets(ev["job"].get("facets"), JOB)),
        producer=ev["producer"],
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"],
                             facets=_facets(d.get("facets"), DATASET),
                             inputFacets=_facets(d.get("inputFacets"), INPUT))
                for d in ev.get("inputs", [])],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"],
                               facets=_facets(d.get("facets"), DATASET),
                               outputFacets=_facets(d.get("outputFacets"), OUTPUT))
                 for d in ev.get("outputs", [])])
    assert rebuilt.schemaURL == ev["schemaURL"]
    again = Serde.to_dict(rebuilt)
    assert again == ev
    return rebuilt
