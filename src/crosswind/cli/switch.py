"""`crosswind cutover start|resume|stop|abort|status|repair|rehearse` and
`crosswind rollback start|status`.

A switch runs inside the replication service (it drains and flips the service);
these commands leave a request for it and print each step as the service runs
it, then exit with the result: 0 done, 1 failed and undone (or aborted), 7
stopped past the point of no return (resume, or roll back), 3 no service
answering. ``status`` and ``repair`` only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crosswind.cli.app import ConfigOpt, JsonOpt, err, guarded, load, print_json
from crosswind.cli.cutover import PlanOpt, cutover_app, rollback_app
from crosswind.config import Config
from crosswind.control import RequestFailed
from crosswind.cutover.gates import Kind
from crosswind.errors import ConfigError, CrosswindError, EndpointUnreachable
from crosswind.state import StateStore

TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", min=1.0, help="Give up waiting for the service after this many seconds "
    "(the switch itself goes on).")]


class NoService(EndpointUnreachable):
    """No replication service runs for this state directory."""


def _request(cfg: Config, kind: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    from crosswind.live.remote import in_service_or_here

    async def here(state: StateStore) -> dict[str, Any]:
        raise NoService("the replication service is not running: a switch runs inside it "
                        "(it drains and flips replication); start `crosswind replicate -c "
                        "CONFIG` and try again")

    try:
        return in_service_or_here(cfg, kind, args, here, say=_say, timeout_s=timeout_s)
    except RequestFailed as exc:
        raise typer.Exit(_print_failure(exc)) from None


def _say(line: str) -> None:
    err.print(escape(line), highlight=False, soft_wrap=True)


def _print_failure(exc: RequestFailed) -> int:
    err.print(f"[bold red]{escape(str(exc))}[/]", markup=True, soft_wrap=True)
    return exc.exit_code


def _finish(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        status = result.get("status", "done")
        rto = f", RTO {result['rto_s']:.1f}s" if result.get("rto_s") is not None else ""
        err.print(f"{result.get('kind', 'switch')} {status} in "
                  f"{result.get('duration_s') or 0:.1f}s{rto}")
        files = result.get("report_files") or {}
        for k in ("json", "html"):
            if files.get(k):
                err.print(f"report ({k}): {files[k]}")
    raise typer.Exit(int(result.get("exit_code") or 0))


def _start(config: Path, kind: Kind, plan: str, timeout: float, as_json: bool,
           request: str = "switch-start") -> None:
    from crosswind.cutover.plan import PlanError, check_hash

    cfg = load(config)
    try:
        h = check_hash(plan)
    except PlanError as exc:
        raise ConfigError(str(exc)) from None
    result = _request(cfg, request, {"plan": h, "kind": kind}, timeout)
    _finish(result, as_json)


@cutover_app.command("start")
@guarded
def cutover_start_cmd(config: ConfigOpt, plan: PlanOpt, timeout: TimeoutOpt = 3600.0,
                      as_json: JsonOpt = False) -> None:
    """Run an approved cutover plan: gates, freeze, drain, validate, point of no
    return, reverse replication proven, switch. Prints each step."""
    _start(config, "cutover", plan, timeout, as_json)


@cutover_app.command("resume")
@guarded
def cutover_resume_cmd(config: ConfigOpt, plan: Annotated[str | None, typer.Option(
        "--plan", help="The plan to resume (default: the last one started).")] = None,
        timeout: TimeoutOpt = 3600.0, as_json: JsonOpt = False) -> None:
    """Go on with a cutover or rollback that stopped (a failed step past its point
    of no return, or a crash) from the first step not done."""
    cfg = load(config)
    h, kind = _last_plan(cfg, plan)
    _finish(_request(cfg, "switch-resume", {"plan": h, "kind": kind}, timeout), as_json)


@cutover_app.command("stop")
@guarded
def cutover_stop_cmd(config: ConfigOpt) -> None:
    """Ask the running switch to stop before its next step; before the point of no
    return it is undone (after it, a switch can only go forward)."""
    cfg = load(config)
    result = _request(cfg, "switch-stop", {}, 60.0)
    err.print("stop requested" if result.get("stop_requested") else "no switch is running")


@cutover_app.command("abort")
@guarded
def cutover_abort_cmd(config: ConfigOpt, plan: Annotated[str | None, typer.Option(
        "--plan", help="default: the last one started")] = None,
        timeout: TimeoutOpt = 900.0, as_json: JsonOpt = False) -> None:
    """Undo a switch that a crash (or a stop) left before its point of no return:
    the undo steps of every step it started, latest first."""
    cfg = load(config)
    h, kind = _last_plan(cfg, plan)
    _finish(_request(cfg, "switch-abort", {"plan": h, "kind": kind}, timeout), as_json)


@cutover_app.command("rehearse")
@guarded
def cutover_rehearse_cmd(config: ConfigOpt, timeout: TimeoutOpt = 7200.0,
                         as_json: JsonOpt = False) -> None:
    """On a non-production estate ([cutover] allow_rehearsal = true): a cutover, then a
    rollback, end to end with the hooks, without approvals; prints the timings."""
    cfg = load(config)
    result = _request(cfg, "switch-rehearse", {}, timeout)
    if as_json:
        print_json(result)
    else:
        for kind in ("cutover", "rollback"):
            r = result.get(kind) or {}
            _steps_table(f"rehearsal: {kind} ({r.get('status')})", r.get("steps") or [])
        if result.get("exit_code") == 0:
            err.print(f"cutover took {result['cutover_s']:.1f}s; rollback RTO "
                      f"{result['rto_s']:.1f}s")
    raise typer.Exit(int(result.get("exit_code") or 0))


@rollback_app.command("start")
@guarded
def rollback_start_cmd(config: ConfigOpt, plan: PlanOpt, timeout: TimeoutOpt = 3600.0,
                       as_json: JsonOpt = False) -> None:
    """Run an approved (or pre-approved) rollback plan; prints each step and the RTO."""
    _start(config, "rollback", plan, timeout, as_json)


def _last_plan(cfg: Config, plan: str | None) -> tuple[str, Kind]:
    from crosswind.cutover.journal import StepJournal
    from crosswind.cutover.plan import PlanStore, check_hash

    state = StateStore(cfg.state_dir)
    try:
        if plan is not None:
            p = PlanStore(state).require(check_hash(plan))
            return p.hash, p.kind
        last = StepJournal(state).last_plan()
    finally:
        state.close()
    if last is None:
        raise CrosswindError("no cutover or rollback has been started in this state directory")
    return last


# -- status and repair -----------------------------------------------------------------


def switch_status(cfg: Config) -> dict[str, Any]:
    from crosswind.cutover.approvals import ApprovalBook
    from crosswind.cutover.executor import last_switch
    from crosswind.cutover.journal import StepJournal
    from crosswind.cutover.plan import PlanStore
    from crosswind.live.report import read_status
    from crosswind.migration import MigrationStore

    live = read_status(cfg)
    state = StateStore(cfg.state_dir)
    try:
        rec = MigrationStore(state).get()
        journal = StepJournal(state)
        last = journal.last_plan()
        plans = PlanStore(state)
        book = ApprovalBook(state, cfg)
        plan_hash = last[0] if last else None
        latest = {k: plans.latest(k) for k in ("cutover", "rollback")}
        shown = plans.get(plan_hash) if plan_hash else (latest["cutover"] or latest["rollback"])
        approvals = [] if shown is None else [
            a.as_dict(cfg.cutover.approval_ttl_s) for a in book.approvals(shown.hash)]
        steps = [] if plan_hash is None else [_timed(p.as_dict()) for p in
                                              journal.progress(plan_hash)]
        doc = {
            "phase": rec.phase.value, "direction": rec.direction.value,
            "version": rec.version, "updated_at": rec.updated_at, "updated_by": rec.updated_by,
            "plan_hash": shown.hash if shown else None,
            "plan_kind": shown.kind if shown else None,
            "approved": None if shown is None else (
                book.quorum(shown.hash, check_stale=False).reason if shown.executed_at
                else book.authorization(shown.hash).reason),
            "approvals": approvals,
            "gates": [] if shown is None else shown.document.get("gates", []),
            "steps": steps,
            "interrupted_step": None if plan_hash is None else journal.interrupted(plan_hash),
            "committed_switch": journal.committed_switch(),
            "last_cutover": _brief(last_switch(state, "cutover")),
            "last_rollback": _brief(last_switch(state, "rollback")),
            "service": {"running": live["service"]["running"], "direction": live["direction"],
                        "switch": live.get("switch")},
        }
    finally:
        state.close()
    return doc


def _timed(step: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    a, b = step.get("started_at"), step.get("finished_at")
    step["duration_s"] = (round((datetime.fromisoformat(b) - datetime.fromisoformat(a))
                                .total_seconds(), 3) if a and b else None)
    return step


def _brief(r: dict[str, Any] | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {k: r.get(k) for k in ("plan_hash", "status", "started_at", "finished_at",
                                   "duration_s", "rto_s", "error", "report_files")} | {
        "steps": [{k: s.get(k) for k in ("name", "started_at", "finished_at", "duration_s",
                                         "outcome", "undo")} for s in r.get("steps", [])]}


def _steps_table(title: str, steps: list[dict[str, Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for col in ("step", "started", "finished", "took", "outcome"):
        t.add_column(col)
    for s in steps:
        took = s.get("duration_s")
        t.add_row(("↩ " if s.get("undo") else "") + str(s.get("name")),
                  str(s.get("started_at") or ""), str(s.get("finished_at") or ""),
                  "" if took is None else f"{took:.1f}s", str(s.get("outcome") or "…"))
    err.print(t)


@cutover_app.command("status")
@guarded
def cutover_status_cmd(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Phase, the switch under way or last run with each step's timings, approvals,
    gates, and the last rollback's RTO."""
    doc = switch_status(load(config))
    if as_json:
        print_json(doc)
        return
    err.print(f"phase [bold]{doc['phase']}[/] (replicating {doc['direction']}), plan "
              f"{(doc['plan_hash'] or '—')[:12]}… ({doc['plan_kind'] or '—'})", markup=True)
    if doc["approved"]:
        err.print(f"approvals: {escape(doc['approved'])}")
    _steps_table("steps (journal)", doc["steps"])
    if doc["interrupted_step"]:
        err.print(f"[yellow]interrupted at {doc['interrupted_step']}[/]: crosswind cutover "
                  "resume (or abort, before the point of no return)", markup=True)
    for kind in ("last_cutover", "last_rollback"):
        r = doc[kind]
        if r:
            rto = f", RTO {r['rto_s']:.1f}s" if r.get("rto_s") is not None else ""
            err.print(f"{kind.replace('_', ' ')}: {r['status']} at {r['finished_at']} in "
                      f"{r['duration_s']}s{rto}")


rollback_app.command("status")(cutover_status_cmd)


@cutover_app.command("repair")
@guarded
def cutover_repair_cmd(config: ConfigOpt, as_json: JsonOpt = False) -> None:
    """Compare what the state store says (phase, journal) with the real world (which
    way the service replicates, hooks run without their undo, open streams) and say
    what would fix each difference. Changes nothing. Exit 1 when something is off."""
    from crosswind.cutover.repair import diagnose

    findings = diagnose(switch_status(load(config)))
    if as_json:
        print_json({"findings": findings, "ok": not findings})
    elif not findings:
        err.print("[green]consistent[/]: the phase, the journal and the service agree",
                  markup=True)
    else:
        for f in findings:
            err.print(f"[red]✗[/] {escape(f['problem'])}\n  → {escape(f['fix'])}", markup=True)
    raise typer.Exit(1 if findings else 0)


