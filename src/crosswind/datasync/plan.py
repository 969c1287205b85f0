"""crosswind's sync options → DataSync's requests. Pure: data in, data out.

Filters. crosswind selects a key when it starts with the prefix, matches an
include glob (or there are none) and no exclude glob (``sync/filters.py``).
DataSync filters are ``SIMPLE_PATTERN`` strings of patterns joined by ``|``,
matched against the path from the location's root (``/`` + the key), where a
pattern also matches everything under a folder of that name (``/dir`` selects
``/dir/x``) and ``*`` is the only wildcard (AWS DataSync User Guide,
"Filtering"). Only globs whose meaning is the same under both rules are mapped:
a literal key prefix with one trailing ``*`` (``logs/2026-*``). Other globs
(``*.tmp``, ``a/*/b``, ``?``, ``[..]``) are refused with the reason: DataSync
would select other keys than crosswind's validation expects (``*.tmp`` also
skips every key under a folder called ``x.tmp/``). ``datasync_selects`` is the
model of DataSync's matching the property tests hold the mapping to.

The prefix is an include pattern rather than the location's subdirectory: a
subdirectory would also move the keys (DataSync writes paths relative to it),
and crosswind keeps every key as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crosswind.errors import ConfigError
from crosswind.sync.filters import PROBE_PREFIX, KeyFilter

#: DataSync's limit on a filter's value (FilterValue: up to 102,400 characters)
MAX_FILTER_CHARS = 102_400
#: characters a mapped pattern cannot hold: the delimiter, the escape, glob syntax
#: DataSync does not have
_UNMAPPABLE = set("|\\?[]")

TAG_MANAGED = "crosswind:managed-by"
TAG_NAME = "crosswind:name"
TAG_ROLE = "crosswind:role"
#: what a location points at: a location cannot be moved, only replaced
TAG_TARGET = "crosswind:target"

Role = str  # "source" | "destination" | "task"


class FilterNotMappable(ConfigError):
    """A filter of ours that DataSync's pattern language cannot say exactly."""


@dataclass(frozen=True)
class Filters:
    """DataSync patterns (without the ``|`` joins), each starting with ``/``."""

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def rules(self) -> dict[str, list[dict[str, str]]]:
        """``Includes``/``Excludes`` as CreateTask/UpdateTask take them (an empty
        list clears the task's filter on update)."""
        return {"Includes": _rule(self.includes), "Excludes": _rule(self.excludes)}


def _rule(patterns: Sequence[str]) -> list[dict[str, str]]:
    return [{"FilterType": "SIMPLE_PATTERN", "Value": "|".join(patterns)}] if patterns else []


def _prefix_of(glob: str, option: str) -> str:
    """The key prefix a ``PREFIX*`` glob stands for, or a refusal naming the option."""
    bad = sorted(set(glob) & _UNMAPPABLE)
    if bad:
        raise FilterNotMappable(
            f"{option} {glob!r}: DataSync patterns cannot hold {' '.join(bad)}; "
            'use engine = "crosswind" for this filter')
    if not glob.endswith("*") or "*" in glob[:-1]:
        raise FilterNotMappable(
            f"{option} {glob!r}: with engine = \"datasync\" a filter must be a key prefix "
            "ending in one '*' (e.g. 'logs/2026-*'): DataSync also matches a pattern "
            "against every folder of a key, so other globs would select other keys than "
            'crosswind validates; use engine = "crosswind" for this filter')
    return glob[:-1]


def map_filter(f: KeyFilter) -> Filters:
    """Our filter as DataSync patterns that select exactly the same keys, or
    ``FilterNotMappable``."""
    bad = sorted(set(f.prefix) & (_UNMAPPABLE | {"*"}))
    if bad:
        # In a pattern '*' is a wildcard; in our prefix it is a character.
        raise FilterNotMappable(f"--prefix {f.prefix!r}: DataSync patterns cannot hold "
                                f"{' '.join(bad)} as a character")
    includes = [_prefix_of(g, "--include") for g in f.include]
    excludes = [_prefix_of(g, "--exclude") for g in f.exclude]
    if f.prefix:
        # Selected: under the prefix AND under an include. Prefixes intersect
        # as the longer one, or not at all.
        if not includes:
            includes = [f.prefix]
        else:
            includes = [p if p.startswith(f.prefix) else f.prefix
                        for p in includes if p.startswith(f.prefix) or f.prefix.startswith(p)]
            if not includes:
                raise FilterNotMappable(
                    f"--prefix {f.prefix!r} and --include select no key together")
    if any(p == "" for p in includes):
        includes = []  # '*' includes everything
    out = Filters(tuple(sorted(set(f"/{p}*" for p in includes))),
                  tuple(sorted(set(f"/{p}*" for p in excludes) | {f"/{PROBE_PREFIX}*"})))
    for kind, pats in (("include", out.includes), ("exclude", out.excludes)):
        if len("|".join(pats)) > MAX_FILTER_CHARS:
            raise FilterNotMappable(f"the {kind} filters are longer than DataSync's "
                                    f"{MAX_FILTER_CHARS:,} characters")
    return out


def _pattern_matches(pattern: str, path: str) -> bool:
    """DataSync's matching of one pattern: ``*`` is any run of characters, and a
    pattern that matches a folder of the path matches the path."""
    rx = re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z",
                    re.DOTALL)
    if rx.match(path):
        return True
    parts = path.split("/")
    return any(rx.match("/".join(parts[:i])) for i in range(2, len(parts)))


def datasync_selects(filters: Filters, key: str) -> bool:
    """Whether DataSync would transfer ``key`` with these filters (the model)."""
    path = "/" + key
    if filters.includes and not any(_pattern_matches(p, path) for p in filters.includes):
        return False
    return not any(_pattern_matches(p, path) for p in filters.excludes)


def task_options(*, delete: bool, bytes_per_second: int | None, logs: bool) -> dict[str, Any]:
    """Options matching crosswind's: only what changed, verify what was transferred
    (the one verify mode an ENHANCED task has), overwrite changed objects, deletes
    only when asked (``--delete``)."""
    opts: dict[str, Any] = {
        "TransferMode": "CHANGED",
        "VerifyMode": "ONLY_FILES_TRANSFERRED",
        "OverwriteMode": "ALWAYS",
        "PreserveDeletedFiles": "REMOVE" if delete else "PRESERVE",
        "LogLevel": "TRANSFER" if logs else "OFF",
    }
    if bytes_per_second is not None:
        opts["BytesPerSecond"] = bytes_per_second
    return opts


def tags(name: str, role: Role, target: str | None = None) -> list[dict[str, str]]:
    out = [{"Key": TAG_MANAGED, "Value": "crosswind"}, {"Key": TAG_NAME, "Value": name},
           {"Key": TAG_ROLE, "Value": role}]
    if target is not None:
        out.append({"Key": TAG_TARGET, "Value": target[:256]})
    return out


def tag_map(tag_list: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tag_list}


def is_ours(tag_list: Mapping[str, str], name: str, role: Role) -> bool:
    return (tag_list.get(TAG_MANAGED) == "crosswind" and tag_list.get(TAG_NAME) == name
            and tag_list.get(TAG_ROLE) == role)


@dataclass(frozen=True)
class TaskPlan:
    """Everything crosswind asks of DataSync for one estate, except the SAS token
    (``token_free``: this plan can be printed, logged and stored)."""

    name: str
    container_url: str
    agent_arns: tuple[str, ...]
    bucket_arn: str
    bucket_access_role_arn: str
    s3_storage_class: str
    options: dict[str, Any]
    filters: Filters
    report_bucket_arn: str
    report_prefix: str
    report_role_arn: str
    cloudwatch_log_group_arn: str | None = None

    def azure_location(self) -> dict[str, Any]:
        """CreateLocationAzureBlob without ``SasConfiguration`` (added at the call)."""
        req: dict[str, Any] = {"ContainerUrl": self.container_url,
                               "AuthenticationType": "SAS", "BlobType": "BLOCK",
                               "Tags": tags(self.name, "source", self.container_url)}
        if self.agent_arns:
            req["AgentArns"] = list(self.agent_arns)
        return req

    def azure_update(self, arn: str) -> dict[str, Any]:
        req: dict[str, Any] = {"LocationArn": arn, "AuthenticationType": "SAS",
                               "BlobType": "BLOCK"}
        if self.agent_arns:
            req["AgentArns"] = list(self.agent_arns)
        return req

    def s3_location(self) -> dict[str, Any]:
        return {"S3BucketArn": self.bucket_arn, "S3StorageClass": self.s3_storage_class,
                "S3Config": {"BucketAccessRoleArn": self.bucket_access_role_arn},
                "Tags": tags(self.name, "destination", self.bucket_arn)}

    def s3_update(self, arn: str) -> dict[str, Any]:
        return {"LocationArn": arn, "S3StorageClass": self.s3_storage_class,
                "S3Config": {"BucketAccessRoleArn": self.bucket_access_role_arn}}

    def report_config(self) -> dict[str, Any]:
        # STANDARD with successes: the list of what was verified is what crosswind
        # records and ingests the rows of.
        return {"Destination": {"S3": {"S3BucketArn": self.report_bucket_arn,
                                       "Subdirectory": self.report_prefix,
                                       "BucketAccessRoleArn": self.report_role_arn}},
                "OutputType": "STANDARD", "ReportLevel": "SUCCESSES_AND_ERRORS",
                "ObjectVersionIds": "NONE"}

    def task_settings(self) -> dict[str, Any]:
        """What CreateTask and UpdateTask share."""
        req: dict[str, Any] = {"Name": self.name, "Options": dict(self.options),
                               **self.filters.rules(), "TaskReportConfig": self.report_config()}
        if self.cloudwatch_log_group_arn:
            req["CloudWatchLogGroupArn"] = self.cloudwatch_log_group_arn
        return req

    def create_task(self, source_arn: str, destination_arn: str) -> dict[str, Any]:
        return {"SourceLocationArn": source_arn, "DestinationLocationArn": destination_arn,
                "TaskMode": "ENHANCED", **self.task_settings(),
                "Tags": tags(self.name, "task", f"{source_arn} {destination_arn}")}

    def update_task(self, arn: str) -> dict[str, Any]:
        return {"TaskArn": arn, **self.task_settings()}


def bucket_arn_of(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def default_name(container: str, bucket: str) -> str:
    return f"crosswind-{container}-{bucket}"[:200]
