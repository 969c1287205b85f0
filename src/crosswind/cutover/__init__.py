"""Cutover and rollback (CW-5, issue 8): the foundations the runbook executor
stands on.

Holds:

* ``transitions`` — the pure transition table: stages, triggers, the primary
  in each stage, which moves can be undone (property-tested).
* ``gates`` — the gates as pure functions over ``GateInputs``.
* ``runbook`` — the cutover and rollback step lists as data, generated from
  the config; ``cutover plan`` prints them and the executor runs them.
* ``plan`` — the plan document, its canonical JSON (RFC 8785) and SHA-256
  hash, stored plans and when a plan is stale.
* ``inputs`` — gathers the gates' inputs from the state store and a preflight
  of the post-switch direction (the only module here that talks to stores).
* ``planning`` — ``prepare_plan``: inputs → gates → runbook → hash, saved and
  audited (what ``cutover plan`` / ``rollback plan`` call).
* ``approvals`` — SSH signatures (``ssh-keygen -Y sign -n crosswind``) over a
  plan hash, checked against ``[cutover.approvers]``, kept in the state store;
  ``ApprovalBook.authorization`` says whether a plan may run (rollback
  pre-approval included).
* ``journal`` — the step journal: intent before a step, outcome after; the
  point of no return journaled with the phase change in one transaction.
* ``hooks`` — runs the user's hook commands (``/bin/sh -c``, timeout, bounded
  and redacted output).
* ``triggers`` — pure rollback-trigger detection with hysteresis.

May import: model, errors, config, state, secrets, migration, control, audit,
stores, sync, metasync, validate, live (``live.report`` for the status).
Imported only by cli (and web).

Design note: the executor
-------------------------
The executor the lead builds inside the replication service is one loop over
``Runbook.steps`` (the same list ``cutover plan`` printed, so a dry run and
the real run cannot differ):

    assert ApprovalBook.authorization(plan).ok; PlanStore.mark_executed(plan)
    state = CutoverState(stage_for(phase, committed_switch=journal.committed_switch()))
    for step in runbook.steps[resume_index:]:    # resume: from journal.interrupted()
        journal.intent(step)                     # before acting
        outcome = await do(step)                 # dispatch on step.action
        journal.outcome(step, outcome); audit.append(step, outcome, evidence)
        if outcome failed:
            state = fire(state, STEP_FAILED, step=step.name)
            if not state.committed:              # before the point of no return
                for undo in runbook.undo_for(step.name): await do(undo)
                state = fire(state, ABORT)       # under its own timeout
            stop (a committed switch waits for resume or a rollback)
        if step.trigger: state = fire(state, step.trigger)

``Step.action`` names what to do (``check_gates``, ``transition``, ``hook``,
``wait_drained``, ``validate``, ``point_of_no_return``, ``probe``);
``point_of_no_return`` is ``StepJournal.commit_point_of_no_return``: the
journal entry and ``MigrationStore.transition`` in one state-store
transaction, which is why the primary and the replication direction flip in
the same move. ``Runbook.undo_for`` gives the undo steps of the failed step and
every earlier one, latest first (empty past the point of no return). Hooks run
through ``hooks.run_hook`` with ``Step.timeout_s``; gates run again as the
first step (``inputs.gather_inputs`` + ``gates.evaluate_gates``) with the
plan's DLQ acknowledgement. Triggers: the service folds a
``triggers.sample_from_status`` sample per status tick into
``triggers.step``.
"""
