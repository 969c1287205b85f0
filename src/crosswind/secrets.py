"""Secret references and redaction.

A secret in the config is a *reference*: ``env:NAME`` or ``file:PATH``. The
resolved value is registered with the process-wide redactor, so that every log
line, report and error message crosswind prints passes through ``redact`` and
never shows it. Literal secrets are refused unless the section says it talks to
a local emulator (whose keys are public).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from pydantic import SecretStr

from crosswind.errors import SecretError

MASK = "***"
_SCHEMES = ("env:", "file:")
_UNSUPPORTED = ("keyvault:", "kv:", "aws-sm:", "secretsmanager:")

# Shapes of secrets worth hiding even if they were never registered: an account
# key or SAS inside a connection string, a SAS signature in a URL, credentials in
# a MongoDB URI, an AWS secret key passed on a header dump.
_PATTERNS = [
    re.compile(r"(?i)(AccountKey=)[^;\s]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s]+"),
    re.compile(r"(?i)([?&]sig=)[^&\s\"']+"),
    re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]+:)[^@\s]+(@)"),
    re.compile(r"(?i)(aws_secret_access_key\W+)[A-Za-z0-9/+=]{20,}"),
]


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        # Very short values would mask innocent text everywhere; they are not
        # realistic secrets anyway.
        if len(value) >= 6:
            with self._lock:
                self._values.add(value)
        for part in re.findall(r"(?i)(?:AccountKey|SharedAccessSignature)=([^;]+)", value):
            if len(part) >= 6:
                with self._lock:
                    self._values.add(part)

    def redact(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(
                lambda m: m.group(1) + MASK + (m.group(2) if m.lastindex == 2 else ""), text
            )
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """Attach to handlers so no log record can carry a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        # A traceback is printed after the filters ran: format and redact it now
        # (the formatter uses exc_text as it is when it is set).
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def is_reference(value: str) -> bool:
    return value.startswith(_SCHEMES + _UNSUPPORTED)


def resolve(value: str, *, where: str, allow_literal: bool) -> SecretStr:
    """Resolve a secret reference; ``where`` names the config field for errors.

    The error messages name the field and the reference, never a value.
    """
    if value.startswith("env:"):
        name = value[4:]
        if not name:
            raise SecretError(f"{where}: 'env:' needs a variable name")
        found = os.environ.get(name)
        if found is None or found == "":
            raise SecretError(f"{where}: environment variable {name} is not set")
        secret = found
    elif value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None
        if not secret:
            raise SecretError(f"{where}: secret file {path} is empty")
    elif value.startswith(_UNSUPPORTED):
        scheme = value.split(":", 1)[0]
        raise SecretError(
            f"{where}: secret scheme '{scheme}:' is not supported yet; use env:NAME or file:PATH"
        )
    else:
        if not allow_literal:
            raise SecretError(
                f"{where}: a literal secret is refused; give a reference (env:NAME or "
                "file:PATH), or set emulator = true in this section for a local emulator"
            )
        secret = value
    REDACTOR.register(secret)
    return SecretStr(secret)
