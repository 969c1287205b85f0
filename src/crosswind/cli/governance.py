"""``crosswind schema ...`` (the schema registry) and ``crosswind catalog export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from crosswind.cli.app import ConfigOpt, JsonOpt, app, err, guarded, load, print_json, run
from crosswind.config import Config
from crosswind.errors import ConfigError
from crosswind.governance.subjects import SUBJECTS, builtin_schema
from crosswind.state import StateStore

if TYPE_CHECKING:
    from crosswind.governance.registry import Registered, Registry

# The registry brings the compatibility checker and jsonschema: imported by the
# commands that use them, not at every start of the CLI.

schema_app = typer.Typer(help="The schema registry: infer, register, check, diff, list, show.",
                         no_args_is_help=True)
catalog_app = typer.Typer(help="The flow for a data catalog.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(catalog_app, name="catalog")

SubjectOpt = Annotated[str, typer.Option("--subject", help=f"One of {', '.join(SUBJECTS)}.")]
SchemaFileOpt = Annotated[Path, typer.Option("--schema", help="A JSON Schema (Draft 2020-12) "
                                             "file.")]
ModeOpt = Annotated[str | None, typer.Option(
    "--mode", help="NONE, BACKWARD (the default), FORWARD, FULL, or the _TRANSITIVE forms.")]
EXIT_INCOMPATIBLE = 1


def _read_schema(path: Path) -> Any:
    from crosswind.governance.registry import SchemaInvalid

    try:
        return json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SchemaInvalid(f"{path} is not JSON: {exc}") from None


def _registry(cfg: Config) -> tuple[StateStore, Registry]:
    from crosswind.governance.registry import Registry

    state = StateStore(cfg.state_dir)
    return state, Registry(state)


def _mirror(cfg: Config, state: StateStore, done: Registered) -> dict[str, Any] | None:
    if not cfg.governance.glue_registry:
        return None
    from crosswind.governance.glue import GlueMirror

    return GlueMirror(cfg, state).mirror(done.version)


@schema_app.command("register")
@guarded
def register_cmd(config: ConfigOpt, subject: SubjectOpt, schema: SchemaFileOpt,
                 mode: ModeOpt = None, as_json: JsonOpt = False) -> None:
    """Register FILE as the subject's next version if it is compatible with the
    registered ones under the subject's mode (--mode also sets that mode); exit 1
    with one reason per line when it is not."""
    from crosswind.governance.registry import SchemaIncompatible

    cfg = load(config)
    doc = _read_schema(schema)
    state, reg = _registry(cfg)
    try:
        try:
            done = reg.register(subject, doc, mode=mode, by=f"schema register {schema.name}")
        except SchemaIncompatible as exc:
            for reason in exc.reasons:
                sys.stdout.write(f"{reason}\n")
            used = mode.upper() if mode else reg.mode(subject)
            err.print(f"not registered: {subject} is {used} and this schema breaks it "
                      f"({len(exc.reasons)} reason(s))")
            raise typer.Exit(EXIT_INCOMPATIBLE) from None
        glue = _mirror(cfg, state, done)
    finally:
        state.close()
    out = {"subject": subject, "version": done.version.version, "id": done.version.id,
           "created": done.created, "mode": done.mode, "fingerprint": done.version.fingerprint,
           "glue": glue}
    if as_json:
        print_json(out)
        return
    what = "registered" if done.created else "already registered (same schema)"
    sys.stdout.write(f"{subject} version {done.version.version} {what}; mode {done.mode}\n")
    if glue:
        err.print(f"mirrored to Glue registry {glue['registry']}: version {glue['glue_version']}")


@schema_app.command("check")
@guarded
def check_cmd(config: ConfigOpt, subject: SubjectOpt, schema: SchemaFileOpt,
              mode: ModeOpt = None) -> None:
    """Exit 0 when FILE is compatible with the subject's registered versions under
    its mode (or --mode); exit 1 with one reason per line when it is not."""
    cfg = load(config)
    doc = _read_schema(schema)
    state, reg = _registry(cfg)
    try:
        reasons = reg.check(subject, doc, mode)
        used = mode.upper() if mode else reg.mode(subject)
        versions = len(reg.versions(subject))
    finally:
        state.close()
    for reason in reasons:
        sys.stdout.write(f"{reason}\n")
    if reasons:
        err.print(f"incompatible: {len(reasons)} reason(s) under {used}")
        raise typer.Exit(EXIT_INCOMPATIBLE)
    err.print(f"compatible with {subject}'s {versions} registered version(s) under {used}")


@schema_app.command("diff")
@guarded
def diff_cmd(config: ConfigOpt, subject: SubjectOpt,
             old: Annotated[int | None, typer.Option(
                 "--from", help="A registered version (default: the one before --to).")] = None,
             new: Annotated[int | None, typer.Option(
                 "--to", help="A registered version (default: the latest).")] = None,
             schema: Annotated[Path | None, typer.Option(
                 "--schema", help="Compare with this file instead of --to.")] = None) -> None:
    """What changed between two versions (or a version and a file): + added,
    - removed, ~ changed, one JSON pointer per line."""
    from crosswind.governance.compat import diff
    from crosswind.governance.registry import require_subject

    cfg = load(config)
    require_subject(subject)
    state, reg = _registry(cfg)
    try:
        if schema is not None:
            right: Any = _read_schema(schema)
            base = reg.get(subject, old) if old is not None else reg.get(subject)
        else:
            to = reg.get(subject, new) if new is not None else reg.get(subject)
            if to is None:
                raise ConfigError(f"{subject} has no version {new or ''}".rstrip())
            right = to.schema
            base = reg.get(subject, old if old is not None else to.version - 1)
        if base is None:
            raise ConfigError(f"{subject}: no version to compare with")
    finally:
        state.close()
    for line in diff(base.schema, right):
        sys.stdout.write(f"{line}\n")


@schema_app.command("list")
@guarded
def list_cmd(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Every subject with its mode and versions."""
    cfg = load(config)
    state, reg = _registry(cfg)
    try:
        subjects = [s.as_dict() for s in reg.subjects()]
    finally:
        state.close()
    if as_json:
        print_json({"subjects": subjects, "enforce": cfg.governance.enforce})
        return
    t = Table(title=f"schema registry (enforce = {cfg.governance.enforce})")
    for col in ("subject", "mode", "versions", "latest", "updated"):
        t.add_column(col)
    for s in subjects:
        t.add_row(s["subject"], s["mode"], str(s["versions"]), str(s["latest"] or "—"),
                  str(s["updated_at"] or "—"))
    err.print(t)


@schema_app.command("show")
@guarded
def show_cmd(config: ConfigOpt, subject: SubjectOpt,
             version: Annotated[int | None, typer.Option(
                 "--version", help="A registered version (default: the latest).")] = None,
             builtin: Annotated[bool, typer.Option(
                 "--builtin", help="The schema crosswind ships for the subject.")] = False,
             ) -> None:
    """Print a schema (JSON on stdout)."""
    from crosswind.governance.registry import require_subject

    cfg = load(config)
    require_subject(subject)
    if builtin:
        sys.stdout.write(json.dumps(builtin_schema(subject), indent=2) + "\n")
        return
    state, reg = _registry(cfg)
    try:
        v = reg.get(subject, version)
    finally:
        state.close()
    if v is None:
        raise ConfigError(f"{subject} has no registered version"
                          + (f" {version}" if version is not None else "")
                          + "; crosswind schema init registers the built-in ones")
    sys.stdout.write(json.dumps(v.schema, indent=2) + "\n")
    err.print(f"{subject} version {v.version} (id {v.id}), registered {v.registered_at}")


@schema_app.command("init")
@guarded
def init_cmd(config: ConfigOpt, mode: ModeOpt = None) -> None:
    """Register the built-in schemas as version 1 of every subject that has none."""
    cfg = load(config)
    state, reg = _registry(cfg)
    try:
        for subject in SUBJECTS:
            if reg.get(subject) is not None:
                err.print(f"{subject}: has versions already; left alone")
                continue
            done = reg.register(subject, builtin_schema(subject), mode=mode, by="schema init")
            _mirror(cfg, state, done)
            sys.stdout.write(f"{subject} version {done.version.version} registered; mode "
                             f"{done.mode}\n")
    finally:
        state.close()


@schema_app.command("infer")
@guarded
def infer_cmd(config: ConfigOpt, subject: SubjectOpt,
              side: Annotated[str | None, typer.Option(
                  "--side", help="azure or aws: where objects are sampled (default azure).")]
              = None,
              sample: Annotated[int, typer.Option("--sample", min=1, max=100_000,
                                                  help="Items to read.")] = 200,
              closed: Annotated[bool, typer.Option(
                  "--closed", help="additionalProperties: false on every object.")] = False,
              out: Annotated[Path | None, typer.Option(
                  "--out", help="Write the schema here (default: stdout).")] = None) -> None:
    """A schema from a sample of the real estate: names, types, required or
    optional, observed formats. Review it, then schema check / register it."""
    from crosswind.governance.infer import infer_schema
    from crosswind.governance.registry import require_subject
    from crosswind.governance.sample import sample_instances
    from crosswind.governance.subjects import DESCRIPTIONS

    cfg = load(config)
    require_subject(subject)
    if side not in (None, "azure", "aws"):
        raise ConfigError("--side is azure or aws")
    instances, source = run(sample_instances(cfg, subject, side=side,  # type: ignore[arg-type]
                                             limit=sample))
    schema = infer_schema(instances, title=f"{subject} (inferred)",
                          description=f"{DESCRIPTIONS[subject]}; from {source}.", closed=closed)
    text = json.dumps(schema, indent=2) + "\n"
    if out is not None:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}: {len(schema.get('properties', {}))} properties from "
                  f"{len(instances)} samples of {source}")
    else:
        sys.stdout.write(text)


@schema_app.command("mirror")
@guarded
def mirror_cmd(config: ConfigOpt) -> None:
    """Mirror every version not yet in the Glue Schema Registry
    (\\[governance] glue_registry)."""
    from crosswind.governance.glue import GlueMirror

    cfg = load(config)
    state, reg = _registry(cfg)
    try:
        done = GlueMirror(cfg, state).mirror_all(reg)
    finally:
        state.close()
    for d in done:
        sys.stdout.write(f"{d['subject']} version {d['version']} = Glue version "
                         f"{d['glue_version']} ({d['schema_version_id']})\n")


@catalog_app.command("export")
@guarded
def catalog_export_cmd(config: ConfigOpt, out: Annotated[Path, typer.Option(
        "--out", help="The directory to write catalog.json, catalog.md and schemas/ into.")],
        as_json: JsonOpt = False) -> None:
    """The flow for a data catalog: datasets, schemas and versions, the lineage
    graph, quality metrics history, stewardship (Markdown and JSON)."""
    from crosswind.governance.catalog import export

    cfg = load(config)
    doc = export(cfg, out)
    if as_json:
        print_json(doc)
        return
    err.print(f"catalog of {doc['flow']['name']}: {len(doc['datasets'])} datasets, "
              f"{sum(s['versions'] for s in doc['schemas'])} schema versions, "
              f"{len(doc['quality']['history'])} validations → {out}")
