"""OpenLineage run events for crosswind's runs, through openlineage-python's own
event model and transports.

The edges of each run (where it starts and finishes) ask ``Lineage.run(...)``
for a ``LineageRun`` and call ``start()``, then ``complete(...)`` or
``fail(error)``. Every event carries:

* the job: namespace ``[governance] lineage_namespace`` (``crosswind``), name
  ``KIND.DIRECTION`` (``sync-objects.azure-to-aws``, ``sync-metadata.…``,
  ``replicate.…``, ``validate.…``; ``cutover``, ``rollback``) with facets
  ``jobType`` (BATCH, or STREAMING for ``replicate``; integration CROSSWIND),
  ``documentation``, ``ownership`` (owner and steward) and ``tags`` (domain,
  flow_id, steward, owner);
* the run: a UUIDv7 ``runId``, ``processing_engine`` (crosswind's version),
  ``tags`` (crosswind's own run id, status, report), and on FAIL ``errorMessage``;
* inputs and outputs named as ``naming.py`` says, with ``dataSource``,
  ``storage``, ``schema`` (the fields of the subject's latest registered
  version), ``version`` (``SUBJECT:vN``), ``ownership`` and, on completion,
  ``outputStatistics`` (rows, bytes, objects) or, for a validation,
  ``dataQualityMetrics`` and ``dataQualityAssertions`` (completeness and pass
  rate against their targets).

Emitting never fails a run: events are handed to a background thread that
writes them through the transport (file: JSON lines; http: an OpenLineage API
such as Marquez's ``POST /api/v1/lineage``); a transport error is logged and
counted. ``close()`` waits (briefly) for what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    set_producer,
)
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
from openlineage.client.uuid import generate_new_uuid

from crosswind.config import Config
from crosswind.governance.naming import DatasetRef
from crosswind.governance.stewardship import Stewardship
from crosswind.secrets import redact
from crosswind.version import crosswind_version

log = logging.getLogger("crosswind.governance")

Processing = Literal["BATCH", "STREAMING"]
#: subject → (version, schema) of its latest registered version, or None
SchemaLookup = Callable[[str], tuple[int, Any] | None]
PRODUCER = "urn:crosswind:producer"
TAG_SOURCE = "crosswind"


def producer() -> str:
    return f"{PRODUCER}:{crosswind_version()}"


class Transport(Protocol):
    def emit(self, event: RunEvent) -> Any: ...


class Sink(Protocol):
    def emit(self, event: RunEvent) -> None: ...

    def close(self, timeout_s: float = 10.0) -> None: ...


class NullSink:
    def emit(self, event: RunEvent) -> None:
        return None

    def close(self, timeout_s: float = 10.0) -> None:
        return None


class ThreadSink:
    """Events written by one background thread, in order; never blocks the caller."""

    def __init__(self, transport: Transport, what: str, max_queued: int = 10_000) -> None:
        self.transport = transport
        self.what = what
        self._q: queue.Queue[RunEvent | None] = queue.Queue(max_queued)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="crosswind-lineage",
                                        daemon=True)
        self._thread.start()

    def emit(self, event: RunEvent) -> None:
        try:
            self._q.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while (event := self._q.get()) is not None:
            try:
                self.transport.emit(event)
                self.sent += 1
            except Exception as exc:
                self.failed += 1
                self.last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
                if self.failed <= 5 or self.failed % 100 == 0:
                    log.warning("lineage event to %s not delivered (%d so far): %s", self.what,
                                self.failed, self.last_error)

    def close(self, timeout_s: float = 10.0) -> None:
        self._q.put(None)
        self._thread.join(timeout_s)


def events_file(cfg: Config) -> Path:
    g = cfg.governance
    if g.lineage_file is None:
        return cfg.state_dir / "lineage" / "events.jsonl"
    p = g.lineage_file.expanduser()
    return p if p.is_absolute() else cfg.base_dir / p


def open_sink(cfg: Config) -> Sink:
    """The transport ``[governance] lineage`` names, behind a ``ThreadSink``."""
    g = cfg.governance
    if g.lineage == "off":
        return NullSink()
    if g.lineage == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        path = events_file(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        return ThreadSink(FileTransport(FileConfig(log_file_path=str(path), append=True)),
                          str(path))
    from openlineage.client.transport.http import (
        ApiKeyTokenProvider,
        HttpConfig,
        HttpTransport,
        TokenProvider,
    )

    from crosswind.secrets import resolve

    auth: TokenProvider = TokenProvider({})
    if g.lineage_api_key:
        key = resolve(g.lineage_api_key, where="[governance].lineage_api_key",
                      allow_literal=False).get_secret_value()
        auth = ApiKeyTokenProvider({"apiKey": key})
    assert g.lineage_url is not None
    config = HttpConfig(url=g.lineage_url, endpoint=g.lineage_endpoint,
                        timeout=g.lineage_timeout_s, auth=auth,
                        retry={"total": 2, "backoff_factor": 0.3,
                               "status_forcelist": [500, 502, 503, 504],
                               "allowed_methods": ["POST"]})
    return ThreadSink(HttpTransport(config), g.lineage_url)


# -- facets --------------------------------------------------------------------------


def _json_type(s: Mapping[str, Any]) -> str | None:
    t = s.get("type")
    if isinstance(t, list):
        return "|".join(str(x) for x in t)
    if isinstance(t, str):
        return t
    if "const" in s:
        return type(s["const"]).__name__
    if "anyOf" in s or "oneOf" in s:
        parts = [_json_type(b) for b in s.get("anyOf", s.get("oneOf", [])) if isinstance(b, dict)]
        return "|".join(p for p in parts if p) or None
    return None


_EXT_TYPES = {"$numberLong": "int64", "$date": "date", "$numberDouble": "double"}


def _field_type(subject: str, name: str, s: Mapping[str, Any], props: Mapping[str, Any]
                ) -> str | None:
    if subject == "table-entity":
        ann = props.get(f"{name}@odata.type")
        if isinstance(ann, dict) and "const" in ann:
            return str(ann["const"])
    if subject == "documentdb-document" and isinstance(s.get("properties"), dict):
        inner = s["properties"]
        for key, t in _EXT_TYPES.items():
            if key in inner:
                return t
        if "$binary" in inner:
            sub = inner["$binary"].get("properties", {}).get("subType", {}).get("const")
            return "uuid" if sub == "04" else "binData"
    return _json_type(s)


def schema_fields(subject: str, schema: Any) -> list[schema_dataset.SchemaDatasetFacetFields]:
    """The top-level fields (and nested object fields) a JSON Schema declares."""
    if not isinstance(schema, dict):
        return []
    props = schema.get("properties") or {}
    out = []
    for name, s in props.items():
        if not isinstance(s, dict) or name.endswith("@odata.type"):
            continue
        nested = (schema_fields("", s) if (s.get("type") == "object"
                  and subject != "documentdb-document") or name == "_cw" else [])
        out.append(schema_dataset.SchemaDatasetFacetFields(
            name=name, type=_field_type(subject, name, s, props),
            description=s.get("description"), fields=nested or None))
    return out


def _owners(s: Stewardship) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind in ((s.owner, "OWNER"), (s.steward, "STEWARD")) if name]


def _dataset_facets(ref: DatasetRef, s: Stewardship, schemas: SchemaLookup
                    ) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "dataSource": datasource_dataset.DatasourceDatasetFacet(name=ref.namespace,
                                                                uri=ref.namespace),
        "storage": storage_dataset.StorageDatasetFacet(storageLayer=ref.storage,
                                                       fileFormat=ref.file_format),
    }
    found = schemas(ref.subject)
    if found is not None:
        version, schema = found
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=schema_fields(ref.subject, schema))
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=f"{ref.subject}:v{version}")
    owners = _owners(s)
    if owners:
        facets["ownership"] = ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=n, type=k) for n, k in owners])
    return facets


@dataclass(frozen=True, slots=True)
class Stats:
    """What a run wrote into one output dataset."""

    rows: int | None = None
    bytes: int | None = None
    files: int | None = None


@dataclass(frozen=True, slots=True)
class Quality:
    """A validation's figures for one dataset it checked."""

    items: int
    completeness_pct: float
    pass_rate_pct: float
    completeness_target: float
    pass_rate_target: float
    check: str


# -- runs ----------------------------------------------------------------------------


@dataclass
class LineageRun:
    lineage: Lineage
    job: str
    inputs: Sequence[DatasetRef]
    outputs: Sequence[DatasetRef]
    processing: Processing
    job_type: str
    description: str
    run_id: str = field(default_factory=lambda: str(generate_new_uuid()))
    tags: dict[str, str] = field(default_factory=dict)
    finished: bool = False

    def start(self) -> None:
        self.lineage.emit(self._event(RunState.START))

    def complete(self, *, stats: Mapping[str, Stats] | None = None,
                 quality: Mapping[str, Sequence[Quality]] | None = None,
                 tags: Mapping[str, object] | None = None) -> None:
        """``stats`` and ``quality`` by dataset URI."""
        if self.finished:
            return
        self.finished = True
        self.lineage.emit(self._event(RunState.COMPLETE, stats=stats, quality=quality,
                                      tags=tags))

    def fail(self, error: str, *, stats: Mapping[str, Stats] | None = None,
             quality: Mapping[str, Sequence[Quality]] | None = None,
             tags: Mapping[str, object] | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self.lineage.emit(self._event(RunState.FAIL, stats=stats, quality=quality, tags=tags,
                                      error=error))

    def finish(self, status: str, error: str | None, *,
               stats: Mapping[str, Stats] | None = None,
               quality: Mapping[str, Sequence[Quality]] | None = None,
               tags: Mapping[str, object] | None = None) -> None:
        """COMPLETE for a run that went to its end (even with items failed), FAIL for
        one that stopped early (an error, the delete guard, an interrupt)."""
        tags = {"status": status, **(tags or {})}
        if error is not None or status in ("aborted", "interrupted", "error"):
            self.fail(error or status, stats=stats, quality=quality, tags=tags)
        else:
            self.complete(stats=stats, quality=quality, tags=tags)

    def finish_sync(self, status: str, error: str | None, run_id: int | None, *,
                    rows: int, bytes: int | None = None, files: int | None = None) -> None:
        """A sync's end: what it wrote goes to every output's statistics."""
        st = Stats(rows=rows, bytes=bytes, files=files)
        self.finish(status, error, stats={d.uri: st for d in self.outputs},
                    tags={"crosswind.run_id": run_id})

    def _event(self, state: RunState, *, stats: Mapping[str, Stats] | None = None,
               quality: Mapping[str, Sequence[Quality]] | None = None,
               tags: Mapping[str, object] | None = None, error: str | None = None
               ) -> RunEvent:
        lin = self.lineage
        s = lin.stewardship
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(processingType=self.processing,
                                                    integration="CROSSWIND",
                                                    jobType=self.job_type),
            "documentation": documentation_job.DocumentationJobFacet(
                description=self.description),
            "tags": tags_job.TagsJobFacet(tags=[
                tags_job.TagsJobFacetFields(key=k, value=str(v), source=TAG_SOURCE)
                for k, v in s.as_dict().items() if v]),
        }
        owners = _owners(s)
        if owners:
            job_facets["ownership"] = ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=n, type=k) for n, k in owners])
        run_tags = {**self.tags, **{k: str(v) for k, v in (tags or {}).items()
                                    if v is not None}}
        run_facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=crosswind_version(), name="crosswind",
                openlineageAdapterVersion=_openlineage_version()),
            "tags": tags_run.TagsRunFacet(tags=[
                tags_run.TagsRunFacetFields(key=k, value=v, source=TAG_SOURCE)
                for k, v in sorted(run_tags.items())]),
        }
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=redact(error)[:2000], programmingLanguage="python")
        inputs = [InputDataset(namespace=d.namespace, name=d.name,
                               facets=_dataset_facets(d, s, lin.schemas),
                               inputFacets=_quality_facets((quality or {}).get(d.uri)))
                  for d in self.inputs]
        outputs = [OutputDataset(namespace=d.namespace, name=d.name,
                                 facets=_dataset_facets(d, s, lin.schemas),
                                 outputFacets=_stats_facets((stats or {}).get(d.uri)))
                   for d in self.outputs]
        return RunEvent(eventType=state, eventTime=datetime.now(UTC).isoformat(),
                        run=Run(runId=self.run_id, facets=run_facets),
                        job=Job(namespace=lin.namespace, name=self.job, facets=job_facets),
                        producer=producer(), inputs=inputs, outputs=outputs)


def _stats_facets(st: Stats | None) -> dict[str, Any]:
    if st is None:
        return {}
    return {"outputStatistics": output_statistics_output_dataset
            .OutputStatisticsOutputDatasetFacet(rowCount=st.rows, size=st.bytes,
                                                fileCount=st.files)}


def _quality_facets(found: Sequence[Quality] | None) -> dict[str, Any]:
    if not found:
        return {}
    assertions = []
    for q in found:
        assertions += [
            data_quality_assertions_dataset.Assertion(
                assertion=f"completeness_pct >= {q.completeness_target:g}",
                success=q.completeness_pct >= q.completeness_target, name=f"{q.check}.completeness",
                expected=f"{q.completeness_target:g}", actual=f"{q.completeness_pct:g}",
                severity="error"),
            data_quality_assertions_dataset.Assertion(
                assertion=f"pass_rate_pct >= {q.pass_rate_target:g}",
                success=q.pass_rate_pct >= q.pass_rate_target, name=f"{q.check}.pass_rate",
                expected=f"{q.pass_rate_target:g}", actual=f"{q.pass_rate_pct:g}",
                severity="error"),
        ]
    return {
        "dataQualityMetrics": data_quality_metrics_input_dataset
        .DataQualityMetricsInputDatasetFacet(columnMetrics={},
                                             rowCount=max(q.items for q in found)),
        "dataQualityAssertions": data_quality_assertions_dataset
        .DataQualityAssertionsDatasetFacet(assertions=assertions),
    }


def _openlineage_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openlineage-python")
    except PackageNotFoundError:
        return "unknown"


class Lineage:
    """The lineage of one process: a sink, the job namespace, the stewardship."""

    def __init__(self, sink: Sink, *, namespace: str = "crosswind",
                 stewardship: Stewardship | None = None,
                 schemas: SchemaLookup | None = None) -> None:
        self.sink = sink
        self.namespace = namespace
        self.stewardship = stewardship or Stewardship()
        self.schemas: SchemaLookup = schemas or (lambda subject: None)
        self.enabled = not isinstance(sink, NullSink)
        set_producer(producer())

    @classmethod
    def off(cls) -> Lineage:
        return cls(NullSink())

    @classmethod
    def from_config(cls, cfg: Config, schemas: SchemaLookup | None = None) -> Lineage:
        return cls(open_sink(cfg), namespace=cfg.governance.lineage_namespace,
                   stewardship=Stewardship.from_config(cfg), schemas=schemas)

    def run(self, job: str, *, inputs: Sequence[DatasetRef], outputs: Sequence[DatasetRef],
            job_type: str, description: str, processing: Processing = "BATCH",
            tags: Mapping[str, object] | None = None) -> LineageRun:
        return LineageRun(self, job, list(inputs), list(outputs), processing, job_type,
                          description, tags={k: str(v) for k, v in (tags or {}).items()
                                             if v is not None})

    def status(self) -> dict[str, Any]:
        sink = self.sink
        if isinstance(sink, ThreadSink):
            return {"to": sink.what, "sent": sink.sent, "failed": sink.failed,
                    "dropped": sink.dropped, "last_error": sink.last_error}
        return {"to": None}

    def emit(self, event: RunEvent) -> None:
        if not self.enabled:
            return
        try:
            self.sink.emit(event)
        except Exception as exc:
            log.warning("lineage event not queued: %s", redact(str(exc)))

    def close(self, timeout_s: float = 10.0) -> None:
        self.sink.close(timeout_s)
