"""The gates: property tests against a plain restatement of each rule, plus the
runbooks generated from the config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crosswind.config import CutoverConfig, ValidationConfig, parse_config
from crosswind.cutover.gates import (
    GATE_NAMES,
    GateInputs,
    GateLimits,
    PreflightResult,
    StreamBrief,
    ValidationBrief,
    all_pass,
    evaluate_gates,
)
from crosswind.cutover.runbook import cutover_runbook, rollback_runbook
from crosswind.cutover.transitions import CutoverState, Stage, Trigger, fire

LIM = GateLimits(max_lag_s=30.0, validation_max_age_s=86400.0)
DIRS = ["azure-to-aws", "aws-to-azure"]


@st.composite
def gate_inputs(draw: st.DrawFn) -> GateInputs:
    kind = draw(st.sampled_from(["cutover", "rollback"]))
    running = draw(st.booleans())
    dlq_open = draw(st.integers(0, 5))
    validation = draw(st.none() | st.builds(
        ValidationBrief, run_id=st.integers(1, 99), direction=st.sampled_from(DIRS),
        verdict=st.sampled_from(["pass", "fail", "error"]),
        finished_at=st.just("2026-12-01T00:00:00+00:00")))
    return GateInputs(
        kind=kind, phase="pre_cutover" if kind == "cutover" else "post_cutover",
        service_running=running,
        service_direction=draw(st.sampled_from(DIRS)) if running else None,
        lag_p99_s=draw(st.floats(0, 120)), oldest_pending_s=draw(st.floats(0, 120)),
        streams=tuple(draw(st.lists(st.builds(
            StreamBrief, name=st.sampled_from(["azure-blob-events", "reconcile"]),
            failed=st.integers(0, 3), error=st.none() | st.just("queue gone")), max_size=3))),
        service_errors=tuple(draw(st.lists(st.just("reconcile: boom"), max_size=2))),
        breakers=tuple(draw(st.lists(st.tuples(
            st.sampled_from(["s3", "azure-blob"]),
            st.sampled_from(["closed", "closed", "open", "half-open"])), max_size=2,
            unique_by=lambda t: t[0]))),
        dlq_open=dlq_open, dlq_acknowledged=draw(st.integers(0, 5)),
        validation=validation,
        validation_age_s=draw(st.none() | st.floats(-10, 200_000)) if validation else None,
        preflight=draw(st.none() | st.builds(
            PreflightResult, direction=st.sampled_from(DIRS), passed=st.booleans(),
            reason=st.just("probe"))),
        observed_at="2026-12-01T01:00:00+00:00",
        status_error=draw(st.none() | st.just("database is locked")))


def expected(i: GateInputs) -> dict[str, bool]:
    """Each rule, restated plainly."""
    leaving = "azure-to-aws" if i.kind == "cutover" else "aws-to-azure"
    arriving = "aws-to-azure" if i.kind == "cutover" else "azure-to-aws"
    v = i.validation
    return {
        "replication": (i.status_error is None and i.service_running
                        and i.service_direction == leaving
                        and max(i.lag_p99_s, i.oldest_pending_s) < LIM.max_lag_s),
        "streams": not any(s.error for s in i.streams) and not i.service_errors,
        "breakers": all(state == "closed" for _, state in i.breakers),
        "dlq": i.dlq_open == 0 or i.dlq_acknowledged == i.dlq_open,
        "validation": (v is not None and v.direction == leaving and v.verdict == "pass"
                       and i.validation_age_s is not None
                       and 0 <= i.validation_age_s < LIM.validation_max_age_s),
        "preflight": (i.preflight is not None and i.preflight.direction == arriving
                      and i.preflight.passed),
    }


@given(gate_inputs())
def test_each_gate_is_its_rule(i: GateInputs) -> None:
    results = evaluate_gates(i, LIM)
    assert tuple(r.name for r in results) == GATE_NAMES
    want = expected(i)
    for r in results:
        assert r.reason and "\n" not in r.reason
        if i.kind == "cutover":
            assert r.required and r.passed == want[r.name], (r, want)
    if i.kind == "cutover":
        assert all_pass(results) == all(want.values())


@given(gate_inputs())
def test_a_rollback_is_stopped_only_by_what_it_needs(i: GateInputs) -> None:
    i = replace(i, kind="rollback")
    results = {r.name: r for r in evaluate_gates(i, LIM)}
    want = expected(i)
    assert {n for n, r in results.items() if r.required} == {"replication", "preflight"}
    running_right = (i.status_error is None and i.service_running
                     and i.service_direction == "aws-to-azure")
    assert results["replication"].passed == running_right  # however lagged
    assert all_pass(list(results.values())) == (running_right and want["preflight"])


@given(gate_inputs(), st.floats(0, 1000))
def test_more_lag_never_opens_the_gate(i: GateInputs, extra: float) -> None:
    i = replace(i, kind="cutover")
    worse = replace(i, lag_p99_s=i.lag_p99_s + extra)
    before, after = evaluate_gates(i, LIM)[0], evaluate_gates(worse, LIM)[0]
    assert not (after.passed and not before.passed)


@given(gate_inputs())
def test_evidence_carries_what_the_gate_looked_at(i: GateInputs) -> None:
    r = {g.name: g for g in evaluate_gates(replace(i, kind="cutover"), LIM)}
    assert r["replication"].evidence["lag_p99_s"] == i.lag_p99_s
    assert r["dlq"].evidence == {"open": i.dlq_open, "acknowledged": i.dlq_acknowledged}
    if i.validation is not None:
        assert r["validation"].evidence["run_id"] == i.validation.run_id


# -- the runbooks --------------------------------------------------------------------

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPmS+kYx9zFiIUyChtVu1PjcVdIMoWPoC/5ZuQ/Tec6q"


def cutover_config(**over: Any) -> CutoverConfig:
    base = {"azure": {"connection_string": "env:X", "container": "c"},
            "aws": {"bucket": "b"}, "cutover": over}
    return parse_config(base, Path(".")).cutover


HOOKS = {"freeze_command": "echo f", "unfreeze_command": "echo u",
         "switch_command": "echo s", "unswitch_command": "echo us",
         "aws_freeze_command": "echo af", "aws_unfreeze_command": "echo au"}


@given(st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in HOOKS.items()}),
       st.floats(1, 1000), st.floats(1, 1000))
def test_runbooks_keep_their_promises(hooks: dict[str, str], drain: float, hook_t: float
                                      ) -> None:
    # A do-hook without its undo-hook is a config error; keep the pairs whole.
    for do, undo in (("freeze_command", "unfreeze_command"),
                     ("switch_command", "unswitch_command"),
                     ("aws_freeze_command", "aws_unfreeze_command")):
        if do in hooks:
            hooks[undo] = HOOKS[undo]
    cfg = cutover_config(drain_timeout_s=drain, hook_timeout_s=hook_t, **hooks)
    for book in (cutover_runbook(cfg, ValidationConfig()),
                 rollback_runbook(cfg, ValidationConfig())):
        names = [s.name for s in (*book.steps, *book.undo_steps)]
        assert len(names) == len(set(names))
        ponr = book.point_of_no_return
        assert sum(s.point_of_no_return for s in book.steps) == 1
        for n, step in enumerate(book.steps):
            assert step.does and "\n" not in step.does and step.timeout_s != 0
            if n < ponr and step.changes_world:
                assert step.undo is not None, step  # every step before it has an undo
            if n >= ponr:
                assert step.undo is None and book.undo_for(step.name) == []
            if step.undo:
                assert book.step(step.undo) in book.undo_steps
            if step.action == "hook":
                assert step.timeout_s == hook_t
                assert step.skipped == (step.hook not in hooks)
        assert book.step("wait_drained").timeout_s == drain
        # The triggers the steps fire walk the transition table from rest to rest.
        state = CutoverState(Stage.PRE_CUTOVER if book.kind == "cutover"
                             else Stage.POST_CUTOVER)
        for step in book.steps:
            if step.trigger is not None:
                state = fire(state, step.trigger)
        assert state.stage is (Stage.POST_CUTOVER if book.kind == "cutover"
                               else Stage.PRE_CUTOVER)
        # A failure at any step before the point of no return is undone to rest.
        for step in book.steps[:ponr]:
            state = CutoverState(Stage.PRE_CUTOVER if book.kind == "cutover"
                                 else Stage.POST_CUTOVER)
            rest = state
            for s in book.steps[: book.index(step.name)]:
                if s.trigger is not None:
                    state = fire(state, s.trigger)
            if not state.info.in_progress:
                continue  # nothing has begun yet: nothing to undo
            state = fire(state, Trigger.STEP_FAILED, step=step.name)
            for u in book.undo_for(step.name):
                if u.trigger is not None:
                    state = fire(state, u.trigger)
            assert state == rest


def test_undo_runs_latest_first_including_the_failed_step() -> None:
    book = cutover_runbook(cutover_config(**HOOKS), ValidationConfig())
    assert [s.name for s in book.undo_for("wait_drained")] == ["unfreeze_azure",
                                                               "abort_cutover"]
    assert [s.name for s in book.undo_for("freeze_azure")] == ["unfreeze_azure",
                                                               "abort_cutover"]
    assert book.undo_for("check_gates") == []
    assert [s.name for s in book.steps] == [
        "check_gates", "begin", "freeze_azure", "wait_drained", "final_validation",
        "point_of_no_return", "prove_reverse", "unfreeze_aws", "switch", "complete"]
    roll = rollback_runbook(cutover_config(**HOOKS), ValidationConfig())
    assert [s.name for s in roll.steps] == [
        "check_gates", "begin", "freeze_aws", "wait_drained", "final_validation",
        "point_of_no_return", "prove_forward", "unfreeze_azure", "unswitch", "complete"]
    assert roll.step("final_validation").params["direction"] == "aws-to-azure"


def test_an_unconfigured_hook_is_listed_as_skipped() -> None:
    book = cutover_runbook(cutover_config(), ValidationConfig())
    freeze = book.step("freeze_azure")
    assert freeze.skipped and "no freeze_command configured: skipped" in freeze.does


def test_config_refuses_a_hook_without_its_undo() -> None:
    import pytest

    from crosswind.errors import ConfigError

    with pytest.raises(ConfigError, match="freeze_command is set but unfreeze_command is not"):
        cutover_config(freeze_command="true")
    with pytest.raises(ConfigError, match=r"\[cutover\]\.approvers\.al\.public_key must be "
                                          "an ed25519 public key"):
        cutover_config(approvers={"al": {"public_key": "ssh-rsa AAAA", "role": "platform"}})
    with pytest.raises(ConfigError, match="same public key"):
        cutover_config(approvers={"a": {"public_key": PUB, "role": "platform"},
                                  "b": {"public_key": PUB + " bob@x", "role": "security"}})
    with pytest.raises(ConfigError, match="no approver has the required role"):
        cutover_config(approvers={"a": {"public_key": PUB, "role": "platform"}})
    with pytest.raises(ConfigError, match="needs rollback_preapproved"):
        cutover_config(auto_rollback=True)
    with pytest.raises(ConfigError, match=r"\[cutover\]\.max_lag is not a known setting"):
        cutover_config(max_lag=3)
    with pytest.raises(ConfigError, match="must not list a role twice"):
        cutover_config(required_roles=["a", "a"])
    assert cutover_config().max_lag_s == 30 and cutover_config().validation_max_age_s == 86400
