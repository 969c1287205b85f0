"""Serverless settings and configuration from the environment (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crosswind.errors import ConfigError
from crosswind.serverless.package import NOT_SERVERLESS, requirements
from crosswind.serverless.runlog import catalogue_samples, counters
from crosswind.serverless.settings import Settings, config_from_env, settings_from_env

TOML = """
[azure]
connection_string = "env:AZURE_STORAGE_CONNECTION_STRING"
container = "flight-events"
table = "FlightEventMetadata"

[aws]
bucket = "nxop-flight-events"
documentdb_uri = "env:DOCDB_URI"
"""


def test_config_from_a_path_or_inline(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    assert config_from_env({"CROSSWIND_CONFIG": str(path)}).azure.table == "FlightEventMetadata"
    cfg = config_from_env({"CROSSWIND_CONFIG_TOML": TOML})
    assert cfg.aws.bucket == "nxop-flight-events" and cfg.base_dir == Path.cwd().resolve()


@pytest.mark.parametrize(("env", "message"), [
    ({}, "set exactly one of CROSSWIND_CONFIG"),
    ({"CROSSWIND_CONFIG": "a.toml", "CROSSWIND_CONFIG_TOML": TOML}, "set exactly one"),
    ({"CROSSWIND_CONFIG_TOML": "[azure"}, "CROSSWIND_CONFIG_TOML: not valid TOML"),
    ({"CROSSWIND_CONFIG_TOML": TOML + "\n[bogus]\n"}, "[bogus] is not a known setting"),
    ({"CROSSWIND_CONFIG": "/nonexistent/c.toml"}, "cannot read config"),
])
def test_config_errors_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        config_from_env(env)


def test_settings_defaults_and_values() -> None:
    assert settings_from_env({}) == Settings()
    s = settings_from_env({"CROSSWIND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/1/dlq",
                           "CROSSWIND_ATTEMPTS": "3", "CROSSWIND_STOP_MARGIN_S": "7.5",
                           "CROSSWIND_TIME_BUDGET_S": "500",
                           "CROSSWIND_LEDGER_COLLECTION": "ledger",
                           "CROSSWIND_SECRETS": "DOCDB_URI=arn:a, AZ=arn:b"})
    assert (s.attempts, s.stop_margin_s, s.time_budget_s, s.ledger_collection) == (
        3, 7.5, 500.0, "ledger")
    assert s.secrets == (("DOCDB_URI", "arn:a"), ("AZ", "arn:b"))


@pytest.mark.parametrize(("env", "message"), [
    ({"CROSSWIND_ATTEMPTS": "x"}, "not a number"),
    ({"CROSSWIND_ATTEMPTS": "0"}, "below 1"),
    ({"CROSSWIND_STOP_MARGIN_S": "-1"}, "below 0"),
    ({"CROSSWIND_SECRETS": "DOCDB_URI"}, "not VARIABLE=SECRET_ID"),
])
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_the_packages_leave_out_what_only_the_cli_needs() -> None:
    reqs = requirements(("aws-lambda-powertools",))
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"pymongo", "azure-data-tables", "pydantic", "aws-lambda-powertools"} <= names
    assert not names & NOT_SERVERLESS
    assert all("==" in r for r in reqs)


def test_counters_flatten_the_report() -> None:
    report = {"written": 3, "objects": {"read": 4, "bad_names": 1}, "changes": {"read": 0},
              "invocation": {"records": 5, "stopped_by_budget": True, "ignored": {}}}
    got = counters(report)
    assert got["written"] == 3 and got["objects_bad_names"] == 1
    assert got["invocation_records"] == 5 and "invocation_stopped_by_budget" not in got


def test_catalogue_samples_are_the_rows_metric_of_a_one_shot_run() -> None:
    from crosswind.observability.catalogue import BY_NAME

    report = {"written": 3, "unchanged": 2, "failed": 1, "deleted": 0, "stale": 9}
    got = catalogue_samples(report, mode="lambda", direction="azure-to-aws")
    assert {s["labels"]["outcome"]: s["value"] for s in got} == {
        "written": 3, "unchanged": 2, "failed": 1, "deleted": 0}
    metric = BY_NAME["crosswind_rows_total"]  # the catalogue knows the name and labels
    assert all(s["name"] == metric.name and tuple(s["labels"]) == metric.labels for s in got)


def test_an_enforced_schema_gate_is_said_not_to_apply(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import crosswind.serverless.settings as settings_mod

    monkeypatch.setattr(settings_mod, "_WARNED_ENFORCE", False)
    with caplog.at_level("WARNING", logger="crosswind.serverless"):
        config_from_env({"CROSSWIND_CONFIG_TOML": TOML + '\n[governance]\nenforce = "off"\n'})
    assert not caplog.records
    # warn is the default: the handlers say they do not validate before write, once
    with caplog.at_level("WARNING", logger="crosswind.serverless"):
        config_from_env({"CROSSWIND_CONFIG_TOML": TOML})
        config_from_env({"CROSSWIND_CONFIG_TOML": TOML})
    said = [r for r in caplog.records if "not validate before write" in r.getMessage()]
    assert len(said) == 1
