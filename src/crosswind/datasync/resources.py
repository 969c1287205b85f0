"""The DataSync resources of one estate — Azure Blob location, S3 location, task —
found by crosswind's tags and updated, or created when there is none.

A re-run therefore changes the resources it made instead of adding more. A
location cannot be re-pointed (its container or bucket is fixed at creation):
when the config names another one, a new location is made, the task (which
cannot change its locations either) is made anew, and crosswind's old ones are
deleted. The Azure location is updated on every run, so that DataSync always
holds the SAS token the reference resolves to now (tokens are rotated).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from crosswind.datasync.client import DataSyncError, calling
from crosswind.datasync.plan import TAG_TARGET, TaskPlan, is_ours, tag_map

log = logging.getLogger("crosswind.datasync")


@dataclass
class Resources:
    source_arn: str
    destination_arn: str
    task_arn: str
    #: what this run did to them, for the report ("created task arn:...")
    actions: list[str] = field(default_factory=list)


async def _paged(ds: Any, op: str, items: str) -> AsyncIterator[dict[str, Any]]:
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"MaxResults": 100}
        if token:
            kw["NextToken"] = token
        with calling(f"DataSync {op}"):
            page = await getattr(ds, op)(**kw)
        for item in page.get(items, []):
            yield item
        token = page.get("NextToken")
        if not token:
            return


async def tags_of(ds: Any, arn: str) -> dict[str, str]:
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
        if token:
            kw["NextToken"] = token
        with calling(f"DataSync ListTagsForResource {arn}"):
            page = await ds.list_tags_for_resource(**kw)
        out.extend(page.get("Tags", []))
        token = page.get("NextToken")
        if not token:
            return tag_map(out)


async def _ours(ds: Any, op: str, items: str, arn_key: str, name: str, role: str
                ) -> list[tuple[str, dict[str, str]]]:
    found = []
    async for item in _paged(ds, op, items):
        arn = str(item[arn_key])
        tags = await tags_of(ds, arn)
        if is_ours(tags, name, role):
            found.append((arn, tags))
    return found


async def _location(ds: Any, plan: TaskPlan, role: str, target: str, create: Any,
                    update: Any, actions: list[str]) -> tuple[str, list[str]]:
    """The location of ``role`` pointing at ``target``: updated, or created; and
    crosswind's locations of that role that point elsewhere (stale)."""
    ours = await _ours(ds, "list_locations", "Locations", "LocationArn", plan.name, role)
    keep = [arn for arn, t in ours if t.get(TAG_TARGET) == target[:256]]
    stale = [arn for arn, t in ours if arn not in keep[:1]]
    if keep:
        await update(keep[0])
        actions.append(f"updated {role} location {keep[0]}")
        return keep[0], stale
    arn = await create()
    actions.append(f"created {role} location {arn}")
    return arn, stale


async def ensure(ds: Any, plan: TaskPlan, sas_token: str) -> Resources:
    """The locations and the ENHANCED task of ``plan``, as they should be now.
    ``sas_token`` goes into the Azure location's request and nowhere else."""
    actions: list[str] = []

    async def create_azure() -> str:
        with calling("DataSync CreateLocationAzureBlob"):
            r = await ds.create_location_azure_blob(
                **plan.azure_location(), SasConfiguration={"Token": sas_token})
        return str(r["LocationArn"])

    async def update_azure(arn: str) -> None:
        with calling(f"DataSync UpdateLocationAzureBlob {arn}"):
            await ds.update_location_azure_blob(**plan.azure_update(arn),
                                                SasConfiguration={"Token": sas_token})

    async def create_s3() -> str:
        with calling("DataSync CreateLocationS3"):
            r = await ds.create_location_s3(**plan.s3_location())
        return str(r["LocationArn"])

    async def update_s3(arn: str) -> None:
        with calling(f"DataSync UpdateLocationS3 {arn}"):
            await ds.update_location_s3(**plan.s3_update(arn))

    src, stale_src = await _location(ds, plan, "source", plan.container_url, create_azure,
                                     update_azure, actions)
    dst, stale_dst = await _location(ds, plan, "destination", plan.bucket_arn, create_s3,
                                     update_s3, actions)
    task, stale_tasks = await _task(ds, plan, src, dst, actions)
    for arn in stale_tasks:
        await _delete(ds, "delete_task", "TaskArn", arn, "task", actions)
    for arn in (*stale_src, *stale_dst):
        await _delete(ds, "delete_location", "LocationArn", arn, "location", actions)
    return Resources(src, dst, task, actions)


async def _task(ds: Any, plan: TaskPlan, src: str, dst: str, actions: list[str]
                ) -> tuple[str, list[str]]:
    ours = await _ours(ds, "list_tasks", "Tasks", "TaskArn", plan.name, "task")
    keep: str | None = None
    for arn, _tags in ours:
        with calling(f"DataSync DescribeTask {arn}"):
            d = await ds.describe_task(TaskArn=arn)
        # A task's locations and mode are fixed at creation.
        if (d.get("SourceLocationArn"), d.get("DestinationLocationArn")) == (src, dst) \
                and d.get("TaskMode", "ENHANCED") == "ENHANCED" and keep is None:
            keep = arn
    stale = [arn for arn, _ in ours if arn != keep]
    if keep is not None:
        with calling(f"DataSync UpdateTask {keep}"):
            await ds.update_task(**plan.update_task(keep))
        actions.append(f"updated task {keep}")
        return keep, stale
    with calling("DataSync CreateTask"):
        r = await ds.create_task(**plan.create_task(src, dst))
    arn = str(r["TaskArn"])
    actions.append(f"created task {arn}")
    return arn, stale


async def _delete(ds: Any, op: str, arg: str, arn: str, what: str, actions: list[str]) -> None:
    try:
        with calling(f"DataSync {op} {arn}"):
            await getattr(ds, op)(**{arg: arn})
    except DataSyncError as exc:
        # Not worth failing the run (e.g. a task of an old config still running):
        # it is found and tried again next time.
        log.warning("could not delete crosswind's old %s %s yet: %s", what, arn, exc)
        return
    actions.append(f"deleted old {what} {arn}")
