"""``cutover repair``: what the recorded phase and journal say, against what is
running (pure: it reads the status ``cli/switch.py`` assembles)."""

from __future__ import annotations

from typing import Any

_UNDO_OF = {"freeze_azure": "unfreeze_azure", "freeze_aws": "unfreeze_aws"}


def diagnose(doc: dict[str, Any]) -> list[dict[str, str]]:
    """One finding per difference, each with the command or action that fixes it."""
    out: list[dict[str, str]] = []
    svc = doc.get("service") or {}
    switch = (svc.get("switch") or {}) if svc.get("running") else {}
    running_switch = bool(switch.get("running"))
    if svc.get("running") and svc.get("direction") != doc["direction"]:
        out.append({"problem": f"the service replicates {svc.get('direction')} but the phase "
                               f"{doc['phase']} stands for {doc['direction']}",
                    "fix": "it flips by itself within a status tick; if it does not, restart "
                           "crosswind replicate"})
    if not svc.get("running"):
        out.append({"problem": "no replication service is running: nothing keeps the replica "
                               "in step",
                    "fix": "start crosswind replicate -c CONFIG"})
    steps = {s["name"]: s for s in doc.get("steps") or []}
    interrupted = doc.get("interrupted_step")
    if interrupted and not running_switch:
        if doc.get("committed_switch"):
            out.append({"problem": f"the {doc.get('plan_kind')} stopped at step {interrupted} "
                                   "past its point of no return",
                        "fix": "crosswind cutover resume -c CONFIG"})
        else:
            out.append({"problem": f"the {doc.get('plan_kind')} stopped at step {interrupted} "
                                   "before its point of no return",
                        "fix": "crosswind cutover resume -c CONFIG to go on, or crosswind "
                               "cutover abort -c CONFIG to undo it"})
    if doc["phase"] in ("cutting_over", "rolling_back") and not running_switch \
            and not interrupted:
        out.append({"problem": f"the phase is {doc['phase']} but no switch is running or "
                               "interrupted",
                    "fix": "crosswind cutover abort -c CONFIG puts the phase back"})
    for hook, undo in _UNDO_OF.items():
        s, u = steps.get(hook), steps.get(undo)
        if s and s.get("outcome") == "ok" and not (u and u.get("outcome") == "ok") \
                and doc.get("plan_kind") and not running_switch \
                and doc["phase"] in ("cutting_over", "rolling_back"):
            out.append({"problem": f"{hook} ran and {undo} did not: the application's "
                                   "writers may still be frozen",
                        "fix": "crosswind cutover abort -c CONFIG runs the undo hooks"})
    return out
