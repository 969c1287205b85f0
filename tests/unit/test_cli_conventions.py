"""The CLI's global conventions: --version, --quiet / --verbose, NO_COLOR and
--no-color, shell completion, and the crosswind version in every JSON document.

In-process through typer's CliRunner where the terminal does not matter;
colour and completion run the real CLI in a subprocess (colour under a pty,
since rich only colours a terminal), as a person would see them.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crosswind.cli import app
from crosswind.cli.app import OUTPUT, stamped
from crosswind.inventory import Inventory
from crosswind.metasync.repair import ReplayResult
from crosswind.model import ObjectMeta
from crosswind.observability.stats import SyncStats
from crosswind.sync.report import sync_report
from crosswind.sync.result import SyncOptions, SyncResult
from crosswind.validate.report import RunFacts, build_report
from crosswind.validate.tally import Targets
from crosswind.version import crosswind_version

REPO = Path(__file__).resolve().parents[2]
VERSION = metadata.version("crosswind")
PATTERN = ["--pattern", "{a}/{n:int}.json", "--partition-key", "{a}", "--row-key", "{n}"]
GOOD, BAD = "x/7.json", "x/07.json"  # 07: integers are written without leading zeros


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env, prog_name="crosswind")


def config(tmp_path: Path) -> Path:
    path = tmp_path / "cw.toml"
    path.write_text(textwrap.dedent("""
        [azure]
        connection_string = "env:CW_TEST_NEVER_RESOLVED"
        container = "c"
        [aws]
        bucket = "b"
        [keys]
        pattern = "{a}/{n:int}.json"
        partition_key = "{a}"
        row_key = "{n}"
        """))
    return path


# -- --version -------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata_which_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert VERSION == project["version"] == crosswind_version()
    for flag in ("--version", "-V"):
        result = invoke(flag)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"crosswind {VERSION}\n"


def test_version_wins_over_a_command() -> None:
    # Eager: printed before the command (which would need a config) is even parsed.
    result = invoke("--version", "sync", "objects")
    assert result.exit_code == 0 and result.stdout == f"crosswind {VERSION}\n"


def test_help_lists_the_global_options() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for option in ("--version", "-V", "--quiet", "-q", "--verbose", "-v", "--no-color",
                   "--install-completion", "--show-completion", "sync", "validate"):
        assert option in result.stdout


# -- --quiet / --verbose ---------------------------------------------------------------


def test_quiet_silences_everything_but_errors_and_json(tmp_path: Path) -> None:
    loud = invoke("keys", "parse", *PATTERN, GOOD, BAD)
    assert loud.exit_code == 1 and "PartitionKey = 'x'" in loud.stderr
    for quiet_args, env in ((["-q"], None), (["--quiet"], None), ([], {"CROSSWIND_QUIET": "1"})):
        quiet = invoke(*quiet_args, "keys", "parse", *PATTERN, GOOD, BAD, env=env)
        assert quiet.exit_code == 1  # the outcome is still in the exit code
        assert quiet.stderr == "" and quiet.stdout == ""
        as_json = invoke(*quiet_args, "keys", "parse", *PATTERN, GOOD, "--json", env=env)
        assert as_json.exit_code == 0 and as_json.stderr == ""
        assert json.loads(as_json.stdout)["results"][0]["row_key"] == "7"
        # Errors still get their one line.
        error = invoke(*quiet_args, "keys", "parse", "-c", str(tmp_path / "nope.toml"), GOOD,
                       env=env)
        assert error.exit_code == 2
        assert error.stderr.startswith("error: ") and error.stderr.count("\n") == 1


def test_verbose_logs_info_on_stderr(tmp_path: Path) -> None:
    cfg = str(config(tmp_path))
    plain = invoke("keys", "parse", "-c", cfg, GOOD)
    assert plain.exit_code == 0 and "INFO" not in plain.stderr
    for verbose_args, env in ((["-v"], None), (["--verbose"], None),
                              ([], {"CROSSWIND_VERBOSE": "1"})):
        loud = invoke(*verbose_args, "keys", "parse", "-c", cfg, GOOD, env=env)
        assert loud.exit_code == 0
        assert f"INFO crosswind.cli: crosswind {VERSION}" in loud.stderr
        assert f"INFO crosswind.cli: config {Path(cfg).resolve()}" in loud.stderr
        assert "PartitionKey = 'x'" in loud.stderr  # verbose adds; it hides nothing
    # "0", "false", "no" and "off" mean off, as a person writing them means.
    off = invoke("keys", "parse", "-c", cfg, GOOD, env={"CROSSWIND_VERBOSE": "0"})
    assert "INFO" not in off.stderr


def test_quiet_and_verbose_exclude_each_other_and_a_flag_beats_the_environment(
        tmp_path: Path) -> None:
    both = invoke("-q", "-v", "keys", "parse", *PATTERN, GOOD)
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    cfg = str(config(tmp_path))
    flag_wins = invoke("-v", "keys", "parse", "-c", cfg, GOOD, env={"CROSSWIND_QUIET": "1"})
    assert flag_wins.exit_code == 0 and "INFO crosswind.cli" in flag_wins.stderr
    assert OUTPUT.verbose and not OUTPUT.quiet
    flag_wins = invoke("-q", "keys", "parse", "-c", cfg, GOOD, env={"CROSSWIND_VERBOSE": "1"})
    assert flag_wins.exit_code == 0 and flag_wins.stderr == ""
    envs = invoke("keys", "parse", *PATTERN, GOOD,
                  env={"CROSSWIND_VERBOSE": "1", "CROSSWIND_QUIET": "yes"})
    assert envs.exit_code == 2 and "exclude each other" in envs.stderr


# -- NO_COLOR / --no-color, on a real terminal ------------------------------------------

_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> list[str]:
    """The SGR parameters that set a colour (foreground, background, 256 and
    true colour); bold, dim and reset are not colours (https://no-color.org)."""
    found = []
    for params in _SGR.findall(text):
        for p in params.split(";"):
            if p and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                found.append(params)
                break
    return found


def on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pty; return its exit code and output."""
    master, slave = pty.openpty()
    base = {k: v for k, v in os.environ.items()
            if k not in ("NO_COLOR", "FORCE_COLOR", "CROSSWIND_QUIET", "CROSSWIND_VERBOSE")}
    proc = subprocess.Popen([sys.executable, "-m", "crosswind", *args], stdin=slave,
                            stdout=slave, stderr=slave, cwd=REPO,
                            env={**base, "COLUMNS": "100", "TERM": "xterm-256color", **env})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(60)
    os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


# Green ✓, red ✗ and a red "error:" line, from one command.
COLOURFUL = ("keys", "parse", *PATTERN, GOOD, BAD)


def test_colours_on_a_terminal_without_no_color() -> None:
    # The baseline the NO_COLOR tests are measured against: colour is really there.
    code, text = on_a_terminal(*COLOURFUL, env={})
    assert code == 1 and "✓" in text and "✗" in text
    assert colour_codes(text)
    code, text = on_a_terminal("--help", env={})
    assert code == 0 and colour_codes(text)


@pytest.mark.parametrize(("flag", "env"), [([], {"NO_COLOR": "1"}), (["--no-color"], {})],
                         ids=["NO_COLOR", "--no-color"])
def test_no_colour_codes_with_no_color(flag: list[str], env: dict[str, str]) -> None:
    code, text = on_a_terminal(*flag, *COLOURFUL, env=env)
    assert code == 1 and "✓" in text and "✗" in text
    assert colour_codes(text) == []
    if env:  # the one-line error's console: the same switch, once is enough
        code, text = on_a_terminal(*flag, "keys", "parse", GOOD, env=env)
        assert code == 2 and "error:" in text and colour_codes(text) == []
    code, text = on_a_terminal(*flag, "--help", env=env)  # typer's own console
    assert code == 0 and "--quiet" in _SGR.sub("", text) and colour_codes(text) == []


def test_the_colour_detector_itself() -> None:
    assert colour_codes("\x1b[1;31merror\x1b[0m \x1b[38;5;200mx\x1b[0m") == ["1;31", "38;5;200"]
    assert colour_codes("\x1b[1mbold\x1b[0m \x1b[2mdim\x1b[0m \x1b[m") == []


# -- shell completion --------------------------------------------------------------------


def bash(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    # Started from bash, as a person's shell would start it: typer detects the shell
    # from the parent process. PATH leads to this interpreter's `crosswind` script.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                          env=env, timeout=60, cwd=home)


def test_show_completion_gives_a_script_that_completes(tmp_path: Path) -> None:
    exe = shlex.quote(str(Path(sys.executable).parent / "crosswind"))
    p = bash(f"""
        source <({exe} --show-completion) || exit 9
        COMP_WORDS=(crosswind sy); COMP_CWORD=1; _crosswind_completion {exe}
        echo "words: ${{COMPREPLY[*]}}"
        COMP_WORDS=(crosswind sync objects --dir); COMP_CWORD=3; _crosswind_completion {exe}
        echo "options: ${{COMPREPLY[*]}}"
        """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "words: sync" in p.stdout
    assert "options: --direction" in p.stdout


def test_install_completion_writes_to_the_users_shell_setup(tmp_path: Path) -> None:
    exe = shlex.quote(str(Path(sys.executable).parent / "crosswind"))
    p = bash(f"{exe} --install-completion; true", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "bash completion installed" in p.stdout
    script = tmp_path / ".bash_completions" / "crosswind.sh"
    assert "_CROSSWIND_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


def test_python_m_crosswind_completes_under_the_same_name() -> None:
    env = {**os.environ, "_CROSSWIND_COMPLETE": "complete_bash",
           "COMP_WORDS": "crosswind val", "COMP_CWORD": "1"}
    p = subprocess.run([sys.executable, "-m", "crosswind"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0 and p.stdout.split() == ["validate"], p.stderr


# -- the version in every JSON document ------------------------------------------------


def test_report_builders_carry_the_version() -> None:
    now = datetime.now(UTC)
    result = SyncResult(1, "succeeded", SyncStats(), "azure://a/c", "s3://b",
                        SyncOptions(direction="azure-to-aws"), now, now, [])
    assert sync_report(result)["crosswind_version"] == VERSION
    inv = Inventory()
    inv.add(ObjectMeta(key="a/b/c", size=3))
    assert inv.report("s3://b", (1.0, 1.0, "assumed"))["crosswind_version"] == VERSION
    facts = RunFacts(1, "azure-to-aws", now, now, {}, {}, {}, Targets())
    assert build_report(facts, {})["crosswind_version"] == VERSION
    assert ReplayResult().report()["crosswind_version"] == VERSION


def test_every_json_output_of_the_cli_carries_the_version(tmp_path: Path) -> None:
    cfg = str(config(tmp_path))
    for args in (["keys", "parse", *PATTERN, GOOD], ["runs", "-c", cfg],
                 ["dlq", "list", "-c", cfg], ["dlq", "purge", "-c", cfg, "--resolved"],
                 ["conflicts", "list", "-c", cfg], ["validate", "history", "-c", cfg]):
        result = invoke(*args, "--json")
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout)["crosswind_version"] == VERSION, args


def test_stamping_keeps_a_version_already_there() -> None:
    # A stored report shown again keeps the version that made it.
    assert stamped({"kind": "validate", "crosswind_version": "0.0.1"})["crosswind_version"] \
        == "0.0.1"
    assert stamped({"runs": []}) == {"runs": [], "crosswind_version": VERSION}


# -- leaving the process ---------------------------------------------------------------


def test_main_leaves_with_the_commands_code_output_flushed_and_exit_handlers_run() -> None:
    # main() skips interpreter finalization (where obstore's runtime threads can abort
    # the process); what a normal exit does before that must still happen.
    script = ("import atexit, sys; atexit.register(print, 'exit handler ran'); "
              "sys.argv[0] = 'crosswind'; from crosswind.cli import main; main()")
    p = subprocess.run([sys.executable, "-c", script, "keys", "parse", *PATTERN, GOOD, BAD,
                        "--json"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 1, p.stderr  # one name did not parse
    report, handler = p.stdout.rsplit("}\n", 1)  # the JSON, then what the handler printed
    assert json.loads(report + "}")["results"][1]["ok"] is False
    assert handler == "exit handler ran\n"


def test_an_option_checked_in_a_command_is_a_usage_error(tmp_path: Path) -> None:
    # typer.BadParameter raised in a command's body, not by the parser: exit 2, one line
    r = invoke("metrics", "-c", str(config(tmp_path)))
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines() if r.stderr else r.output.strip().splitlines()
    assert len(lines) == 1 and "--once" in lines[0] and "internal" not in lines[0], lines
