"""``crosswind schema ...`` as the issue states it: register (default mode
BACKWARD, --mode sets it, an incompatible version refused with exit 1 and one
reason per line), check (exit 0, or exit 1 with one reason per line), diff,
list and show — on a state store alone, no servers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.governance.subjects import SUBJECTS, builtin_schema

SUBJECT = "documentdb-document"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CW_TEST_CS", "UseDevelopmentStorage=true")
    path = tmp_path / "crosswind.toml"
    path.write_text('[azure]\nconnection_string = "env:CW_TEST_CS"\ncontainer = "c"\n'
                    '[aws]\nbucket = "b"\n[state]\ndir = "state"\n')
    return str(path)


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def write(tmp: Path, name: str, doc: Any) -> str:
    p = tmp / name
    p.write_text(json.dumps(doc))
    return str(p)


def test_register_check_diff_list_show(config: str, tmp_path: Path) -> None:
    base = builtin_schema(SUBJECT)
    v1 = write(tmp_path, "v1.json", base)
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema", v1)
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{SUBJECT} version 1 registered; mode BACKWARD\n"
    # the same schema again is the same version
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema", v1)
    assert r.stdout.startswith(f"{SUBJECT} version 1 already registered")

    # closed model: a new required property breaks BACKWARD (old documents lack it),
    # and so does narrowing a type
    bad = copy.deepcopy(base)
    bad["properties"]["Gate"] = {"type": "string"}
    bad["required"] = [*bad["required"], "Gate"]
    bad["properties"]["FlightNumber"] = {"type": "integer", "maximum": 9}
    bad_file = write(tmp_path, "bad.json", bad)
    r = run("schema", "check", "-c", config, "--subject", SUBJECT, "--schema", bad_file)
    assert r.exit_code == 1
    reasons = r.stdout.splitlines()
    assert len(reasons) >= 2 and all(line.strip() for line in reasons)
    assert any("Gate" in line and "required" in line for line in reasons), reasons
    assert any("FlightNumber" in line and "maximum" in line for line in reasons), reasons
    assert "incompatible" in r.stderr and "BACKWARD" in r.stderr
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema", bad_file)
    assert r.exit_code == 1 and r.stdout.splitlines() == reasons
    # under NONE the same file is fine to check
    r = run("schema", "check", "-c", config, "--subject", SUBJECT, "--schema", bad_file,
            "--mode", "NONE")
    assert r.exit_code == 0 and r.stdout == ""

    # an optional property a closed model adds is BACKWARD: registered, mode FULL set
    good = copy.deepcopy(base)
    good["properties"]["Gate"] = {"type": "string"}
    good_file = write(tmp_path, "good.json", good)
    r = run("schema", "check", "-c", config, "--subject", SUBJECT, "--schema", good_file)
    assert r.exit_code == 0 and r.stdout == "", r.output
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema", good_file,
            "--mode", "FULL")
    # FULL: v1 readers (closed) refuse documents with Gate, so not even FULL allows it
    assert r.exit_code == 1 and any("Gate" in line for line in r.stdout.splitlines())
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema", good_file)
    assert r.exit_code == 0 and r.stdout.startswith(f"{SUBJECT} version 2 registered")

    r = run("schema", "diff", "-c", config, "--subject", SUBJECT)
    assert r.exit_code == 0 and r.stdout.splitlines() == ['+ /properties/Gate: {"type": "string"}']
    r = run("schema", "list", "-c", config, "--json")
    listed = {s["subject"]: s for s in json.loads(r.stdout)["subjects"]}
    assert set(listed) == set(SUBJECTS)
    assert (listed[SUBJECT]["mode"], listed[SUBJECT]["versions"],
            listed[SUBJECT]["latest"]) == ("BACKWARD", 2, 2)
    assert listed["table-entity"]["versions"] == 0
    r = run("schema", "show", "-c", config, "--subject", SUBJECT, "--version", "1")
    assert json.loads(r.stdout) == base
    r = run("schema", "show", "-c", config, "--subject", SUBJECT)
    assert json.loads(r.stdout) == good


def test_refusals(config: str, tmp_path: Path) -> None:
    schema = write(tmp_path, "s.json", {"type": "strin"})
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema", schema)
    assert r.exit_code == 2, r.output
    r = run("schema", "register", "-c", config, "--subject", "nope", "--schema", schema)
    assert r.exit_code == 2 and "nope" in r.output
    r = run("schema", "register", "-c", config, "--subject", SUBJECT, "--schema",
            write(tmp_path, "ok.json", {"type": "object"}), "--mode", "SIDEWAYS")
    assert r.exit_code == 2 and "SIDEWAYS" in r.output
