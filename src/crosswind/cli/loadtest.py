"""`crosswind loadtest`: a synthetic flight-event load against a running
`crosswind replicate` (non-production estates only), judged against the SLOs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from crosswind.cli.app import (
    OUTPUT,
    ConfigOpt,
    JsonOpt,
    app,
    err,
    fail,
    guarded,
    load,
    print_json,
    run,
    write_report,
)

RateOpt = Annotated[float, typer.Option("--rate", help="Changes per second (open loop).")]
DurationOpt = Annotated[float, typer.Option("--duration", help="Seconds of load.")]


def say_(text: str, *, markup: bool = False) -> None:
    """One line of the summary, never wrapped (a log or a pipe has no width)."""
    err.print(text, markup=markup, soft_wrap=True)


def _lag_line(name: str, s: dict[str, Any]) -> str:
    return (f"  {name:<20} applied {s['applied']:>6}  p50 {s['p50']:7.2f}  "
            f"p95 {s['p95']:7.2f}  p99 {s['p99']:7.2f}  max {s['max']:7.2f}  "
            f"(worst p99 {s['worst_p99_during_run']:.2f})")


def render(r: dict[str, Any]) -> None:
    g, ld, e, v = r["generator"], r["load"], r["errors"], r["verification"]
    say_(f"load test {r['run_id']} · {r['phase']} ({r['direction']}) · primary "
         f"{escape(r['primary']['objects'])}")
    say_(f"rate: target {ld['rate']:g}/s, achieved {g['achieved_rate_per_s']}/s "
         f"({g['completed']} changes {g['by_kind']}); start lateness p99 "
         f"{g['lateness_s']['p99']} s, max {g['lateness_s']['max']} s")
    say_(f"lag (s, the service's window of {r['lag_window_s']:g} s; SLO "
         f"{r['slo']['target_s']} s):")
    for name, s in r["lag_s"].items():
        say_(escape(_lag_line(name, s)))
    say_(f"errors: {e['primary_writes']} primary writes failed"
         + (f" {e['by']}" if e["by"] else "")
         + f"; service: {e['service_failed']} failed, {e['service_held']} held")
    say_(f"DLQ: {r['dlq']['before']} → {r['dlq']['after']} open "
         f"(growth {r['dlq']['growth']})")
    u = r["utilisation"]
    parts = [f"{ep} {p['mean_in_flight']} mean, {p['peak_in_flight']} peak in flight"
             + (f" of a pool of {p['pool_size']}" if p["pool_size"] else "")
             for ep, p in u["pools"].items()]
    w = u["workers"]
    parts.append(f"workers {w['mean_busy']}/{w['concurrency']} mean, {w['peak_busy']} peak")
    say_("in use: " + "; ".join(escape(p) for p in parts))
    settled = (f", settled after {v['settled_s']} s" if v["settled_s"] is not None
               else f", not settled after {v['waited_s']} s")
    say_(f"replica: {v['objects_checked']} objects and {v['rows_checked']} rows checked, "
         f"lost {v['lost']}" + (f" {v['lost_by']}" if v["lost_by"] else "") + settled)
    for ex in v["examples"][:5]:
        say_(f"  {escape(ex)}")
    for name, c in r["checks"].items():
        mark = "[green]ok[/]" if c["ok"] else "[red]FAILED[/]"
        say_(f"  {mark} {name}: {escape(str(c['value']))} ({escape(c['limit'])})",
             markup=True)
    say_("[bold green]PASSED[/]" if r["passed"] else "[bold red]FAILED[/]", markup=True)


@app.command("loadtest")
@guarded
def loadtest_cmd(
    config: ConfigOpt,
    rate: RateOpt,
    duration: DurationOpt,
    mix: Annotated[str, typer.Option(
        "--mix", help="Weights of the kinds of change: new, overwrite, meta (the metadata "
        "row alone), delete.")] = "new=60,overwrite=20,meta=10,delete=10",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the schedule.")] = 0,
    histogram: Annotated[Path | None, typer.Option(
        "--histogram", help="Sizes from this inventory report (crosswind inventory --json) "
        "instead of an inventory of the primary.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the JSON "
                                                "report here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drive a flight-event load into a NON-production primary while `crosswind replicate`
    runs; report rate, lag, errors, DLQ, pools and losses, and pass/fail against the SLOs.
    Exit 0 passed, 1 failed; refused unless the config says
    \\[loadtest] allowed = true."""
    from crosswind.loadtest.run import LoadtestOptions, loadtest, require_allowed
    from crosswind.loadtest.schedule import ScheduleError, check_load, parse_mix

    try:
        weights = parse_mix(mix)
        check_load(rate, duration)
    except ScheduleError as exc:
        raise fail(str(exc), 2) from None
    cfg = load(config)
    require_allowed(cfg, str(config))

    def say(line: str) -> None:
        if not OUTPUT.quiet:
            say_(escape(line))

    r = run(loadtest(cfg, LoadtestOptions(rate, duration, weights, seed, histogram), say))
    if report is not None:
        write_report(r, report)
    if as_json:
        print_json(r)
    elif not OUTPUT.quiet:
        render(r)
    raise typer.Exit(0 if r["passed"] else 1)
