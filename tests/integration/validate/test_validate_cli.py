"""`crosswind validate` end to end on the rig, as an operator runs it: figures
on hand-computed cases, exit codes that follow the targets, JSON and HTML
reports, history, repair, and bad input (one line, no traceback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crosswind.rig.emulators import AZURITE_KEY, free_port
from crosswind.validate.findings import Kind
from tests.integration.validate.rig import A2W, Side, inject, put_source, sync

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswind", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def validate_json(env: Any, *args: str) -> tuple[int, dict[str, Any]]:
    p = cli("validate", "--config", str(env.config_path), "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def estate(make_env: Callable[..., Any], n: int = 40, extra: str = "") -> Any:
    env = make_env(extra)
    for i in range(n):
        put_source(env, A2W, f"events/{i:03d}.json", b"{}" * (i + 1), {"seq": str(i)})
    sync(env, A2W)
    return env


def test_figures_on_a_hand_computed_case_and_exit_codes(make_env: Callable[..., Any]) -> None:
    env = estate(make_env)
    inject(env, A2W, "events/003.json", Kind.MISSING)
    inject(env, A2W, "events/007.json", Kind.HASH)
    env.s3.put_object(Bucket=env.bucket, Key="zz-extra.json", Body=b"{}")  # type: ignore[attr-defined]

    code, r = validate_json(env, "--full")
    # 40 at the source, 39 of them at the destination: 97.5 % complete.
    # 41 items (40 + 1 extra), 3 with a discrepancy: 38/41 = 92.68292... % pass.
    assert code == 1 and r["verdict"] == "fail"
    t = r["totals"]
    assert (t["items"], t["source_items"], t["present_on_destination"], t["failed"]) == (
        41, 40, 39, 3)
    assert t["completeness_pct"] == 97.5 and t["pass_rate_pct"] == 92.6829
    assert r["discrepancy_counts"] == {"missing_on_destination": 1, "extra_on_destination": 1,
                                       "hash_mismatch": 1}
    assert r["targets"] == {"completeness_pct": 99.9, "pass_rate_pct": 99.5}
    # Exactly at both figures: pass. A hair above either: fail.
    code, r = validate_json(env, "--completeness-target", "97.5", "--pass-rate-target", "92.68")
    assert code == 0 and r["verdict"] == "pass"
    code, _ = validate_json(env, "--completeness-target", "97.51", "--pass-rate-target", "92.68")
    assert code == 1
    code, _ = validate_json(env, "--completeness-target", "97.5", "--pass-rate-target", "92.69")
    assert code == 1
    # The same targets from the config file.
    env2 = env.config_path.with_name("targets.toml")
    env2.write_text(env.config_path.read_text() + textwrap.dedent("""
        [validation]
        completeness_target = 97.5
        pass_rate_target = 92.6
        """))
    p = cli("validate", "--config", str(env2), "--json")
    assert p.returncode == 0, p.stdout + p.stderr


def test_terminal_summary_html_report_and_history(make_env: Callable[..., Any],
                                                  tmp_path: Path) -> None:
    env = estate(make_env, 12)
    odd = "odd/<b>bold</b> & \"quoted\".json"
    put_source(env, A2W, odd, b"{}", {"seq": "x"})  # at the source only: missing
    inject(env, A2W, "events/005.json", Kind.METADATA)
    html = tmp_path / "report.html"
    p = cli("validate", "--config", str(env.config_path), "--full", "--html", str(html))
    assert p.returncode == 1, p.stderr
    assert "FAIL" in p.stderr and "missing on destination" in p.stderr
    assert "metadata mismatch" in p.stderr and "MISSED" in p.stderr
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "</html>" in page
    # Self-contained: no scripts, no external resources; names escaped; no secret.
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=""", page, re.IGNORECASE)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;.json" in page
    assert "<b>bold</b>" not in page
    assert AZURITE_KEY not in page and AZURITE_KEY not in p.stderr + p.stdout
    assert "92.3076 %" in page  # 12 of 13 source objects are at the destination
    assert "metadata &#x27;seq&#x27;" in page  # the example says what differs

    code, clean = validate_json(env, "--sample", "5")
    assert code == 1 and clean["mode"]["sample"] == 5
    # History: newest first, with the figures; one run's report again as HTML.
    p = cli("validate", "history", "--config", str(env.config_path), "--json")
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["validations"]
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
    assert runs[0]["id"] == clean["run_id"] and runs[0]["verdict"] == "fail"
    assert runs[1]["discrepancies"] == 2 and runs[1]["completeness_pct"] == 92.3076
    p = cli("validate", "history", "--config", str(env.config_path))
    assert p.returncode == 0 and "validation runs" in p.stderr
    again = tmp_path / "again.html"
    p = cli("validate", "history", "--config", str(env.config_path), "--run",
            str(runs[1]["id"]), "--html", str(again))
    assert p.returncode == 0 and "&lt;b&gt;bold" in again.read_text()
    p = cli("validate", "history", "--config", str(env.config_path), "--run", "99999")
    assert p.returncode == 2 and "no validation run with that id" in p.stderr


def test_repair_recopies_what_differs_in_the_configured_direction_only(
    make_env: Callable[..., Any],
) -> None:
    env = estate(make_env, 20)
    for key, kind in [("events/001.json", Kind.MISSING), ("events/002.json", Kind.SIZE),
                      ("events/003.json", Kind.HASH), ("events/004.json", Kind.METADATA)]:
        inject(env, A2W, key, kind)
    env.s3.put_object(Bucket=env.bucket, Key="zz-extra.json", Body=b"{}")  # type: ignore[attr-defined]
    source_before = {b.name: b.etag for b in env.container.list_blobs()}

    code, r = validate_json(env, "--repair", "--full", "--pass-rate-target", "95")
    # After repair only the extra object is left: 20/21 = 95.238 % pass.
    assert code == 0 and r["verdict"] == "pass", r
    rep = r["repair"]
    assert rep["objects"]["copied"] == 4 and rep["objects"]["failed"] == 0
    assert rep["copied"] == 4 and "metadata" not in rep  # no rows configured
    assert rep["not_repairable"] == {"objects/extra_on_destination": 1}
    assert r["before_repair"]["discrepancy_counts"] == {
        "missing_on_destination": 1, "size_mismatch": 1, "hash_mismatch": 1,
        "metadata_mismatch": 1, "extra_on_destination": 1}
    assert r["discrepancy_counts"] == {"extra_on_destination": 1}
    # The destination holds the source's bytes and metadata again...
    az, s3 = Side(env, azure=True), Side(env, azure=False)
    for i in range(1, 5):
        key = f"events/{i:03d}.json"
        assert s3.read(key)[0] == az.read(key)[0]
        assert s3.read(key)[1]["seq"] == str(i)
    # ...the source was not touched, the extra object not deleted nor copied back,
    assert {b.name: b.etag for b in env.container.list_blobs()} == source_before
    assert s3.read("zz-extra.json")[0] == b"{}"
    # ...and the repair left verified records: the next sync has nothing to do.
    assert sync(env, A2W)["copied"]["count"] == 0


def test_bad_inputs_are_one_line_errors(make_env: Callable[..., Any], tmp_path: Path) -> None:
    env = make_env()
    cfg = str(env.config_path)
    p = cli("validate", "--config", cfg, "--sample", "3", "--full")
    assert p.returncode == 2 and p.stderr.strip() == (
        "error: --sample and --full exclude each other")
    p = cli("validate")
    assert p.returncode == 2 and "--config is required" in p.stderr
    # A side that cannot be reached: clear error, exit 3, and the run is kept.
    dead = tmp_path / "dead.toml"
    dead.write_text(re.sub(r'endpoint_url = "[^"]+"',
                           f'endpoint_url = "http://127.0.0.1:{free_port()}"',
                           env.config_path.read_text()))
    p = cli("validate", "--config", str(dead))
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 3 and len(lines) == 1, p.stderr
    assert lines[0].startswith("error:") and "cannot reach" in lines[0]
    assert "s3://" in lines[0] and "Traceback" not in p.stderr
    p = cli("validate", "history", "--config", str(dead), "--json")
    last = json.loads(p.stdout)["validations"][0]
    assert last["verdict"] == "error" and "cannot reach" in last["error"]
