"""`crosswind loadtest` refuses before it writes anything: a config not marked
``[loadtest] allowed = true``, a bad --mix or --rate, a [keys] pattern the load's
names do not fit, no running service. One line each, exit 2 (1 for no service).
The real CLI in a subprocess; no server is needed for any of these (the
endpoints below are closed ports)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crosswind.loadtest.flights import KEY_PATTERN, PARTITION_KEY, ROW_KEY

AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")


def config(tmp_path: Path, extra: str = "", keys: str = KEY_PATTERN) -> Path:
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            f"{AZURITE_KEY};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    p = tmp_path / "lt.toml"
    p.write_text(textwrap.dedent(f"""\
        [azure]
        connection_string = "{conn}"
        container = "c"
        table = "t"
        emulator = true
        [aws]
        bucket = "b"
        endpoint_url = "http://127.0.0.1:9"
        access_key_id = "test"
        secret_access_key = "test"
        documentdb_uri = "mongodb://127.0.0.1:9/"
        database = "d"
        collection = "c"
        emulator = true
        [state]
        dir = "{tmp_path / 'state'}"
        [keys]
        pattern = "{keys}"
        partition_key = "{PARTITION_KEY}"
        row_key = "{ROW_KEY}"
        """) + extra)
    return p


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", "loadtest", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"})


def one_line(p: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert p.returncode == code, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in p.stderr and AZURITE_KEY not in p.stderr


ALLOWED = "[loadtest]\nallowed = true\n"


def test_refused_without_loadtest_allowed(tmp_path: Path) -> None:
    for extra in ("", "[loadtest]\nallowed = false\n"):
        p = cli("-c", str(config(tmp_path, extra)), "--rate", "10", "--duration", "5")
        one_line(p, 2, "[loadtest] allowed = true is not set", "non-production")
    assert not (tmp_path / "state").exists()  # nothing was opened, let alone written


@pytest.mark.parametrize(("args", "needle"), [
    (["--rate", "0", "--duration", "5"], "--rate must be a number of changes per second > 0"),
    (["--rate", "-3", "--duration", "5"], "--rate must be"),
    (["--rate", "nan", "--duration", "5"], "--rate must be"),
    (["--rate", "10", "--duration", "0"], "--duration must be"),
    (["--rate", "0.1", "--duration", "5"], "less than one change"),
    (["--rate", "10", "--duration", "5", "--mix", "new=5,flood=3"], "unknown kind 'flood'"),
    (["--rate", "10", "--duration", "5", "--mix", "delete=5"], "new needs a weight > 0"),
    (["--rate", "10", "--duration", "5", "--mix", "new=a"], "weight of new is not a number"),
])
def test_bad_rate_or_mix_is_a_usage_error(tmp_path: Path, args: list[str], needle: str) -> None:
    one_line(cli("-c", str(config(tmp_path, ALLOWED)), *args), 2, needle)


def test_keys_that_do_not_fit_the_load_and_no_service(tmp_path: Path) -> None:
    bad = config(tmp_path, ALLOWED, keys=KEY_PATTERN.replace("events/", "flights/"))
    one_line(cli("-c", str(bad), "--rate", "5", "--duration", "2"), 2,
             "[keys] pattern does not parse the load's flight-event names")
    one_line(cli("-c", str(config(tmp_path, ALLOWED)), "--rate", "5", "--duration", "2"), 1,
             "no crosswind replicate is running")
    one_line(cli("-c", str(config(tmp_path, ALLOWED + "bogus = 1\n")), "--rate", "5",
                 "--duration", "2"), 2, "[loadtest].bogus is not a known setting")


def test_a_histogram_that_is_not_an_inventory_report(tmp_path: Path) -> None:
    cfg = str(config(tmp_path, ALLOWED))
    one_line(cli("-c", cfg, "--rate", "5", "--duration", "2", "--histogram",
                 str(tmp_path / "none.json")), 2, "--histogram: cannot read")
    bad = tmp_path / "bad.json"
    bad.write_text('{"objects": 3}')
    one_line(cli("-c", cfg, "--rate", "5", "--duration", "2", "--histogram", str(bad)), 2,
             "not an inventory report (no size_histogram list")
