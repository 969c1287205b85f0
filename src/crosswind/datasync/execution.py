"""Start a task execution and follow it to its end: progress from
DescribeTaskExecution, a timeout, and a clear error when it ends in ERROR."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crosswind.datasync.client import DataSyncError, calling
from crosswind.errors import DeleteLimitExceeded
from crosswind.secrets import redact

log = logging.getLogger("crosswind.datasync")

RUNNING = ("QUEUED", "LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "CANCELLING")


class ExecutionFailed(DataSyncError):
    """The execution ended in ERROR (or was cancelled)."""


class ExecutionTimedOut(DataSyncError):
    """Still running after ``[datasync] timeout_s``: cancelled."""


@dataclass(frozen=True)
class Progress:
    """One DescribeTaskExecution, as the progress display and the report read it."""

    status: str
    files_transferred: int = 0
    bytes_transferred: int = 0
    files_verified: int = 0
    files_deleted: int = 0
    files_skipped: int = 0
    estimated_files: int = 0
    estimated_bytes: int = 0
    estimated_deletes: int = 0
    files_at_destination: int = 0

    @classmethod
    def of(cls, d: dict[str, Any]) -> Progress:
        def n(k: str) -> int:
            return int(d.get(k) or 0)

        listed = d.get("FilesListed") or {}
        return cls(str(d.get("Status", "UNKNOWN")), n("FilesTransferred"),
                   n("BytesTransferred"), n("FilesVerified"), n("FilesDeleted"),
                   n("FilesSkipped"), n("EstimatedFilesToTransfer"),
                   n("EstimatedBytesToTransfer"), n("EstimatedFilesToDelete"),
                   int(listed.get("AtDestinationForDelete") or 0))


def error_of(d: dict[str, Any]) -> str:
    r = d.get("Result") or {}
    code = r.get("ErrorCode") or "no error code"
    detail = r.get("ErrorDetail") or ""
    phases = ", ".join(f"{p} {r[p + 'Status']}" for p in ("Prepare", "Transfer", "Verify")
                       if r.get(p + "Status") == "ERROR")
    where = f" in {phases}" if phases else ""
    return redact(f"{code}{where}" + (f": {detail}" if detail else ""))[:500]


async def start(ds: Any, task_arn: str) -> str:
    """The execution to follow: one already running for the task (a run that was
    interrupted while following it), or a new one."""
    with calling(f"DataSync DescribeTask {task_arn}"):
        t = await ds.describe_task(TaskArn=task_arn)
    current = t.get("CurrentTaskExecutionArn")
    if t.get("Status") == "RUNNING" and current:
        log.info("following the execution already running: %s", current)
        return str(current)
    with calling(f"DataSync StartTaskExecution {task_arn}"):
        r = await ds.start_task_execution(TaskArn=task_arn)
    return str(r["TaskExecutionArn"])


async def follow(ds: Any, execution_arn: str, *, poll_s: float, timeout_s: float,
                 on_progress: Callable[[Progress], None],
                 delete_guard: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Poll until the execution ends; its last description when it succeeded.

    ``delete_guard`` sees every description and raises ``DeleteLimitExceeded``
    when DataSync's estimate of deletes is too high: the execution is then
    cancelled (before its transfer phase when the estimate comes early enough)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with calling(f"DataSync DescribeTaskExecution {execution_arn}"):
            d = await ds.describe_task_execution(TaskExecutionArn=execution_arn)
        p = Progress.of(d)
        on_progress(p)
        if p.status == "SUCCESS":
            return dict(d)
        if p.status == "ERROR":
            raise ExecutionFailed(f"DataSync execution {execution_arn} ended in ERROR: "
                                  f"{error_of(d)}")
        if delete_guard is not None:
            try:
                delete_guard(p)
            except DeleteLimitExceeded:
                await cancel(ds, execution_arn)
                raise
        if time.monotonic() >= deadline:
            await cancel(ds, execution_arn)
            raise ExecutionTimedOut(
                f"DataSync execution {execution_arn} still {p.status} after "
                f"{timeout_s:.0f} s ([datasync] timeout_s): cancelled")
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


async def cancel(ds: Any, execution_arn: str) -> None:
    try:
        with calling(f"DataSync CancelTaskExecution {execution_arn}"):
            await ds.cancel_task_execution(TaskExecutionArn=execution_arn)
    except DataSyncError as exc:
        log.warning("could not cancel %s: %s", execution_arn, exc)
