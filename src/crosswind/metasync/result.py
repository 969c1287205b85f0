"""What a metadata sync run gives back (``MetaResult``). Below both the runner
and the report, so that the report can read a result without importing the
runner that makes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crosswind.metasync.context import RunContext
from crosswind.state import RunStatus


@dataclass
class MetaResult:
    run_id: int
    status: RunStatus
    error: str | None
    mode: str
    source: str
    destination: str
    started_at: datetime
    finished_at: datetime
    ctx: RunContext
    details: dict[str, Any] = field(default_factory=dict)
    #: the JSON report, made while the state store was still open
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"
