"""Redaction: the process-wide redactor every log line, report, HTTP answer and
error message passes through.

Every resolved secret value is registered here (``references.resolve`` does it
before the value is returned), and shapes of secrets that were never
registered (an account key in a connection string, a SAS signature, a MongoDB
password, a bearer token) are masked as well.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import unquote

MASK = "***"

# Shapes of secrets worth hiding even if they were never registered: an account
# key or SAS inside a connection string, a SAS signature in a URL, credentials in
# a MongoDB URI, an AWS secret key passed on a header dump.
_PATTERNS = [
    re.compile(r"(?i)(AccountKey=)[^;\s]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s]+"),
    re.compile(r"(?i)([?&]sig=)[^&\s\"']+"),
    re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]+:)[^@\s]+(@)"),
    re.compile(r"(?i)(aws_secret_access_key\W+)[A-Za-z0-9/+=]{20,}"),
    re.compile(r"(?i)(authorization:\s*bearer\s+)[^\s\"',]+"),
    re.compile(r"(?i)(x-amz-security-token\W+)[A-Za-z0-9/+=]{20,}"),
]


class Redactor:
    """The values to hide (registered) and the shapes to hide (patterns)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        # Very short values would mask innocent text everywhere; they are not
        # realistic secrets anyway.
        if len(value) >= 6:
            with self._lock:
                self._values.add(value)
        parts = re.findall(r"(?i)(?:AccountKey|SharedAccessSignature)=([^;]+)", value)
        # A SAS signature, as written and URL-decoded (a URL may carry either).
        parts += [p for sig in re.findall(r"(?i)(?:^|[?&;])sig=([^&;\s]+)", value)
                  for p in (sig, unquote(sig))]
        with self._lock:
            self._values.update(p for p in parts if len(p) >= 6)

    def known(self, value: str) -> bool:
        with self._lock:
            return value in self._values

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(
                lambda m: m.group(1) + MASK + (m.group(2) if m.lastindex == 2 else ""), text
            )
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    """``text`` with every registered secret and every shape of a secret masked."""
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
