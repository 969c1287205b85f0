"""Config validation and secret references: clear errors, never a secret value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crosswind.config import load_config, parse_config
from crosswind.errors import ConfigError, SecretError
from crosswind.secrets import REDACTOR, RedactingFilter, redact, resolve

SECRET = "s3cr3t-VALUE-that-must-not-leak-7f3a"


def minimal(**over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "azure": {"connection_string": "env:AZ", "container": "c"},
        "aws": {"bucket": "b"},
    }
    d.update(over)
    return d


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    cfg = parse_config(minimal(), tmp_path)
    assert cfg.sync.concurrency == 32 and cfg.sync.max_delete_percent == 10.0
    assert cfg.state_dir == (tmp_path / ".crosswind").resolve()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (minimal(aws={}), "[aws].bucket is required"),
        (minimal(aws={"bucket": "b", "colour": 1}), "[aws].colour is not a known setting"),
        (minimal(azure={"container": "c"}), "exactly one of connection_string or account_url"),
        (minimal(azure={"container": "c", "account_url": "https://a.blob.core.windows.net"}),
         "needs credential"),
        (minimal(aws={"bucket": "b", "access_key_id": "env:A"}), "both access_key_id"),
        (minimal(aws={"bucket": "b", "endpoint_url": "http://10.0.0.1:9000"}), "plain http"),
        (minimal(aws={"bucket": "b", "endpoint_url": "http://127.0.0.1:9000"}), "plain http"),
        (minimal(sync={"concurrency": 0}), "[sync].concurrency"),
        (minimal(sync={"part_size": 1024}), "[sync].part_size"),
        (minimal(sync={"metadata_key_policy": "guess"}), "[sync].metadata_key_policy"),
    ],
)
def test_bad_config_names_the_setting(tmp_path: Path, data: dict[str, object],
                                      message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data, tmp_path, "cw.toml")
    assert message in str(e.value)
    assert str(e.value).startswith("cw.toml:")


def test_loopback_http_allowed_for_emulator(tmp_path: Path) -> None:
    cfg = parse_config(minimal(aws={"bucket": "b", "endpoint_url": "http://127.0.0.1:9000",
                                    "emulator": True}), tmp_path)
    assert cfg.aws.endpoint_url == "http://127.0.0.1:9000"


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[aws\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_env_and_file_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SECRET", SECRET)
    assert resolve("env:CW_SECRET", where="[x].y", allow_literal=False).get_secret_value() == SECRET
    f = tmp_path / "s"
    f.write_text(SECRET + "\n")
    assert resolve(f"file:{f}", where="[x].y", allow_literal=False).get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("env:CW_NOT_SET_ANYWHERE", "environment variable CW_NOT_SET_ANYWHERE is not set"),
        ("env:", "needs a variable name"),
        ("file:/nonexistent/secret", "cannot read secret file"),
        ("keyvault:https://v/secrets/x", "not a Key Vault reference"),
        ("kv:v/x", "is not known; write keyvault://VAULT/NAME"),
        ("secretsmanager:", "needs a secret name or ARN"),
        (SECRET, "literal secret is refused"),
    ],
)
def test_unresolvable_reference_errors_never_show_values(ref: str, message: str) -> None:
    with pytest.raises(SecretError) as e:
        resolve(ref, where="[aws].secret_access_key", allow_literal=False)
    assert message in str(e.value) and "[aws].secret_access_key" in str(e.value)
    assert SECRET not in str(e.value)


def test_resolved_secrets_are_redacted_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SECRET2", SECRET + "-2")
    value = resolve("env:CW_SECRET2", where="w", allow_literal=False)
    assert SECRET not in repr(value)  # pydantic SecretStr
    assert redact(f"failed with {SECRET}-2 in it") == "failed with *** in it"
    # Shapes of secrets are masked even when never registered.
    text = ("AccountName=a;AccountKey=abcdefghijk==;BlobEndpoint=x "
            "https://a.blob/c?sv=1&sig=ZZZsigZZZ&se=2 mongodb://user:pw12345@host/db")
    out = redact(text)
    assert "abcdefghijk" not in out and "ZZZsigZZZ" not in out and "pw12345" not in out
    assert "AccountName=a" in out and "mongodb://user:***@host" in out


def test_connection_string_parts_are_registered() -> None:
    REDACTOR.register("AccountName=x;AccountKey=KEYPARTabcdef123;EndpointSuffix=e")
    assert "KEYPARTabcdef123" not in redact("key KEYPARTabcdef123 leaked")


def test_logging_filter_redacts(caplog: pytest.LogCaptureFixture) -> None:
    REDACTOR.register("log-secret-0123456")
    logger = logging.getLogger("cwtest")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.error("token %s", "log-secret-0123456")
    finally:
        logger.removeHandler(handler)
    assert records and "log-secret-0123456" not in records[0].getMessage()


def test_logged_tracebacks_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    # The engine logs an unexpected exception with exc_info: its message (and the
    # traceback's source lines) go out through the formatter, after the filter.
    from crosswind.cli.app import setup_logging

    REDACTOR.register("tb-secret-0123456")
    setup_logging(False)
    try:
        try:
            raise RuntimeError("GET https://a.blob/c?sv=1&sig=tbSIGtbSIG failed: tb-secret-0123456")
        except RuntimeError as exc:
            logging.getLogger("crosswind.sync").error("internal error on %s", "k", exc_info=exc)
    finally:
        logging.getLogger().handlers.clear()
    printed = capsys.readouterr().err
    assert "internal error on k" in printed and "RuntimeError" in printed
    assert "tb-secret-0123456" not in printed and "tbSIGtbSIG" not in printed
