"""`crosswind audit verify` and `crosswind audit export`: the hash-chained audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from crosswind.audit import AuditLog, Head, Problem, read_export, verify_chain
from crosswind.cli.app import ConfigOpt, JsonOpt, app, err, guarded, load, print_json
from crosswind.state import StateStore

audit_app = typer.Typer(help="The tamper-evident audit log of plans, approvals and switches.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")

EXIT_TAMPERED = 1


@audit_app.command("verify")
@guarded
def verify_cmd(
    config: ConfigOpt,
    head: Annotated[str | None, typer.Option(
        "--head", help="A head kept elsewhere (SEQ:HASH, as verify printed it before): the "
        "chain must still contain it, which also catches a removed tail.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Verify this export (audit export) instead of the state store.")]
        = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the chain: every edited, removed, reordered or inserted record is reported
    with its sequence number (exit 1)."""
    cfg = load(config)
    outside = [("--head", Head.parse(head))] if head else []
    problems: list[Problem]
    if file is not None:
        problems, last = verify_chain(read_export(file), heads=outside)
        count = sum(1 for _ in read_export(file))
    else:
        state = StateStore(cfg.state_dir)
        try:
            from crosswind.cutover.plan import PlanStore

            anchors = [(f"plan {h[:12]}…", a) for h, a in PlanStore(state).anchors()]
            problems, last = AuditLog(state).verify([*anchors, *outside])
            count = state.db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        finally:
            state.close()
    if as_json:
        print_json({"ok": not problems, "records": count,
                    "head": None if last is None else last.as_dict(),
                    "problems": [{"seq": p.seq, "message": p.message} for p in problems]})
    else:
        for p in problems:
            sys.stdout.write(f"{p}\n")
        if not problems:
            sys.stdout.write(f"ok: {count} records, head {last or 'none'}\n")
            err.print("keep the head somewhere this machine cannot write; audit verify --head "
                      "checks the chain against it later")
    raise typer.Exit(EXIT_TAMPERED if problems else 0)


@audit_app.command("export")
@guarded
def export_cmd(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write.")],
) -> None:
    """Write every record as one line of JSON (the record plus its hash)."""
    cfg = load(config)
    state = StateStore(cfg.state_dir)
    try:
        n, head = AuditLog(state).export(out)
    finally:
        state.close()
    err.print(f"wrote {n} audit records to {out}, head {head or 'none'}")
