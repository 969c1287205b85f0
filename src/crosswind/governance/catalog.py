"""``crosswind catalog export``: the flow described for a data catalog, as JSON
(``catalog.json``) and Markdown (``catalog.md``, with a Mermaid lineage graph),
plus the latest schema of each subject (``schemas/SUBJECT.vN.json``).

What it holds: the flow (id, domain, steward, owner, migration phase), its
datasets with their OpenLineage names and fields, the registered schemas and
their versions and modes, the lineage graph (jobs with their inputs and
outputs, and the latest runs the lineage file recorded), the quality metrics
history (every kept validation: completeness and pass rate against their
targets) and the state of the validation before write (mode, open DLQ
entries of kind ``schema``). It reads the state store and writes files only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crosswind.config import Config
from crosswind.governance.lineage import events_file, schema_fields
from crosswind.governance.naming import DatasetRef, flow_datasets
from crosswind.governance.registry import Registry
from crosswind.governance.stewardship import Stewardship
from crosswind.governance.subjects import DESCRIPTIONS
from crosswind.state import StateStore
from crosswind.version import crosswind_version

RECENT_RUNS = 50
QUALITY_RUNS = 200


def _jobs(cfg: Config, datasets: list[DatasetRef]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], str] = {(d.side, d.what): d.uri for d in datasets}
    jobs: list[dict[str, Any]] = []
    for direction, src, dst in (("azure-to-aws", "azure", "aws"), ("aws-to-azure", "aws", "azure")):
        jobs.append({"job": f"sync-objects.{direction}", "inputs": [by[(src, "objects")]],
                     "outputs": [by[(dst, "objects")]]})
        if (src, "rows") in by:
            ins = [by[(src, "rows")]] + ([by[("aws", "objects")]]
                                          if direction == "azure-to-aws" else [])
            jobs.append({"job": f"sync-metadata.{direction}", "inputs": ins,
                         "outputs": [by[(dst, "rows")]],
                         "note": "--mode objects (azure-to-aws) takes the keys from the "
                                 "names of the objects synced to S3" if src == "azure" else
                                 "driven by the DocumentDB change stream"})
        jobs.append({"job": f"replicate.{direction}",
                     "inputs": [u for (s, _), u in by.items() if s == src],
                     "outputs": [u for (s, _), u in by.items() if s == dst],
                     "note": "one run per reconcile interval"})
    for kind, old, new in (("cutover", "azure", "aws"), ("rollback", "aws", "azure")):
        jobs.append({"job": kind, "inputs": [u for (s, _), u in by.items() if s == old],
                     "outputs": [u for (s, _), u in by.items() if s == new]})
    return jobs


def _tail(path: Path, limit: int) -> Iterator[dict[str, Any]]:
    """The last ``limit`` finished runs in a JSON-lines events file, newest first."""
    if not path.exists():
        return
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - 4 * 1024 * 1024))
        lines = f.read().decode("utf-8", "replace").splitlines()
    found = 0
    for line in reversed(lines):
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # the first, cut line
        if ev.get("eventType") not in ("COMPLETE", "FAIL", "ABORT"):
            continue
        tags = {t["key"]: t["value"] for t in (ev.get("run", {}).get("facets", {})
                                               .get("tags", {}).get("tags") or [])}
        stats = {f"{o['namespace']}|{o['name']}": o.get("outputFacets", {})
                 .get("outputStatistics") for o in ev.get("outputs") or []}
        yield {"job": ev.get("job", {}).get("name"), "run_id": ev.get("run", {}).get("runId"),
               "state": ev.get("eventType"), "at": ev.get("eventTime"),
               "status": tags.get("status"), "crosswind_run_id": tags.get("crosswind.run_id"),
               "outputs": {k: {x: v.get(x) for x in ("rowCount", "size", "fileCount")}
                           for k, v in stats.items() if v}}
        found += 1
        if found >= limit:
            return


def _quality(state: StateStore) -> list[dict[str, Any]]:
    out = []
    for r in state.runs("validate", limit=QUALITY_RUNS):
        rep = state.run_report(int(r["id"])) or {}
        totals = rep.get("totals") or {}
        out.append({
            "run_id": r["id"], "direction": r["direction"], "finished_at": r["finished_at"],
            "verdict": rep.get("verdict"), "completeness_pct": totals.get("completeness_pct"),
            "pass_rate_pct": totals.get("pass_rate_pct"), "items": totals.get("items"),
            "checks": {name: {"completeness_pct": c.get("completeness_pct"),
                              "pass_rate_pct": c.get("pass_rate_pct"), "items": c.get("items")}
                       for name, c in (rep.get("checks") or {}).items()},
        })
    return out


def catalog(cfg: Config, state: StateStore) -> dict[str, Any]:
    from crosswind.migration import MigrationStore

    reg = Registry(state)
    s = Stewardship.from_config(cfg)
    datasets = flow_datasets(cfg)
    phase = MigrationStore(state).get()
    latest = reg.latest_all()
    schema_rows = state.db.execute(
        "SELECT count(*) FROM meta_dlq WHERE status='open' AND kind='schema'").fetchone()
    flow_name = f"Flow {s.flow_id}" if s.flow_id else "crosswind flow"
    return {
        "kind": "catalog", "crosswind_version": crosswind_version(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "flow": {"id": s.flow_id, "name": f"{flow_name}: flight events, Azure → AWS",
                 "domain": s.domain, "steward": s.steward, "owner": s.owner,
                 "phase": phase.phase.value, "replicating": phase.direction.value},
        "datasets": [{
            "namespace": d.namespace, "name": d.name, "uri": d.uri, "side": d.side,
            "holds": d.what, "storage": d.storage, "format": d.file_format,
            "description": d.description, "subject": d.subject,
            "schema_version": latest[d.subject].version if d.subject in latest else None,
            "fields": [_field(f) for f in schema_fields(
                d.subject, latest[d.subject].schema)] if d.subject in latest else [],
        } for d in datasets],
        "schemas": [{
            **info.as_dict(), "describes": DESCRIPTIONS[info.subject],
            "history": [v.as_dict(with_schema=False) for v in reg.versions(info.subject)],
        } for info in reg.subjects()],
        "lineage": {"namespace": cfg.governance.lineage_namespace,
                    "transport": cfg.governance.lineage, "jobs": _jobs(cfg, datasets),
                    "recent_runs": list(_tail(events_file(cfg), RECENT_RUNS))
                    if cfg.governance.lineage == "file" else []},
        "quality": {"targets": {"completeness_pct": cfg.validation.completeness_target,
                                "pass_rate_pct": cfg.validation.pass_rate_target},
                    "history": _quality(state)},
        "schema_validation": {"enforce": cfg.governance.enforce,
                              "dlq_open": int(schema_rows[0]) if schema_rows else 0},
    }


def _field(f: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": f.name, "type": f.type}
    if f.description:
        d["description"] = f.description
    if f.fields:
        d["fields"] = [_field(x) for x in f.fields]
    return d


# -- Markdown ------------------------------------------------------------------------


def _cell(v: Any) -> str:
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def markdown(doc: dict[str, Any]) -> str:
    f = doc["flow"]
    out = [f"# {f['name']}", "",
           f"Exported by crosswind {doc['crosswind_version']} at {doc['generated_at']}.", "",
           "## Stewardship", "",
           "| domain | steward | owner | flow | phase | replicating |", "|---|---|---|---|---|---|",
           f"| {_cell(f['domain'])} | {_cell(f['steward'])} | {_cell(f['owner'])} | "
           f"{_cell(f['id'])} | {_cell(f['phase'])} | {_cell(f['replicating'])} |", "",
           "## Datasets", "",
           "| dataset (OpenLineage namespace + name) | holds | storage | schema |",
           "|---|---|---|---|"]
    for d in doc["datasets"]:
        version = f"{d['subject']} v{d['schema_version']}" if d["schema_version"] else (
            f"{d['subject']} (not registered)")
        out.append(f"| `{_cell(d['uri'])}` | {_cell(d['description'])} | {_cell(d['storage'])} "
                   f"| {_cell(version)} |")
    out += ["", "## Schemas", ""]
    for sc in doc["schemas"]:
        out += [f"### {sc['subject']}", "", f"{sc['describes']}. Compatibility mode "
                f"**{sc['mode']}**; {sc['versions']} version(s).", ""]
        if sc["history"]:
            out += ["| version | id | registered | by | fingerprint |", "|---|---|---|---|---|"]
            out += [f"| {v['version']} | {v['id']} | {_cell(v['registered_at'])} | "
                    f"{_cell(v['registered_by'])} | `{v['fingerprint'][:16]}` |"
                    for v in sc["history"]]
            out.append("")
        fields: list[dict[str, Any]] = next(
            (d["fields"] for d in doc["datasets"] if d["subject"] == sc["subject"]
             and d["fields"]), [])
        if fields:
            out += ["| field | type | description |", "|---|---|---|"]
            for fl in fields:
                out.append(f"| {_cell(fl['name'])} | {_cell(fl['type'])} | "
                           f"{_cell(fl.get('description'))} |")
                out += [f"| {_cell(fl['name'])}.{_cell(x['name'])} | {_cell(x['type'])} | "
                        f"{_cell(x.get('description'))} |" for x in fl.get("fields", [])]
            out.append("")
    lin = doc["lineage"]
    ids = {d["uri"]: f"d{i}" for i, d in enumerate(doc["datasets"])}
    out += ["## Lineage", "", f"Job namespace `{lin['namespace']}`, events by "
            f"`{lin['transport']}`.", "", "```mermaid", "flowchart LR"]
    for d in doc["datasets"]:
        out.append(f'  {ids[d["uri"]]}[("{d["uri"]}")]')
    for j, job in enumerate(lin["jobs"]):
        out.append(f'  j{j}{{{{"{job["job"]}"}}}}')
        out += [f"  {ids[u]} --> j{j}" for u in job["inputs"] if u in ids]
        out += [f"  j{j} --> {ids[u]}" for u in job["outputs"] if u in ids]
    out += ["```", "", "| job | inputs | outputs |", "|---|---|---|"]
    out += [f"| {job['job']} | {'<br>'.join(job['inputs'])} | {'<br>'.join(job['outputs'])} |"
            for job in lin["jobs"]]
    if lin["recent_runs"]:
        out += ["", "Latest runs (newest first):", "", "| job | state | status | at | run |",
                "|---|---|---|---|---|"]
        out += [f"| {_cell(r['job'])} | {_cell(r['state'])} | {_cell(r['status'])} | "
                f"{_cell(r['at'])} | `{_cell(r['run_id'])}` |" for r in lin["recent_runs"][:20]]
    q = doc["quality"]
    out += ["", "## Quality metrics", "",
            f"Targets: completeness ≥ {q['targets']['completeness_pct']} %, consistency pass "
            f"rate ≥ {q['targets']['pass_rate_pct']} %.", ""]
    if q["history"]:
        out += ["| validation | direction | finished | verdict | completeness % | pass rate % | "
                "items |", "|---|---|---|---|---|---|---|"]
        out += [f"| {r['run_id']} | {_cell(r['direction'])} | {_cell(r['finished_at'])} | "
                f"{_cell(r['verdict'])} | {_cell(r['completeness_pct'])} | "
                f"{_cell(r['pass_rate_pct'])} | {_cell(r['items'])} |" for r in q["history"]]
    else:
        out.append("No validation has run yet.")
    sv = doc["schema_validation"]
    out += ["", "## Validation before write", "",
            f"`[governance] enforce = \"{sv['enforce']}\"`; open DLQ entries of kind `schema`: "
            f"{sv['dlq_open']}.", ""]
    return "\n".join(out)


def export(cfg: Config, out_dir: Path) -> dict[str, Any]:
    """Write ``catalog.json``, ``catalog.md`` and ``schemas/`` into ``out_dir``."""
    state = StateStore(cfg.state_dir)
    try:
        doc = catalog(cfg, state)
        latest = Registry(state).latest_all()
    finally:
        state.close()
    (out_dir / "schemas").mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "catalog.json", "markdown": out_dir / "catalog.md"}
    for subject, v in latest.items():
        p = out_dir / "schemas" / f"{subject}.v{v.version}.json"
        p.write_text(json.dumps(v.schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        files[f"schema:{subject}"] = p
    files["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    files["markdown"].write_text(markdown(doc), encoding="utf-8")
    return {**doc, "files": {k: str(p) for k, p in files.items()}}
