"""What a sync run is asked to do (``SyncOptions``) and what it gives back
(``SyncResult``). Below both the engine and the report, so that the report can
read a result without importing the engine that makes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crosswind.governance.context import Governance
from crosswind.observability.stats import SyncStats
from crosswind.sync.filters import KeyFilter
from crosswind.sync.transfer import TransferSettings


@dataclass(frozen=True)
class SyncOptions:
    direction: str
    dry_run: bool = False
    delete: bool = False
    filter: KeyFilter = field(default_factory=KeyFilter)
    concurrency: int = 32
    memory_budget: int = 512 * 1024 * 1024
    max_delete_count: int = 1000
    max_delete_percent: float = 10.0
    attempts: int = 3
    transfer: TransferSettings = field(default_factory=TransferSettings)
    #: stewardship and the schema gate's counts, for the report (the gate itself
    #: is ``transfer.schemas``)
    governance: Governance = field(default_factory=Governance.off, compare=False)


@dataclass
class SyncResult:
    run_id: int
    status: str
    stats: SyncStats
    source: str
    destination: str
    options: SyncOptions
    started_at: datetime
    finished_at: datetime
    failures: list[dict[str, str]]
    error: str | None = None
    would_copy_examples: list[dict[str, Any]] = field(default_factory=list)
    would_delete_examples: list[str] = field(default_factory=list)
    #: what the CLI exits with: 0 ok, 1 objects failed, 3 store error, 4 delete guard, ...
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"
