"""What a serverless invocation is configured with.

* The crosswind configuration, the same TOML as the CLI's: a path in
  ``CROSSWIND_CONFIG`` (shipped in the package or mounted) or the text itself in
  ``CROSSWIND_CONFIG_TOML`` (an app setting / environment variable). Secrets in
  it are references as everywhere (``env:NAME``, ``file:PATH``): on Azure an app
  setting may itself be a Key Vault reference
  (``@Microsoft.KeyVault(SecretUri=...)``), which the platform resolves; on AWS
  ``CROSSWIND_SECRETS`` names Secrets Manager secrets to load into environment
  variables at start (``aws_lambda``).
* The deployment's knobs, which belong to the infrastructure rather than to the
  migration (the templates set them): ``CROSSWIND_DLQ_URL``,
  ``CROSSWIND_ATTEMPTS``, ``CROSSWIND_STOP_MARGIN_S``,
  ``CROSSWIND_TIME_BUDGET_S``, ``CROSSWIND_LEDGER_COLLECTION``,
  ``CROSSWIND_SECRETS``.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crosswind.config import Config, load_config, parse_config
from crosswind.errors import ConfigError
from crosswind.serverless.ledger import DEFAULT_COLLECTION

ENV_CONFIG = "CROSSWIND_CONFIG"
ENV_CONFIG_TOML = "CROSSWIND_CONFIG_TOML"


#: whether the unapplied [governance] enforce was said in this process
_WARNED_ENFORCE = False


def config_from_env(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration named by ``CROSSWIND_CONFIG`` or given in
    ``CROSSWIND_CONFIG_TOML`` (exactly one). Relative paths in an inline config
    are taken from the working directory (the package's root on Lambda)."""
    env = os.environ if environ is None else environ
    path, inline = env.get(ENV_CONFIG, ""), env.get(ENV_CONFIG_TOML, "")
    if bool(path) == bool(inline):
        raise ConfigError(f"set exactly one of {ENV_CONFIG} (a path) and {ENV_CONFIG_TOML} "
                          "(the TOML itself)")
    if path:
        cfg = load_config(path)
    else:
        try:
            data = tomllib.loads(inline)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{ENV_CONFIG_TOML}: not valid TOML: {exc}") from None
        if "base_dir" in data:
            raise ConfigError(f"{ENV_CONFIG_TOML}: base_dir is not a known setting")
        cfg = parse_config(data, Path.cwd(), ENV_CONFIG_TOML)
    global _WARNED_ENFORCE
    if cfg.governance.enforce != "off" and not _WARNED_ENFORCE:
        # The schema registry lives in the state store, which a function does not have.
        # Said once per process: the Function reads its config at every invocation.
        _WARNED_ENFORCE = True
        logging.getLogger("crosswind.serverless").warning(
            "[governance] enforce = %r is not applied here: the serverless handlers do "
            "not validate before write (see README, Validation before write)",
            cfg.governance.enforce)
    return cfg


@dataclass(frozen=True)
class Settings:
    #: Lambda: where records that cannot be applied go, with their reason
    #: (the source queue's DLQ); without it they stay batch item failures until
    #: the queue's own redrive policy moves them
    dlq_url: str | None = None
    #: Lambda: receives after which a record that keeps failing on its own (a row
    #: that is still missing) goes to the DLQ; endpoint failures never count
    attempts: int = 5
    #: stop taking new work when less than this is left of the invocation's time
    stop_margin_s: float = 20.0
    #: Azure Function: seconds one timer invocation may run (below functionTimeout)
    time_budget_s: float = 240.0
    ledger_collection: str = DEFAULT_COLLECTION
    #: Lambda: (environment variable, Secrets Manager secret id) pairs loaded at start
    secrets: tuple[tuple[str, str], ...] = ()


def _number(env: Mapping[str, str], name: str, default: float, *, least: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if value < least:
        raise ConfigError(f"{name}: {raw} is below {least:g}")
    return value


def _secrets(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        var, sep, secret_id = part.partition("=")
        if not sep or not var.strip() or not secret_id.strip():
            raise ConfigError(f"CROSSWIND_SECRETS: {part!r} is not VARIABLE=SECRET_ID")
        pairs.append((var.strip(), secret_id.strip()))
    return tuple(pairs)


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        dlq_url=env.get("CROSSWIND_DLQ_URL") or None,
        attempts=int(_number(env, "CROSSWIND_ATTEMPTS", 5, least=1)),
        stop_margin_s=_number(env, "CROSSWIND_STOP_MARGIN_S", 20.0, least=0),
        time_budget_s=_number(env, "CROSSWIND_TIME_BUDGET_S", 240.0, least=1),
        ledger_collection=env.get("CROSSWIND_LEDGER_COLLECTION") or DEFAULT_COLLECTION,
        secrets=_secrets(env.get("CROSSWIND_SECRETS", "")),
    )
