"""The global conventions on real runs: every report (as printed with --json and
as saved under <state>/reports) carries the crosswind version, and --quiet
leaves only the one-line error of a run that could not finish.

In-process through CliRunner (start-up costs a second a call on a busy machine);
tests/unit/test_cli_conventions.py runs the real process for colour and completion.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.rig.emulators import free_port
from crosswind.state import StateStore
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration
VERSION = metadata.version("crosswind")
KEYS = """
[keys]
pattern = "events/{n:int}.json"
partition_key = "p"
row_key = "{n}"
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), prog_name="crosswind")


def json_of(*args: str, code: int = 0) -> dict[str, Any]:
    result = invoke(*args, "--json")
    assert result.exit_code == code, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def saved(env: Env, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((env.config.state_dir / "reports" / name).read_text())
    return doc


def stored(env: Env, run_id: int) -> dict[str, Any]:
    """The report as the state store keeps it: made by the report builder alone (the
    CLI also stamps what it prints and writes, which would hide a builder without it)."""
    state = StateStore(env.config.state_dir)
    try:
        report = state.run_report(run_id)
    finally:
        state.close()
    assert report is not None
    return report


def test_every_report_carries_the_version(make_env: Any) -> None:
    env: Env = make_env(extra=KEYS)
    c = str(env.config_path)
    for i in range(3):
        env.container.upload_blob(f"events/{i}.json", b"{}")
    env.container.upload_blob("events/07.json", b"{}")  # does not fit the pattern

    sync = json_of("sync", "objects", "-c", c, "-d", "azure-to-aws")
    assert sync["kind"] == "sync-objects" and sync["copied"]["count"] == 4
    assert sync["crosswind_version"] == VERSION
    assert saved(env, f"sync-objects-{sync['run_id']}.json")["crosswind_version"] == VERSION
    assert stored(env, sync["run_id"])["crosswind_version"] == VERSION
    runs = json_of("runs", "-c", c)
    assert runs["crosswind_version"] == VERSION

    inventory = json_of("inventory", "-c", c, "--side", "aws")
    assert inventory["kind"] == "inventory" and inventory["objects"] == 4
    assert inventory["crosswind_version"] == VERSION

    checked = json_of("keys", "check", "-c", c, code=1)
    assert checked["kind"] == "keys-check" and checked["failed"] == 1
    assert checked["crosswind_version"] == VERSION

    validated = json_of("validate", "-c", c, "--objects")
    assert validated["kind"] == "validate" and validated["verdict"] == "pass"
    assert validated["crosswind_version"] == VERSION
    assert saved(env, f"validate-{validated['run_id']}.json")["crosswind_version"] == VERSION
    assert stored(env, validated["run_id"])["crosswind_version"] == VERSION
    # The stored report shown again is the one that was made, version included.
    again = json_of("validate", "history", "-c", c, "--run", str(validated["run_id"]))
    assert again == validated


def test_quiet_run_says_nothing_but_its_error(make_env: Any) -> None:
    env: Env = make_env()
    c = str(env.config_path)
    env.container.upload_blob("a.json", b"{}")
    quiet = invoke("-q", "sync", "objects", "-c", c, "-d", "azure-to-aws")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
    loud = invoke("sync", "objects", "-c", c, "-d", "azure-to-aws")
    assert loud.exit_code == 0 and "report:" in loud.stderr  # what -q took away
    # A run that starts and is then stopped (here by the delete guard): its error is the
    # one line, not the summary that would otherwise show it.
    env.container.delete_blob("a.json")
    guarded = invoke("-q", "sync", "objects", "-c", c, "-d", "azure-to-aws", "--delete",
                     "--max-delete", "0")
    assert guarded.exit_code == 4, guarded.output
    lines = guarded.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "delete" in lines[0]
    # Nothing listens on the S3 endpoint any more: the run cannot finish.
    dead = Path(c).read_text().replace(env.config.aws.endpoint_url or "",
                                       f"http://127.0.0.1:{free_port()}")
    Path(c).write_text(dead)
    broken = invoke("-q", "sync", "objects", "-c", c, "-d", "azure-to-aws")
    assert broken.exit_code == 3, broken.output
    lines = broken.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), broken.stderr
    assert broken.stdout == ""
