"""Checks an emitted OpenLineage event twice:

* against the spec's JSON Schemas (``tests/openlineage_spec/``, vendored from the
  OpenLineage repository): the event against ``RunEvent`` of the core spec it
  names in ``schemaURL``, and every facet, under its key, against the facet
  schema its ``_schemaURL`` names (which also fixes the key a facet must be
  under); formats asserted (``date-time``, ``uuid``, ``uri``);
* against the event model openlineage-python defines (attrs classes generated
  from the spec): the event is rebuilt from its JSON with those classes and
  serialized again by the package, which must give the very same JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
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
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).parent / "openlineage_spec"
SPEC_ROOT = "https://openlineage.io/spec/"


class SpecViolation(AssertionError):
    """The event breaks the OpenLineage JSON Schema (each line: a path and why)."""


@cache
def spec_registry() -> Registry[Any]:
    """Every vendored schema, by its ``$id``."""
    resources = []
    for f in sorted(SPEC_DIR.glob("*.json")):
        doc = json.loads(f.read_text("utf-8"))
        assert doc["$id"] == SPEC_ROOT + f.stem.replace("__", "/") + ".json", f.name
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _uri(value: object) -> bool:
    # jsonschema asserts "uri" only with rfc3987 installed; an absolute URI is
    # what the spec means (a scheme, then something)
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path) and " " not in value


FORMATS = FormatChecker()
FORMATS.checks("uri")(_uri)


def _validator(url: str) -> Draft202012Validator:
    """For the schema at ``url`` (a file, or a definition in one)."""
    if url.split("#")[0] not in {str(u) for u in spec_registry()}:
        raise SpecViolation(f"{url}: not in tests/openlineage_spec (see its README)")
    return Draft202012Validator({"$ref": url}, registry=spec_registry(),
                                format_checker=FORMATS)


def _every_facet(ev: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, key, facet) of every facet in the event."""
    yield from (("run.facets", k, v) for k, v in (ev["run"].get("facets") or {}).items())
    yield from (("job.facets", k, v) for k, v in (ev["job"].get("facets") or {}).items())
    for side in ("inputs", "outputs"):
        for i, d in enumerate(ev.get(side) or []):
            for group in ("facets", "inputFacets", "outputFacets"):
                for k, v in (d.get(group) or {}).items():
                    yield f"{side}[{i}].{group}", k, v


def spec_violations(ev: dict[str, Any]) -> list[str]:
    """Where ``ev`` breaks the OpenLineage JSON Schemas (empty: it does not)."""
    url = ev.get("schemaURL")
    if not isinstance(url, str) or not url.endswith("#/$defs/RunEvent"):
        return [f"schemaURL {url!r} does not name a RunEvent of the spec"]
    try:
        out = [f"{e.json_path}: {e.message}"
               for e in _validator(url).iter_errors(ev)]
        for where, key, facet in _every_facet(ev):
            furl = facet.get("_schemaURL") if isinstance(facet, dict) else None
            if not isinstance(furl, str):
                out.append(f"{where}.{key}: no _schemaURL")
                continue
            # The facet's file says under which key it goes ({"properties": {KEY: ...}})
            out += [f"{where}{e.json_path[1:]}: {e.message}"
                    for e in _validator(furl.split("#")[0]).iter_errors({key: facet})]
            declared = spec_registry().contents(furl.split("#")[0]).get("properties", {})
            if key not in declared:
                out.append(f"{where}.{key}: {furl} is a facet named "
                           f"{', '.join(declared) or '?'}, not {key!r}")
    except SpecViolation as exc:
        return [str(exc)]
    return out


def check_against_spec(ev: dict[str, Any]) -> None:
    found = spec_violations(ev)
    if found:
        raise SpecViolation("\n".join(found))


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
    """Validate ``ev`` against the spec's JSON Schemas, then rebuild it with the
    package's classes and assert it serializes back the same."""
    check_against_spec(ev)
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
