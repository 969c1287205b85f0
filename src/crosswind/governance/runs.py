"""The lineage of each kind of run: its job name, inputs and outputs (the edges
of the runs call these, then ``finish``/``fail`` the run they get back, started).

========================  ================================  ============================
job                       inputs                            outputs
========================  ================================  ============================
``sync-objects.D``        the source's objects              the destination's objects
``sync-metadata.D``       the source's rows (and, for       the destination's rows
                          ``--mode objects`` azure-to-aws,
                          the S3 objects whose names give
                          the keys: Blob → S3 → DocumentDB)
``replicate.D``           the primary's objects and rows    the replica's objects and rows
(one run per interval)
``validate.D``            both sides of every check         none (quality facets on inputs)
``cutover`` /             the old primary's datasets        the new primary's datasets
``rollback``
========================  ================================  ============================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from crosswind.config import Config
from crosswind.governance.context import Governance
from crosswind.governance.lineage import LineageRun, Quality, Stats
from crosswind.governance.naming import DatasetRef, flow_datasets, objects_dataset, rows_dataset
from crosswind.model import Direction


def _started(run: LineageRun) -> LineageRun:
    run.start()
    return run


def objects_lineage(gov: Governance, cfg: Config, direction: Direction, *,
                    dry_run: bool = False) -> LineageRun:
    src, dst = direction.source_side, direction.destination_side
    return _started(gov.lineage.run(
        f"sync-objects.{direction.value}", inputs=[objects_dataset(cfg, src)],
        outputs=[] if dry_run else [objects_dataset(cfg, dst)], job_type="SYNC",
        description=f"crosswind sync objects {direction.value}: new and changed objects "
                    "copied and verified (MD5 of the bytes written)",
        tags={"dry_run": dry_run}))


def metadata_lineage(gov: Governance, cfg: Config, direction: Direction, mode: str, *,
                     dry_run: bool = False) -> LineageRun:
    src, dst = direction.source_side, direction.destination_side
    inputs = [rows_dataset(cfg, src)]
    if mode == "objects" and direction is Direction.AZURE_TO_AWS:
        inputs.append(objects_dataset(cfg, "aws"))  # the names that give the keys
    return _started(gov.lineage.run(
        f"sync-metadata.{direction.value}", inputs=inputs,
        outputs=[] if dry_run else [rows_dataset(cfg, dst)], job_type="SYNC",
        description=f"crosswind sync metadata {direction.value} ({mode}): metadata rows "
                    "mapped losslessly (EDM ⇄ BSON) and upserted",
        tags={"mode": mode, "dry_run": dry_run}))


def _sides(cfg: Config, side: str) -> list[DatasetRef]:
    return [d for d in flow_datasets(cfg) if d.side == side]


def replicate_lineage(gov: Governance, cfg: Config, direction: Direction, run_id: int,
                      interval: int) -> LineageRun:
    return _started(gov.lineage.run(
        f"replicate.{direction.value}", inputs=_sides(cfg, direction.source_side),
        outputs=_sides(cfg, direction.destination_side), job_type="REPLICATION",
        processing="STREAMING",
        description=f"crosswind replicate {direction.value}: one interval of the replication "
                    "service (from one object reconcile to the next)",
        tags={"crosswind.run_id": run_id, "interval": interval}))


def validate_lineage(gov: Governance, cfg: Config, direction: Direction,
                     datasets: list[DatasetRef]) -> LineageRun:
    return _started(gov.lineage.run(
        f"validate.{direction.value}", inputs=datasets, outputs=[], job_type="VALIDATION",
        description=f"crosswind validate {direction.value}: objects (presence, size, checksum), "
                    "rows field by field, and the join; completeness and pass rate"))


def switch_lineage(gov: Governance, cfg: Config, kind: str, plan_hash: str) -> LineageRun:
    old, new = ("azure", "aws") if kind == "cutover" else ("aws", "azure")
    return _started(gov.lineage.run(
        kind, inputs=_sides(cfg, old), outputs=_sides(cfg, new), job_type=kind.upper(),
        description=f"crosswind {kind}: drain, validate, switch the primary from {old} to "
                    f"{new} (approved plan {plan_hash[:12]}…)",
        tags={"plan_hash": plan_hash}))


Counts = tuple[int, int, int]  # objects written, bytes moved, rows applied (cumulative)


class IntervalLineage:
    """``replicate``'s lineage: one run per interval, from one object reconcile to the
    next (``reconcile_interval_s``, 15 minutes by default), so an always-on service
    still shows up as a sequence of finished runs with what each interval wrote.
    The first interval opens when the epoch (one direction) is up; the last closes
    when the epoch ends (the service stops, or a switch flips the direction). An
    interval whose reconcile failed is a FAIL."""

    def __init__(self, gov: Governance, cfg: Config, direction: Direction, run_id: int,
                 counts: Callable[[], Counts]) -> None:
        self.gov, self.cfg, self.direction, self.run_id = gov, cfg, direction, run_id
        self.counts = counts
        self.current: LineageRun | None = None
        self.intervals = 0
        self._base: Counts = (0, 0, 0)

    def open(self) -> None:
        self.intervals += 1
        self._base = self.counts()
        self.current = replicate_lineage(self.gov, self.cfg, self.direction, self.run_id,
                                         self.intervals)

    def roll(self, error: str | None = None) -> None:
        self.close(error)
        self.open()

    def close(self, error: str | None = None) -> None:
        run, self.current = self.current, None
        if run is None:
            return
        objects, nbytes, rows = (a - b for a, b in zip(self.counts(), self._base, strict=True))
        stats = {d.uri: (Stats(rows=objects, bytes=nbytes, files=objects) if d.what == "objects"
                         else Stats(rows=rows)) for d in run.outputs}
        run.finish("failed" if error else "succeeded", error, stats=stats,
                   tags={"crosswind.run_id": self.run_id})


#: which datasets each validation check reads, and which one its figures are about
_CHECK_DATASETS = {"objects": (("azure", "objects"), ("aws", "objects")),
                   "metadata": (("azure", "rows"), ("aws", "rows")),
                   "join-azure": (("azure", "objects"), ("azure", "rows")),
                   "join-aws": (("aws", "objects"), ("aws", "rows"))}


def _check_datasets(cfg: Config, check: str) -> list[DatasetRef]:
    make = {"objects": objects_dataset, "rows": rows_dataset}
    return [make[what](cfg, side) for side, what in _CHECK_DATASETS[check]]  # type: ignore[arg-type]


def _about(cfg: Config, check: str, direction: Direction) -> DatasetRef:
    """The dataset a check's figures describe: the replica for objects and rows,
    the rows of that side for a join."""
    if check in ("objects", "metadata"):
        what = "objects" if check == "objects" else "rows"
        return (objects_dataset if what == "objects" else rows_dataset)(
            cfg, direction.destination_side)
    return rows_dataset(cfg, "azure" if check == "join-azure" else "aws")


def validation_lineage(gov: Governance, cfg: Config, direction: Direction,
                       checks: Iterable[object]) -> LineageRun:
    seen: dict[str, DatasetRef] = {}
    for c in checks:
        for d in _check_datasets(cfg, str(getattr(c, "value", c))):
            seen.setdefault(d.uri, d)
    return validate_lineage(gov, cfg, direction, list(seen.values()))


def finish_validation(run: LineageRun, cfg: Config, direction: Direction,
                      report: Mapping[str, Any]) -> None:
    """COMPLETE with the quality figures of every check (FAIL when it could not run)."""
    targets = report.get("targets") or {}
    quality: dict[str, list[Quality]] = {}
    for name, c in (report.get("checks") or {}).items():
        about = _about(cfg, name, direction)
        quality.setdefault(about.uri, []).append(Quality(
            int(c.get("items") or 0), float(c.get("completeness_pct") or 0.0),
            float(c.get("pass_rate_pct") or 0.0),
            float(targets.get("completeness_pct") or 0.0),
            float(targets.get("pass_rate_pct") or 0.0), name))
    verdict = str(report.get("verdict"))
    run.finish("error" if verdict == "error" else verdict, report.get("error"),
               quality=quality, tags={"crosswind.run_id": report.get("run_id"),
                                      "verdict": verdict})


def finish_switch(run: LineageRun, status: str, error: str | None, *,
                  rto_s: float | None, phase: str) -> None:
    """A cutover's or rollback's end: COMPLETE when it succeeded, FAIL otherwise
    (undone, aborted, or stopped after its point of no return)."""
    tags = {"phase_after": phase, "rto_s": rto_s}
    if status == "succeeded":
        run.complete(tags={"status": status, **tags})
    else:
        run.fail(error or status, tags={"status": status, **tags})
