"""Typed configuration, read from one TOML file.

Secrets are references (see ``crosswind.secrets``) and are resolved only when a
store is built, so loading and checking a config never needs them. Unknown keys are
errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crosswind.errors import ConfigError, KeyPatternError
from crosswind.keys import KeySpec

MiB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PlainHttpRefused(ConfigError, ValueError):
    """A ValueError too, so that pydantic reports it with the setting's location."""


def check_plain_http(url: str, *, emulator: bool, where: str) -> None:
    """Plain http only for a loopback emulator, and only when the config says so."""
    if urlparse(url).scheme != "http":
        return
    if not (emulator and is_loopback(url)):
        raise PlainHttpRefused(
            f"{where}: plain http is allowed only for a loopback emulator with "
            "emulator = true; use https"
        )


#: Azure queue names: 3-63 lower-case letters, digits and single hyphens, starting and
#: ending with a letter or digit
_AZURE_QUEUE = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
#: SQS queue names: 1-80 letters, digits, hyphens and underscores (FIFO: ".fifo")
_SQS_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


class AzureConfig(_Section):
    connection_string: str | None = None
    account_url: str | None = None
    #: "default" (DefaultAzureCredential), or a reference to an account key or SAS token
    credential: str | None = None
    container: str
    table: str | None = None
    #: the Storage Queue Event Grid delivers the container's blob events to
    #: (same storage account)
    queue: str | None = None
    #: local emulator: literal (public) keys and http to loopback are allowed
    emulator: bool = False

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, v: str | None) -> str | None:
        if v is not None and not _AZURE_QUEUE.match(v):
            raise ValueError(f"{v!r} is not an Azure queue name (3-63 lower-case letters, "
                             "digits and single hyphens, starting and ending with a letter "
                             "or digit)")
        return v

    @model_validator(mode="after")
    def _one_auth(self) -> AzureConfig:
        if bool(self.connection_string) == bool(self.account_url):
            raise ValueError("give exactly one of connection_string or account_url")
        if self.account_url:
            if not self.credential:
                raise ValueError("account_url needs credential (\"default\" or a reference)")
            check_plain_http(self.account_url, emulator=self.emulator, where="account_url")
        return self


class AwsConfig(_Section):
    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    documentdb_uri: str | None = None
    database: str = "crosswind"
    collection: str = "objects_metadata"
    #: single-part ETags are content MD5s (false for SSE-KMS buckets)
    etag_is_md5: bool = True
    #: the SQS queue the bucket's event notifications go to, e.g.
    #: https://sqs.us-east-1.amazonaws.com/123456789012/crosswind-events (endpoint_url,
    #: when set, is used for SQS too)
    sqs_queue_url: str | None = None
    #: cross-account: the role every AWS client assumes (STS AssumeRole) with the keys
    #: above or the default chain, e.g. arn:aws:iam::210987654321:role/crosswind
    role_arn: str | None = None
    #: the external ID the role's trust policy asks for (a literal or a reference)
    external_id: str | None = None
    role_session_name: str = Field("crosswind", pattern=r"^[\w+=,.@-]{2,64}$")
    emulator: bool = False

    @model_validator(mode="after")
    def _keys_pair(self) -> AwsConfig:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        if self.role_arn is not None and not _ROLE_ARN.match(self.role_arn):
            raise ValueError(f"role_arn {self.role_arn!r} is not an IAM role ARN "
                             "(arn:aws:iam::ACCOUNT-ID:role/NAME)")
        if self.external_id is not None and not self.role_arn:
            raise ValueError("external_id needs role_arn")
        if self.endpoint_url:
            check_plain_http(self.endpoint_url, emulator=self.emulator, where="endpoint_url")
        if self.sqs_queue_url:
            _check_sqs_url(self.sqs_queue_url, emulator=self.emulator)
        return self


def _check_sqs_url(url: str, *, emulator: bool) -> None:
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"sqs_queue_url {url!r} is not an http(s) URL")
    check_plain_http(url, emulator=emulator, where="sqs_queue_url")
    segments = parts.path.strip("/").split("/")
    if len(segments) != 2 or not segments[0].isdigit() or not _SQS_QUEUE.match(segments[1]) \
            or parts.query or parts.fragment:
        raise ValueError(f"sqs_queue_url {url!r} is not a queue URL of the form "
                         "https://sqs.REGION.amazonaws.com/ACCOUNT-ID/QUEUE-NAME")


class StateConfig(_Section):
    dir: Path = Path(".crosswind")


class SyncConfig(_Section):
    #: objects transferred at once
    concurrency: int = Field(32, ge=1, le=1024)
    #: objects at or above this size go in parts. Below it one request, which
    #: streams (a chunk in memory, not the object): an S3 ETag that is the
    #: content MD5 (checkable by any tool) and half the server work of parts
    #: (README "Performance": 300 MiB objects at 119 vs 65 MB/s on the rig).
    #: Parts win where one connection is slower than the link (few huge objects
    #: over a long WAN): lower it there (rclone's cutoff is 200 MiB).
    multipart_threshold: int = Field(512 * MiB, ge=5 * MiB)
    part_size: int = Field(8 * MiB, ge=5 * MiB, le=4000 * MiB)
    #: parts of one object in flight at once
    part_concurrency: int = Field(4, ge=1, le=64)
    #: cap on object bytes held in memory across all transfers
    memory_budget: int = Field(512 * MiB, ge=16 * MiB)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prefix: str = ""
    #: --delete aborts before deleting anything when it would delete more than this
    max_delete_count: int = Field(1000, ge=0)
    max_delete_percent: float = Field(10.0, ge=0, le=100)
    #: a metadata key the destination cannot hold: rename it reversibly, skip it, or fail
    metadata_key_policy: Literal["rename", "skip", "fail"] = "rename"
    #: write crosswind's own entries (crosswind-md5, crosswind-mtime) on every
    #: destination object; off for estates whose readers enumerate metadata
    stamp_metadata: bool = True
    #: attempts per object for retryable errors (the SDKs' own retries come first)
    attempts: int = Field(3, ge=1, le=20)
    #: who moves the bytes of `sync objects`: crosswind itself, or AWS DataSync
    #: (azure-to-aws; needs a [datasync] section, README "DataSync engine")
    engine: Literal["crosswind", "datasync"] = "crosswind"

    @model_validator(mode="after")
    def _parts(self) -> SyncConfig:
        if self.part_size * self.part_concurrency > self.memory_budget:
            raise ValueError("part_size * part_concurrency must fit in memory_budget")
        return self


_BUCKET_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AGENT_ARN = re.compile(r"^arn:aws[a-z-]*:datasync:[a-z0-9-]+:\d{12}:agent/agent-[0-9a-z]{17}$")
_LOG_GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:logs:[a-z0-9-]+:\d{12}:log-group:[^*]+(:\*)?$")


class DataSyncConfig(_Section):
    """``[datasync]``: AWS DataSync as the mover of ``sync objects`` azure-to-aws
    (``[sync] engine = "datasync"``); README "DataSync engine"."""

    #: tags the locations and the task crosswind makes (``crosswind:name``), so that a
    #: re-run finds and updates them; default ``crosswind-<container>-<bucket>``
    name: str | None = Field(None, pattern=r"^[\w.:/=+@-]{1,200}$")
    #: the DataSync endpoint and region (default: ``[aws]``'s)
    endpoint_url: str | None = None
    region: str | None = None
    #: the container as DataSync reaches it (default: the account's blob endpoint
    #: from ``[azure]`` + ``/<container>``)
    container_url: str | None = None
    #: a reference to the container SAS token DataSync reads with (read and list);
    #: resolved only for the CreateLocationAzureBlob/UpdateLocationAzureBlob call
    sas_token: str
    #: DataSync agents that reach the container; none: an agentless (ENHANCED) transfer
    agent_arns: tuple[str, ...] = ()
    #: the destination bucket as an ARN (default ``arn:aws:s3:::<[aws] bucket>``)
    bucket_arn: str | None = None
    #: the IAM role DataSync assumes to write the bucket (iam:PassRole is needed on it)
    bucket_access_role_arn: str
    s3_storage_class: Literal["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                              "GLACIER_INSTANT_RETRIEVAL"] = "STANDARD"
    #: where DataSync writes its task reports (a bucket of its own: a report inside the
    #: destination bucket would be an object crosswind's validation counts as extra)
    report_bucket_arn: str
    report_prefix: str = "crosswind-datasync/"
    #: the role DataSync writes the reports with (default: bucket_access_role_arn)
    report_role_arn: str | None = None
    #: a bandwidth cap for the task (bytes/s; none: as fast as DataSync goes)
    bytes_per_second: int | None = Field(None, ge=1)
    #: a CloudWatch log group for the task's per-file logs (LogLevel TRANSFER)
    cloudwatch_log_group_arn: str | None = None
    #: DescribeTaskExecution is asked this often while an execution runs
    poll_interval_s: float = Field(10.0, gt=0, le=600)
    #: an execution still running after this long is cancelled and the run fails
    timeout_s: float = Field(86400.0, gt=0)
    #: the task report is waited for this long after the execution ends
    report_wait_s: float = Field(300.0, ge=0)

    @model_validator(mode="after")
    def _arns(self) -> DataSyncConfig:
        for n in ("bucket_access_role_arn", "report_role_arn"):
            v = getattr(self, n)
            if v is not None and not _ROLE_ARN.match(v):
                raise ValueError(f"{n} {v!r} is not an IAM role ARN "
                                 "(arn:aws:iam::ACCOUNT-ID:role/NAME)")
        for n in ("bucket_arn", "report_bucket_arn"):
            v = getattr(self, n)
            if v is not None and not _BUCKET_ARN.match(v):
                raise ValueError(f"{n} {v!r} is not an S3 bucket ARN (arn:aws:s3:::BUCKET)")
        for a in self.agent_arns:
            if not _AGENT_ARN.match(a):
                raise ValueError(f"agent_arns: {a!r} is not a DataSync agent ARN "
                                 "(arn:aws:datasync:REGION:ACCOUNT-ID:agent/agent-ID)")
        lg = self.cloudwatch_log_group_arn
        if lg is not None and not _LOG_GROUP_ARN.match(lg):
            raise ValueError(f"cloudwatch_log_group_arn {lg!r} is not a log group ARN")
        if self.report_prefix.startswith("/"):
            raise ValueError("report_prefix is a key prefix: no leading '/'")
        return self


class KeysConfig(_Section):
    pattern: str
    partition_key: str
    row_key: str

    @model_validator(mode="after")
    def _compiles(self) -> KeysConfig:
        # A pattern that cannot compile is a config error at load time, not mid-run.
        try:
            KeySpec.from_config(self)
        except KeyPatternError as exc:
            raise ValueError(str(exc).removeprefix("[keys].")) from None
        return self


class ValidationConfig(_Section):
    """``[validation]``: targets and sampling of ``crosswind validate``."""

    #: percent of source items that must be present at the destination
    completeness_target: float = Field(99.9, ge=0, le=100)
    #: percent of items that must show no discrepancy
    pass_rate_target: float = Field(99.5, ge=0, le=100)
    #: objects looked at closely (HEAD, or bytes with --deep) unless --full
    sample_size: int = Field(1000, ge=0)
    #: examples kept per discrepancy class in reports (all findings go to the state store)
    examples: int = Field(20, ge=0, le=10_000)
    #: validation runs kept in the state store; older ones and their findings are pruned
    history_keep: int = Field(200, ge=1)
    #: HEADs and reads in flight at once
    concurrency: int = Field(32, ge=1, le=1024)


class MetadataConfig(_Section):
    """``[metadata]``: metadata rows, Azure Table ⇄ DocumentDB (``crosswind sync metadata``)."""

    #: rows per bulk write into DocumentDB (Azure tables take at most 100 per transaction)
    batch_size: int = Field(500, ge=1, le=10_000)
    #: bulk writes / transactions in flight at once
    concurrency: int = Field(4, ge=1, le=64)
    #: rows per page of a table scan (Azure returns at most 1000)
    page_size: int = Field(1000, ge=1, le=1000)
    #: "incremental": rows changed since the last scan's watermark; "full": every row
    scan: Literal["incremental", "full"] = "incremental"
    #: an incremental scan re-reads this far before the watermark: Timestamps are
    #: set by the server when a write commits, so clocks and slow writes can lag
    watermark_overlap_s: float = Field(300.0, ge=0)
    #: delete rows on the destination that the source no longer has
    propagate_deletes: bool = False
    #: deletes abort before deleting anything when more than this / this % of the destination
    max_delete_count: int = Field(1000, ge=0)
    max_delete_percent: float = Field(10.0, ge=0, le=100)
    #: a row changed on the replica since the last sync: "record" leaves it and records
    #: a conflict; "overwrite" records the conflict, then writes the primary's version
    conflict_policy: Literal["record", "overwrite"] = "record"
    #: object-driven ingestion: only object names under this prefix
    object_prefix: str = ""
    #: reverse sync stops after this many quiet seconds (unless --follow)
    idle_timeout_s: float = Field(2.0, gt=0)
    #: reverse sync applies the changes it collected at least this often
    flush_interval_s: float = Field(0.5, gt=0)
    #: run modifyChangeStreams on the collection (real DocumentDB needs it)
    enable_change_streams: bool = True
    #: attempts per batch for retryable errors (the SDKs' own retries come first)
    attempts: int = Field(3, ge=1, le=20)


def _host_port(value: str) -> str:
    """``HOST:PORT`` (port 0: any free port), or ``off``."""
    if value == "off":
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (or \"off\")")
    return value


class ReplicateConfig(_Section):
    """``[replicate]``: the replication service (``crosswind replicate``)."""

    #: a full listing-based comparison of both sides (deletes included) this often
    reconcile_interval_s: float = Field(900.0, ge=10)
    #: before cutover, the Azure table is polled for rows changed since the last poll
    table_poll_interval_s: float = Field(5.0, gt=0)
    #: each poll re-reads this far back (commits in flight when the last poll started)
    table_poll_overlap_s: float = Field(30.0, ge=0)
    #: lag SLOs: p99 of the last lag window (or the oldest pending change) over this is
    #: a breach, before and after cutover
    lag_slo_pre_s: float = Field(300.0, gt=0)
    lag_slo_post_s: float = Field(120.0, gt=0)
    #: the sliding window of lag samples behind p50/p95/p99/max
    lag_window_s: float = Field(300.0, gt=0)
    #: the local HTTP endpoint (/healthz, /api/status, /metrics): HOST:PORT, port 0 for
    #: any, or "off"; beyond loopback it needs [monitoring] http_token, http_tls_cert
    #: and http_tls_key
    http: str = "127.0.0.1:9464"
    #: on SIGTERM, in-flight work gets this long to finish before it is abandoned
    shutdown_grace_s: float = Field(30.0, ge=0)
    #: objects applied at once
    concurrency: int = Field(32, ge=1, le=1024)
    #: tries per change for failures of the change itself (endpoint outages never count)
    attempts: int = Field(5, ge=1, le=100)
    #: queue messages stay hidden this long while their changes are applied
    # Short, because the service extends what it still works on (every third of
    # it): a message that comes back unexplained (one in a 2,384-change benchmark
    # run did, after exactly this timeout) is late by this much at most.
    visibility_timeout_s: int = Field(30, ge=10, le=43200)
    #: long-poll wait of SQS receives (Azure queues have none: polled every second)
    receive_wait_s: float = Field(5.0, ge=0, le=20)
    #: keys waiting to be applied before the queues stop being read (bounded memory)
    max_pending: int = Field(50_000, ge=10)
    #: an endpoint's breaker opens after this many failures in a row ...
    breaker_threshold: int = Field(5, ge=1)
    #: ... and lets a request through again after this long
    breaker_reset_s: float = Field(10.0, gt=0)
    #: the max-delete guard counts deletes over a sliding window this long
    delete_window_s: float = Field(3600.0, gt=0)
    #: at most this many deletes / this % of the replica per window (default: [sync])
    max_delete_count: int | None = Field(None, ge=0)
    max_delete_percent: float | None = Field(None, ge=0, le=100)
    #: a reconcile finding changed at the source within this is not counted as drift
    drift_grace_s: float = Field(60.0, ge=0)
    #: the status snapshot (and heartbeat) is written this often
    status_interval_s: float = Field(1.0, gt=0, le=60)
    #: after cutover, an Azure object written by someone else since crosswind last saw
    #: it: "record" keeps it and files a conflict in the DLQ; "overwrite" replaces it
    replica_writes: Literal["record", "overwrite"] = "record"
    #: a sampled validation of the direction this often (0: never); after cutover a
    #: failed one is a rollback trigger
    validate_interval_s: float = Field(3600.0, ge=0)

    @field_validator("http")
    @classmethod
    def _http(cls, v: str) -> str:
        return _host_port(v)


_REFERENCE_PREFIXES = ("env:", "file:", "keyvault:", "secretsmanager:")


def is_loopback_bind(bind: str) -> bool:
    """Whether a ``HOST:PORT`` bind listens on loopback only."""
    host = bind.rpartition(":")[0].strip("[]")
    return is_loopback(f"http://[{host}]" if ":" in host else f"http://{host}")


#: approver names: the key of a ``[cutover.approvers.NAME]`` table, shown in approvals
_APPROVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ApproverConfig(_Section):
    """``[cutover.approvers.NAME]``: one person (or team key) who may approve."""

    #: the approver's SSH public key, as in ``~/.ssh/id_ed25519.pub``:
    #: ``ssh-ed25519 AAAA... [comment]``
    public_key: str
    #: the role this key approves for, e.g. "platform" or "security"
    role: str = Field(min_length=1, max_length=64)

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, v: str) -> str:
        parts = v.split()
        if len(parts) < 2 or parts[0] != "ssh-ed25519":
            raise ValueError("must be an ed25519 public key: \"ssh-ed25519 AAAA... "
                             "[comment]\" (the one line of a .pub file)")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not a public key: its base64 part does not decode") from None
        # An ed25519 public key blob: string "ssh-ed25519" (4 + 11) + string key (4 + 32).
        if len(blob) != 51 or blob[4:15] != b"ssh-ed25519":
            raise ValueError("is not an ed25519 public key: its base64 part holds another "
                             "kind of key")
        return " ".join(parts[:2])  # the comment is not part of the key


class CutoverConfig(_Section):
    """``[cutover]``: gates, approvals, hooks and rollback triggers of the switch."""

    #: gate: replication lag p99 (and the oldest pending change) must be below this
    max_lag_s: float = Field(30.0, gt=0)
    #: gate: the latest passing validation must be younger than this (24 h: the age
    #: after which PlanetScale shows a VDiff as stale)
    validation_max_age_s: float = Field(86400.0, gt=0)
    #: the primary is quiet when no new change arrived for this long ...
    quiet_period_s: float = Field(10.0, ge=0)
    #: ... and the backlog must be drained (with the quiet period) within this
    drain_timeout_s: float = Field(300.0, gt=0)
    #: roles the approvals must cover, one approval per role from distinct keys
    required_roles: tuple[str, ...] = ("platform", "security")
    #: an approval counts for this long after it was recorded
    approval_ttl_s: float = Field(3600.0, gt=0)
    #: the cutover's approvals also authorize a later rollback (automatic rollback
    #: needs this)
    rollback_preapproved: bool = False
    #: a fired trigger starts the rollback by itself (needs rollback_preapproved)
    auto_rollback: bool = False
    #: triggers after cutover: lag p99 above the post-cutover SLO for this long ...
    trigger_lag_for_s: float = Field(300.0, gt=0)
    #: ... failed changes / changes over the last 5 minutes above this fraction ...
    trigger_error_rate: float = Field(0.05, gt=0, le=1)
    #: ... a circuit breaker open for longer than this
    trigger_breaker_open_s: float = Field(120.0, gt=0)
    #: a fired trigger re-arms only after its condition was clear this long
    trigger_clear_for_s: float = Field(300.0, ge=0)
    #: hooks: shell command strings run with /bin/sh -c ("" = no hook). freeze stops
    #: writers on Azure, switch points the application at AWS; unfreeze and unswitch
    #: undo them. The aws_ pair freezes and unfreezes writers on AWS for a rollback.
    freeze_command: str = ""
    unfreeze_command: str = ""
    switch_command: str = ""
    unswitch_command: str = ""
    aws_freeze_command: str = ""
    aws_unfreeze_command: str = ""
    #: every hook is killed (its whole process group) after this long
    hook_timeout_s: float = Field(120.0, gt=0, le=86400)
    #: the reverse (or restarted forward) replication must carry one probe change
    #: across within this
    probe_timeout_s: float = Field(60.0, gt=0)
    #: the probe waits this long for its change event before it tells the service
    #: directly (real clouds deliver events in seconds; Azurite delivers none)
    probe_event_wait_s: float = Field(10.0, ge=0)
    #: the gates (status, validation history, the post-switch preflight) within this
    gates_timeout_s: float = Field(60.0, gt=0)
    #: the final validation of a switch (sampled, [validation] targets) within this
    validation_timeout_s: float = Field(900.0, gt=0)
    #: ``crosswind cutover rehearse`` may switch without approvals (a non-production
    #: estate only)
    allow_rehearsal: bool = False
    approvers: dict[str, ApproverConfig] = Field(default_factory=dict)

    @field_validator("required_roles")
    @classmethod
    def _roles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("must name at least one role")
        if len(set(v)) != len(v):
            raise ValueError("must not list a role twice")
        if any(not r.strip() for r in v):
            raise ValueError("must not hold an empty role")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CutoverConfig:
        for name in self.approvers:
            if not _APPROVER_NAME.match(name):
                raise ValueError(f"approver name {name!r}: use letters, digits, '.', '_' "
                                 "and '-' (at most 64)")
        keys: dict[str, str] = {}
        for name, a in self.approvers.items():
            if a.public_key in keys:
                raise ValueError(f"approvers {keys[a.public_key]!r} and {name!r} have the "
                                 "same public key; one key is one approver")
            keys[a.public_key] = name
        # A hook that changes the world before the point of no return needs the hook
        # that undoes it, or a failed cutover could not be undone.
        for do, undo in (("freeze_command", "unfreeze_command"),
                         ("switch_command", "unswitch_command"),
                         ("aws_freeze_command", "aws_unfreeze_command")):
            if getattr(self, do).strip() and not getattr(self, undo).strip():
                raise ValueError(f"{do} is set but {undo} is not: every hook needs the "
                                 "hook that undoes it")
        if self.auto_rollback and not self.rollback_preapproved:
            raise ValueError("auto_rollback = true needs rollback_preapproved = true (an "
                             "automatic rollback cannot wait for approvals)")
        if self.approvers:
            missing = sorted(set(self.required_roles)
                             - {a.role for a in self.approvers.values()})
            if missing:
                raise ValueError(f"no approver has the required role(s) {', '.join(missing)}")
        return self


class GovernanceConfig(_Section):
    """``[governance]``: stewardship, validation before write, lineage (CW-8)."""

    #: stewardship, written on every report, lineage event and the status
    domain: str | None = None
    steward: str | None = None
    owner: str | None = None
    flow_id: str | None = None
    #: items checked against their subject's latest registered schema before they are
    #: written: "off" (no checks), "warn" (counted and logged, written), "reject"
    #: (not written: into the DLQ with the failing path and rule)
    enforce: Literal["off", "warn", "reject"] = "warn"
    #: OpenLineage run events: "file" (JSON lines), "http" (an OpenLineage API such as
    #: Marquez), or "off"
    lineage: Literal["file", "http", "off"] = "file"
    #: the JSON-lines file (default <state dir>/lineage/events.jsonl)
    lineage_file: Path | None = None
    #: the receiver's base URL for "http", e.g. https://marquez.example.com (the events
    #: are POSTed to lineage_endpoint under it); plain http only to a loopback address
    lineage_url: str | None = None
    lineage_endpoint: str = "api/v1/lineage"
    #: a reference (env:NAME, file:PATH) to a bearer token the receiver asks for
    lineage_api_key: str | None = None
    #: the namespace of crosswind's jobs in lineage events
    lineage_namespace: str = Field("crosswind", min_length=1)
    lineage_timeout_s: float = Field(5.0, gt=0, le=120)
    #: mirror registered schema versions into this AWS Glue Schema Registry (optional)
    glue_registry: str | None = None

    @field_validator("flow_id", mode="before")
    @classmethod
    def _flow_id(cls, v: object) -> object:
        # flow_id = 26 and flow_id = "26" mean the same flow
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _lineage(self) -> GovernanceConfig:
        if self.lineage == "http" and not self.lineage_url:
            raise ValueError('lineage = "http" needs lineage_url')
        if self.lineage_url:
            parts = urlparse(self.lineage_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"lineage_url {self.lineage_url!r} is not an http(s) URL")
            if parts.scheme == "http" and not is_loopback(self.lineage_url):
                raise ValueError("lineage_url: plain http is allowed only to a loopback "
                                 "address; use https")
        return self


class SecurityConfig(_Section):
    """``[security]``: secrets, SAS tokens, the Key Vault identity."""

    #: a resolved secret is used this long before its reference is read again (a
    #: refused credential is read again at once, see README "Security")
    secret_ttl_s: float = Field(3600.0, ge=0)
    #: a SAS token expiring within this many hours is warned about (preflight, start)
    sas_min_validity_h: float = Field(24.0, ge=0)
    #: the identity Key Vault references are read with: "default"
    #: (DefaultAzureCredential: environment, workload identity, managed identity,
    #: az login), "managed-identity" (keyvault_client_id: a user-assigned one), or
    #: "client-secret" (an app registration: tenant, client id, secret by reference)
    keyvault_credential: Literal["default", "managed-identity", "client-secret"] = "default"
    keyvault_tenant_id: str | None = None
    keyvault_client_id: str | None = None
    keyvault_client_secret: str | None = None
    #: the Microsoft Entra authority for sovereign clouds, e.g. https://login.microsoftonline.us
    keyvault_authority_host: str | None = None

    @model_validator(mode="after")
    def _identity(self) -> SecurityConfig:
        if self.keyvault_credential == "client-secret":
            missing = [n for n in ("keyvault_tenant_id", "keyvault_client_id",
                                   "keyvault_client_secret") if not getattr(self, n)]
            if missing:
                raise ValueError(f"keyvault_credential = \"client-secret\" needs "
                                 f"{', '.join(missing)}")
        sec = self.keyvault_client_secret
        if sec is not None and not sec.startswith(("env:", "file:", "secretsmanager:")):
            raise ValueError("keyvault_client_secret must be an env:, file: or "
                             "secretsmanager: reference")
        if self.keyvault_authority_host:
            check_plain_http(self.keyvault_authority_host, emulator=False,
                             where="keyvault_authority_host")
        return self


class TlsConfig(_Section):
    """``[tls]``: certificates are always verified, TLS 1.2 at least (every client's
    default here: Python's ssl, urllib3, rustls); this says against which CAs."""

    #: a PEM file of CA certificates to trust instead of the system's (a private CA,
    #: a TLS-inspecting proxy), for every client: Azure SDK, botocore/aiobotocore,
    #: obstore, pymongo, the S3 streaming path, Key Vault, Secrets Manager
    ca_bundle: Path | None = None


class AlertOverride(_Section):
    """``[monitoring.alerts.NAME]``: change one alert of the catalogue."""

    #: the value the alert compares with (the catalogue's unit: ratios 0..1, seconds)
    threshold: float | None = None
    #: how long the condition must hold before the alert fires
    for_s: float | None = Field(None, ge=0)
    enabled: bool = True


_CW_NAMESPACE = re.compile(r"^[A-Za-z0-9./#:_-]{1,255}$")


class MonitoringConfig(_Section):
    """``[monitoring]``: metrics, alerts and dashboards (``crosswind metrics``,
    ``monitoring export``, ``dashboard``; the service's ``/metrics`` and alerts)."""

    #: the service evaluates its alerts (and refreshes figures for the exporters) this often
    interval_s: float = Field(15.0, gt=0, le=3600)
    #: the service's endpoint and ``crosswind dashboard``: the bearer token every request
    #: must carry, and the TLS certificate chain and private key (PEM) they serve
    #: (references of any kind); a bind beyond loopback needs all three
    http_token: str | None = None
    http_tls_cert: str | None = None
    http_tls_key: str | None = None
    #: where ``crosswind dashboard`` listens (HOST:PORT, port 0 for any free one)
    dashboard: str = "127.0.0.1:9465"
    #: POST each alert that starts or stops firing here (a reference: webhook URLs
    #: carry secrets; a literal URL only for a loopback receiver)
    webhook_url: str | None = None
    webhook_attempts: int = Field(5, ge=1, le=20)
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    #: CloudWatch: PutMetricData every cloudwatch_interval_s from the service
    cloudwatch: bool = False
    cloudwatch_namespace: str = "Crosswind"
    cloudwatch_interval_s: float = Field(60.0, ge=1, le=3600)
    #: dimensions added to every datum and alarm, e.g. {Estate = "flights"}
    cloudwatch_dimensions: dict[str, str] = Field(default_factory=dict)
    #: SNS topics (ARNs) the generated alarms notify
    cloudwatch_alarm_actions: tuple[str, ...] = ()
    #: Azure Monitor (Application Insights) through OpenTelemetry
    azure_monitor: bool = False
    #: the Application Insights connection string (a reference: env:NAME or file:PATH)
    azure_connection_string: str | None = None
    azure_interval_s: float = Field(60.0, ge=1, le=3600)
    #: prefix of generated alarm and alert rule names (several estates in one account)
    alarm_prefix: str = ""
    #: watch AWS quotas: Lambda concurrent executions and VPC network interfaces
    quotas: bool = False
    quota_interval_s: float = Field(300.0, ge=10)
    #: the Lambda concurrency quota when the API cannot tell (the AWS default: 1000)
    lambda_concurrency_quota: int = Field(1000, ge=1)
    #: per alert of the catalogue (names: ``crosswind monitoring export`` lists them);
    #: an unknown name is refused when the alerts are built
    alerts: dict[str, AlertOverride] = Field(default_factory=dict)

    @field_validator("dashboard")
    @classmethod
    def _dashboard(cls, v: str) -> str:
        if _host_port(v) == "off":
            raise ValueError("must be HOST:PORT")
        return v

    @field_validator("cloudwatch_namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not _CW_NAMESPACE.match(v) or v.startswith("AWS/"):
            raise ValueError(f"{v!r} is not a CloudWatch namespace of your own (letters, "
                             "digits and . - _ / # :, not starting with AWS/)")
        return v

    @field_validator("cloudwatch_dimensions")
    @classmethod
    def _dimensions(cls, v: dict[str, str]) -> dict[str, str]:
        # CloudWatch takes 30 dimensions a datum; crosswind's labels need up to 3
        if len(v) > 27:
            raise ValueError("at most 27 dimensions (CloudWatch takes 30 a metric)")
        for k, val in v.items():
            if not k or not val or len(k) > 255 or len(val) > 1024:
                raise ValueError(f"dimension {k!r}: names 1-255, values 1-1024 characters")
        return v

    @model_validator(mode="after")
    def _needs(self) -> MonitoringConfig:
        if self.azure_monitor and not self.azure_connection_string:
            raise ValueError("azure_monitor = true needs azure_connection_string (a "
                             "reference, e.g. env:APPLICATIONINSIGHTS_CONNECTION_STRING)")
        return self


class LoadtestConfig(_Section):
    """``[loadtest]``: ``crosswind loadtest`` writes a synthetic flight-event load into
    the primary. Refused unless ``allowed = true``: mark only non-production estates."""

    allowed: bool = False
    #: before cutover, enqueue the Event Grid events Azure would deliver for each write
    #: (an emulator emits none); default: as ``[azure] emulator``
    emulate_events: bool | None = None
    #: writes in flight at once (the schedule is open loop: a slow primary shows as lateness)
    concurrency: int = Field(64, ge=1, le=1024)
    #: objects larger than this are written at this size (single-request writes)
    max_object_bytes: int = Field(4 * MiB, ge=1, le=256 * MiB)
    #: after the load, the replica gets this long to show every change (default:
    #: ``[replicate] reconcile_interval_s`` + 120, as some changes travel only by reconcile)
    settle_timeout_s: float | None = Field(None, gt=0)
    #: pass/fail beyond the lag SLOs of ``[replicate]``: achieved rate over the target
    #: rate at least this; primary write errors at most this share; DLQ entries added at
    #: most this many; connection pools and workers busy below this share on average
    min_rate_ratio: float = Field(0.9, ge=0, le=1)
    max_error_ratio: float = Field(0.0, ge=0, le=1)
    max_dlq_growth: int = Field(0, ge=0)
    max_utilisation: float = Field(0.7, gt=0, le=1)


class ScaleoutConfig(_Section):
    """``[scaleout]``: object sync on a Dask cluster (``crosswind.scaleout``)."""

    #: where shards run: "local:N" (a LocalCluster of N worker processes here) or
    #: "tcp://SCHEDULER:8786" (an existing cluster); unset: one process, no Dask.
    #: ``--workers`` overrides it.
    workers: str | None = None
    #: a shard closes at this many keys (listed at either side) ...
    shard_objects: int = Field(1000, ge=1, le=1_000_000)
    #: ... or at this many source bytes, whichever comes first
    shard_bytes: int = Field(1024 * MiB, ge=1)
    #: shards handed to the cluster at once, per worker: enough that a worker never
    #: waits for its next one; the rest of the listing is not read ahead further
    shards_per_worker: int = Field(2, ge=1, le=64)
    #: seconds to reach a tcp:// scheduler (or start a LocalCluster)
    connect_timeout_s: float = Field(30.0, gt=0, le=600)

    @field_validator("workers")
    @classmethod
    def _spec(cls, v: str | None) -> str | None:
        if v is not None:
            from crosswind.scaleout.spec import parse_workers

            parse_workers(v, where="")
        return v


class Config(_Section):
    azure: AzureConfig
    aws: AwsConfig
    state: StateConfig = StateConfig.model_validate({})
    sync: SyncConfig = SyncConfig.model_validate({})
    keys: KeysConfig | None = None
    validation: ValidationConfig = ValidationConfig.model_validate({})
    metadata: MetadataConfig = MetadataConfig.model_validate({})
    replicate: ReplicateConfig = ReplicateConfig.model_validate({})
    cutover: CutoverConfig = CutoverConfig.model_validate({})
    governance: GovernanceConfig = GovernanceConfig.model_validate({})
    security: SecurityConfig = SecurityConfig.model_validate({})
    tls: TlsConfig = TlsConfig.model_validate({})
    monitoring: MonitoringConfig = MonitoringConfig.model_validate({})
    loadtest: LoadtestConfig = LoadtestConfig.model_validate({})
    datasync: DataSyncConfig | None = None
    scaleout: ScaleoutConfig = ScaleoutConfig.model_validate({})
    #: directory of the config file; relative paths in it are taken from here
    base_dir: Path = Path(".")

    @field_validator("base_dir")
    @classmethod
    def _abs(cls, v: Path) -> Path:
        return v.resolve()

    @model_validator(mode="after")
    def _exposed(self) -> Config:
        names = ("http_token", "http_tls_cert", "http_tls_key")
        for n in names:
            v = getattr(self.monitoring, n)
            if v is not None and not str(v).startswith(_REFERENCE_PREFIXES):
                raise ValueError(f"[monitoring] {n} must be a reference (env:, file:, "
                                 "keyvault://, secretsmanager:), not a literal")
        bind = self.replicate.http
        if bind != "off" and not is_loopback_bind(bind):
            missing = [n for n in names if not getattr(self.monitoring, n)]
            if missing:
                raise ValueError(f"[replicate] http = {bind!r} is not a loopback address: "
                                 f"it needs [monitoring] {', '.join(missing)} (references), "
                                 "so that every request carries the token over TLS")
        return self

    @model_validator(mode="after")
    def _datasync(self) -> Config:
        ds = self.datasync
        if self.sync.engine == "datasync" and ds is None:
            raise ValueError('[sync] engine = "datasync" needs a [datasync] section '
                             "(sas_token, bucket_access_role_arn, report_bucket_arn)")
        if ds is not None:
            if not ds.sas_token.startswith(_REFERENCE_PREFIXES) and not self.azure.emulator:
                raise ValueError("[datasync] sas_token must be a reference (env:, file:, "
                                 "keyvault://, secretsmanager:), not a literal")
            for url, where in ((ds.endpoint_url, "[datasync] endpoint_url"),
                               (ds.container_url, "[datasync] container_url")):
                if url:
                    check_plain_http(url, emulator=self.aws.emulator and self.azure.emulator,
                                     where=where)
        return self

    @model_validator(mode="after")
    def _ca_bundle(self) -> Config:
        ca = self.tls.ca_bundle
        if ca is not None:
            path = ca.expanduser() if ca.is_absolute() else self.base_dir / ca
            if not path.is_file():
                raise ValueError(f"[tls] ca_bundle {str(path)!r} is not a readable file")
        return self

    @property
    def state_dir(self) -> Path:
        d = self.state.dir.expanduser()
        return d if d.is_absolute() else self.base_dir / d


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = f"[{loc[0]}]" + ("." + ".".join(loc[1:]) if len(loc) > 1 else "") if loc else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known setting"
        lines.append(f"{where} {msg}".strip())
    return "; ".join(lines)


def parse_config(data: dict[str, object], base_dir: Path, source: str = "config") -> Config:
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_error(exc)}") from None


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "base_dir" in data:
        raise ConfigError(f"{path}: base_dir is not a known setting")
    return parse_config(data, path.parent, str(path))
