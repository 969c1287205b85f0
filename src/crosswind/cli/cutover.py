"""`crosswind cutover plan|approve` and `crosswind rollback plan|approve`.

``plan`` prints the steps, the gates with their reasons, and the plan hash; the
hash alone goes to stdout (``HASH=$(crosswind cutover plan -c F)``), the rest to
stderr, or everything as JSON with ``--json``. The plan is saved and audited
whether or not its gates pass; the exit code is 0 only when they pass, and only
then can it be approved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crosswind.cli.app import ConfigOpt, JsonOpt, app, err, guarded, load, print_json, run
from crosswind.control import whoami
from crosswind.cutover.gates import Kind

if TYPE_CHECKING:
    from crosswind.cutover.approvals import Quorum
    from crosswind.cutover.plan import Plan

# Planning (the status, a preflight: the stores and SDKs) and approvals (SSH
# signatures) are imported by the commands that use them.
from crosswind.errors import ConfigError
from crosswind.state import StateStore

cutover_app = typer.Typer(help="Switch the primary from Azure to AWS: plan, approve.",
                          no_args_is_help=True)
rollback_app = typer.Typer(help="Switch the primary back from AWS to Azure: plan, approve.",
                           no_args_is_help=True)
app.add_typer(cutover_app, name="cutover")
app.add_typer(rollback_app, name="rollback")

EXIT_GATES_FAILED = 1

AckOpt = Annotated[int, typer.Option(
    "--ack-dlq", min=0, help="Acknowledge this many open dead-letter items (must be all of "
    "them): the dlq gate passes, and the plan records the acknowledgement.")]
PlanOpt = Annotated[str, typer.Option("--plan", help="The plan hash, as plan printed it.")]
KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="Your SSH private key (ed25519): signs the plan hash by running "
    "ssh-keygen -Y sign -n crosswind.")]
SigOpt = Annotated[Path | None, typer.Option(
    "--signature", help="A signature made elsewhere: ssh-keygen -Y sign -n crosswind over a "
    "file holding the plan hash.")]


def plan_json(plan: Plan) -> dict[str, Any]:
    return {"plan_hash": plan.hash, "approvable": plan.gates_passed, **plan.document}


def render_plan(plan: Plan) -> None:
    doc = plan.document
    book = doc["runbook"]
    steps = Table(title=f"{plan.kind} runbook", title_justify="left")
    for col in ("#", "step", "does", "timeout", "undo"):
        steps.add_column(col, overflow="fold")
    for n, s in enumerate(book["steps"], 1):
        name = s["name"] + (" ⟂" if s["point_of_no_return"] else "")
        if s["command"]:
            name += f"\n[dim]$ {escape(s['command'])}[/]"
        steps.add_row(str(n), name, escape(s["does"]),
                      "" if s["timeout_s"] is None else f"{s['timeout_s']:g}s",
                      s["undo"] or ("—" if n - 1 >= _ponr(book) else ""))
    err.print(steps)
    err.print("[dim]⟂ point of no return: before it a failure undoes everything; after it "
              "the way is forward (resume)" + (", or a rollback" if plan.kind == "cutover"
                                                else "") + "[/]")
    gates = Table(title="gates", title_justify="left")
    for col in ("gate", "result", "reason"):
        gates.add_column(col, overflow="fold")
    for g in doc["gates"]:
        mark = "[green]pass[/]" if g["passed"] else (
            "[red]FAIL[/]" if g["required"] else "[yellow]fail (advisory)[/]")
        gates.add_row(g["name"], mark, escape(g["reason"]))
    err.print(gates)
    if plan.gates_passed:
        err.print(f"[green]every required gate passes[/]: approve with crosswind {plan.kind} "
                  f"approve -c CONFIG --plan {plan.hash} --key ~/.ssh/id_ed25519")
    else:
        err.print("[red]a required gate fails[/]: this plan is kept for the record but "
                  "cannot be approved; fix the gate and plan again")
    err.print(f"plan {plan.hash}")


def _ponr(book: dict[str, Any]) -> int:
    return next(n for n, s in enumerate(book["steps"]) if s["point_of_no_return"])


def do_plan(config: Path, kind: Kind, ack_dlq: int, as_json: bool) -> None:
    from crosswind.cutover.planning import prepare_plan

    cfg = load(config)
    plan = run(prepare_plan(cfg, kind, dlq_acknowledged=ack_dlq))
    if as_json:
        print_json(plan_json(plan))
    else:
        render_plan(plan)
        sys.stdout.write(plan.hash + "\n")
    raise typer.Exit(0 if plan.gates_passed else EXIT_GATES_FAILED)


def quorum_line(q: Quorum) -> str:
    return q.reason if q.ok else f"{q.reason} (more approvals are needed)"


def do_approve(config: Path, kind: Kind, plan_hash: str, key: Path | None,
               signature: Path | None, as_json: bool) -> None:
    if (key is None) == (signature is None):
        raise ConfigError("give exactly one of --key PATH (sign here) or --signature FILE "
                          "(a signature made elsewhere)")
    from crosswind.cutover.approvals import ApprovalBook, ApprovalRefused, sign_with_key

    cfg = load(config)
    h = plan_hash.strip().lower()
    if signature is not None:
        try:
            armored = signature.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--signature {signature}: cannot read it: {exc}") from None
    else:
        assert key is not None
        armored = sign_with_key(key.expanduser(), h)
    state = StateStore(cfg.state_dir)
    try:
        book = ApprovalBook(state, cfg)
        plan = book.plans.get(h) if len(h) == 64 else None
        if plan is not None and plan.kind != kind:
            raise ApprovalRefused(f"plan {h[:12]}… is a {plan.kind} plan: use crosswind "
                                  f"{plan.kind} approve")
        approval = book.approve(h, armored, recorded_by=whoami())
        q = book.quorum(h)
    finally:
        state.close()
    if as_json:
        print_json({"approval": approval.as_dict(cfg.cutover.approval_ttl_s),
                    "approved": q.ok, "quorum": q.reason,
                    "missing_roles": list(q.missing_roles)})
        return
    err.print(f"accepted: {approval.approver} ({approval.role}, {approval.key_fingerprint}) "
              f"approved {kind} plan {h[:12]}…, valid until "
              f"{approval.expires_at(cfg.cutover.approval_ttl_s).isoformat(timespec='seconds')}")
    err.print(quorum_line(q))


@cutover_app.command("plan")
@guarded
def cutover_plan_cmd(config: ConfigOpt, ack_dlq: AckOpt = 0, as_json: JsonOpt = False) -> None:
    """Evaluate every gate and print the exact steps a cutover will take, with the
    plan hash the approvers sign. Exit 1 when a required gate fails."""
    do_plan(config, "cutover", ack_dlq, as_json)


@cutover_app.command("approve")
@guarded
def cutover_approve_cmd(config: ConfigOpt, plan: PlanOpt, key: KeyOpt = None,
                        signature: SigOpt = None, as_json: JsonOpt = False) -> None:
    """Approve a cutover plan with your SSH key (or a signature made elsewhere)."""
    do_approve(config, "cutover", plan, key, signature, as_json)


@rollback_app.command("plan")
@guarded
def rollback_plan_cmd(config: ConfigOpt, ack_dlq: AckOpt = 0, as_json: JsonOpt = False
                      ) -> None:
    """Evaluate the gates and print the exact steps a rollback will take, with its
    plan hash. Exit 1 when a required gate fails."""
    do_plan(config, "rollback", ack_dlq, as_json)


@rollback_app.command("approve")
@guarded
def rollback_approve_cmd(config: ConfigOpt, plan: PlanOpt, key: KeyOpt = None,
                         signature: SigOpt = None, as_json: JsonOpt = False) -> None:
    """Approve a rollback plan (not needed with [cutover] rollback_preapproved = true:
    the cutover's approvals cover it)."""
    do_approve(config, "rollback", plan, key, signature, as_json)
