"""A DataSync endpoint for tests: the rig's moto server, plus what moto lacks.

It speaks DataSync's JSON 1.1 protocol (``POST /``, ``X-Amz-Target:
FmrsService.<Operation>``, JSON bodies, ``{"__type", "message"}`` errors), so
crosswind's real aiobotocore client talks to it as to AWS.

* **Forwarded to moto** (moto 5.2 implements them): CreateLocationS3,
  DescribeLocationS3, ListLocations, DeleteLocation, CreateTask, UpdateTask,
  DescribeTask, ListTasks, DeleteTask, StartTaskExecution,
  DescribeTaskExecution, CancelTaskExecution. moto checks the task's locations
  and runs the execution's status through INITIALIZING → PREPARING →
  TRANSFERRING → VERIFYING → SUCCESS, one step per DescribeTaskExecution.
* **Answered here** (moto lacks them): CreateLocationAzureBlob,
  UpdateLocationAzureBlob, DescribeLocationAzureBlob, UpdateLocationS3,
  ListTagsForResource, TagResource. An Azure Blob location is backed by a moto
  SMB location record so that moto's own checks of CreateTask hold; its ARN is
  that record's.
* **Fields moto drops**, kept from the requests and added to its answers:
  TaskMode, Includes, TaskReportConfig (DescribeTask); the counters of an
  execution (DescribeTaskExecution).

**The data plane is a stand-in, not DataSync.** When an execution starts, this
server does what the task says with plain SDK calls: lists the Azure container
*with the SAS token the location was given* (azure-storage-blob), applies the
task's include/exclude patterns as the DataSync User Guide describes them,
copies new and changed blobs (content-type and user metadata, Content-MD5
checked by S3's API) into the bucket with boto3, removes what the source no
longer has when ``PreserveDeletedFiles`` is ``REMOVE``, verifies each copy by
HEAD, and writes a STANDARD task report (a summary and Transferred / Verified /
Deleted / Skipped detail documents) into the report bucket under the task's
report prefix, in the layout and field names ``crosswind.datasync.taskreport``
reads (the User Guide's names; the object naming is this stand-in's). It is
there so the orchestration can be followed end to end; it says nothing about
DataSync's own transfer speed, retries, or its exact report bytes.

Test controls (not DataSync): ``POST /_control`` with ``{"fail_next": {...}}``
(the next execution ends in ERROR with that ``Result``), ``{"fail_keys": [...]}``
(those objects are reported as failed transfers and not copied), or ``{"hang_next":
true}`` (it stays TRANSFERRING until ``DataSyncServer.control(release=True)``
lets it go on); ``GET /_requests`` lists every request
received (operation and body), for tests that look for the SAS token.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import boto3
from azure.storage.blob import ContainerClient

_ids = itertools.count(1)


def _matches(pattern: str, path: str) -> bool:
    """A DataSync SIMPLE_PATTERN against a path: '*' is any run of characters;
    a pattern matching a folder of the path matches the path (User Guide)."""
    rx = re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z",
                    re.DOTALL)
    parts = path.split("/")
    return any(rx.match("/".join(parts[:i])) for i in range(2, len(parts) + 1))


def _patterns(rules: list[dict[str, str]] | None) -> list[str]:
    return [p for r in rules or [] for p in r.get("Value", "").split("|") if p]


@dataclass
class Execution:
    task_arn: str
    counters: dict[str, Any] = field(default_factory=dict)
    fail: dict[str, Any] | None = None
    hang: bool = False


@dataclass
class State:
    moto: str
    azure: dict[str, dict[str, Any]] = field(default_factory=dict)  # arn -> location
    tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # arn -> settings
    s3_locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: dict[str, Any] | None = None
    hang_next: bool = False
    #: keys the stand-in reports as failed transfers (and does not copy)
    fail_keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.moto, aws_access_key_id="test",
                            aws_secret_access_key="test", region_name="us-east-1")


class DataSyncError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Handler(BaseHTTPRequestHandler):
    server: DataSyncServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/_requests":
            with self.server.state.lock:
                self._send(200, {"requests": list(self.server.state.requests)})
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        st = self.server.state
        if self.path == "/_control":
            ctl = json.loads(raw or b"{}")
            with st.lock:
                st.fail_next = ctl.get("fail_next", st.fail_next)
                st.hang_next = bool(ctl.get("hang_next", st.hang_next))
            self._send(200, {})
            return
        op = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        body = json.loads(raw or b"{}")
        with st.lock:
            st.requests.append({"operation": op, "body": body})
        try:
            local = getattr(self, f"op_{op}", None)
            out = local(body, raw) if local else self.forward(raw)
        except DataSyncError as exc:
            self._send(400, {"__type": exc.kind, "message": str(exc)})
            return
        self._send(200, out)

    # -- moto ---------------------------------------------------------------------
    def forward(self, raw: bytes, target: str | None = None) -> dict[str, Any]:
        u = urlparse(self.server.state.moto)
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length")}
        if target is not None:
            headers["X-Amz-Target"] = f"FmrsService.{target}"
        conn.request("POST", "/", body=raw, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        out = json.loads(data or b"{}")
        if r.status >= 400:
            raise DataSyncError(str(out.get("__type", "InvalidRequestException")).split("#")[-1],
                                str(out.get("message", out)))
        return dict(out)

    def _call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.forward(json.dumps(body).encode(), op)

    # -- locations ------------------------------------------------------------------
    def op_CreateLocationAzureBlob(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        st = self.server.state
        url = body.get("ContainerUrl") or ""
        if not url or body.get("AuthenticationType") not in ("SAS", "NONE"):
            raise DataSyncError("InvalidRequestException", "ContainerUrl and "
                                "AuthenticationType are required")
        if body.get("AuthenticationType") == "SAS" and not (body.get("SasConfiguration") or {}
                                                             ).get("Token"):
            raise DataSyncError("InvalidRequestException", "SasConfiguration.Token is required")
        # A moto location record backs it, so that CreateTask's checks hold.
        backing = self._call("CreateLocationSmb", {
            "ServerHostname": urlparse(url).hostname or "azure", "Subdirectory": "/backing",
            "User": "stand-in", "Password": "stand-in", "AgentArns": body.get("AgentArns") or
            ["arn:aws:datasync:us-east-1:111222333444:agent/agent-00000000000000000"]})
        arn = backing["LocationArn"]
        with st.lock:
            st.azure[arn] = {"ContainerUrl": url, "Token": body["SasConfiguration"]["Token"],
                             "AgentArns": body.get("AgentArns", []),
                             "AuthenticationType": body["AuthenticationType"],
                             "BlobType": body.get("BlobType", "BLOCK")}
            st.tags[arn] = list(body.get("Tags", []))
        return {"LocationArn": arn}

    def op_UpdateLocationAzureBlob(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        st = self.server.state
        with st.lock:
            loc = st.azure.get(body.get("LocationArn", ""))
            if loc is None:
                raise DataSyncError("InvalidRequestException", "Location not found")
            if body.get("SasConfiguration"):
                loc["Token"] = body["SasConfiguration"]["Token"]
            for k in ("AgentArns", "AuthenticationType", "BlobType"):
                if k in body:
                    loc[k] = body[k]
        return {}

    def op_DescribeLocationAzureBlob(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        st = self.server.state
        with st.lock:
            loc = st.azure.get(body.get("LocationArn", ""))
            if loc is None:
                raise DataSyncError("InvalidRequestException", "Location not found")
            u = urlparse(loc["ContainerUrl"])
            return {"LocationArn": body["LocationArn"],
                    "LocationUri": f"azure-blob://{u.netloc}{u.path}/",
                    "AuthenticationType": loc["AuthenticationType"],
                    "BlobType": loc["BlobType"], "AgentArns": loc["AgentArns"]}

    def op_CreateLocationS3(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        st = self.server.state
        with st.lock:
            st.tags[out["LocationArn"]] = list(body.get("Tags", []))
            st.s3_locations[out["LocationArn"]] = dict(body)
        return out

    def op_UpdateLocationS3(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        self._call("DescribeLocationS3", {"LocationArn": body.get("LocationArn")})  # exists?
        with self.server.state.lock:
            self.server.state.s3_locations.setdefault(body["LocationArn"], {}).update(body)
        return {}

    def op_ListLocations(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        st = self.server.state
        with st.lock:
            for loc in out.get("Locations", []):
                az = st.azure.get(loc["LocationArn"])
                if az is not None:
                    u = urlparse(az["ContainerUrl"])
                    loc["LocationUri"] = f"azure-blob://{u.netloc}{u.path}/"
        return out

    def op_DeleteLocation(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        with self.server.state.lock:
            self.server.state.azure.pop(body.get("LocationArn", ""), None)
            self.server.state.tags.pop(body.get("LocationArn", ""), None)
        return out

    # -- tags -------------------------------------------------------------------------
    def op_ListTagsForResource(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        with self.server.state.lock:
            return {"Tags": list(self.server.state.tags.get(body.get("ResourceArn", ""), []))}

    def op_TagResource(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        with self.server.state.lock:
            tags = {t["Key"]: t for t in self.server.state.tags.get(body["ResourceArn"], [])}
            tags.update({t["Key"]: t for t in body.get("Tags", [])})
            self.server.state.tags[body["ResourceArn"]] = list(tags.values())
        return {}

    # -- tasks --------------------------------------------------------------------------
    _TASK_FIELDS = ("TaskMode", "Includes", "Excludes", "Options", "TaskReportConfig", "Name",
                    "SourceLocationArn", "DestinationLocationArn")

    def op_CreateTask(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        with self.server.state.lock:
            self.server.state.tasks[out["TaskArn"]] = {
                k: body[k] for k in self._TASK_FIELDS if k in body}
            self.server.state.tags[out["TaskArn"]] = list(body.get("Tags", []))
        return out

    def op_UpdateTask(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        with self.server.state.lock:
            self.server.state.tasks.setdefault(body["TaskArn"], {}).update(
                {k: body[k] for k in self._TASK_FIELDS if k in body})
        return out

    def op_DescribeTask(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        with self.server.state.lock:
            kept = self.server.state.tasks.get(out.get("TaskArn", ""), {})
        out.update({k: v for k, v in kept.items() if k not in ("SourceLocationArn",
                                                              "DestinationLocationArn")})
        return out

    def op_ListTasks(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        with self.server.state.lock:
            for t in out.get("Tasks", []):
                t["TaskMode"] = self.server.state.tasks.get(t["TaskArn"], {}).get(
                    "TaskMode", "BASIC")
        return out

    def op_DeleteTask(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        out = self.forward(raw)
        with self.server.state.lock:
            self.server.state.tasks.pop(body.get("TaskArn", ""), None)
        return out

    # -- executions ---------------------------------------------------------------------
    def op_StartTaskExecution(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        st = self.server.state
        out = self.forward(raw)
        arn = out["TaskExecutionArn"]
        with st.lock:
            ex = Execution(body["TaskArn"], fail=st.fail_next, hang=st.hang_next)
            st.fail_next, st.hang_next = None, False
            st.executions[arn] = ex
            task = dict(st.tasks.get(body["TaskArn"], {}))
            locations = (st.azure.get(task.get("SourceLocationArn", "")),
                         st.s3_locations.get(task.get("DestinationLocationArn", "")))
        if ex.fail is None and not ex.hang:
            src, dst = locations
            if src is None or dst is None:
                raise DataSyncError("InvalidRequestException", "the stand-in moves Azure "
                                    "Blob → S3 only")
            ex.counters = DataPlaneStandIn(st, task, src, dst, arn).run()
        return out

    def op_DescribeTaskExecution(self, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        st = self.server.state
        with st.lock:
            ex = st.executions.get(body.get("TaskExecutionArn", ""))
        if ex is not None and ex.hang:
            return {"TaskExecutionArn": body["TaskExecutionArn"], "Status": "TRANSFERRING",
                    "TaskMode": "ENHANCED"}
        out = self.forward(raw)
        if ex is None:
            return out
        if ex.fail is not None and out.get("Status") in ("TRANSFERRING", "VERIFYING",
                                                         "SUCCESS"):
            # moto's task stays RUNNING unless cancelled; the real one is free again.
            with contextlib.suppress(DataSyncError):
                self._call("CancelTaskExecution", {"TaskExecutionArn":
                                                   body["TaskExecutionArn"]})
            out["Status"] = "ERROR"
            out["Result"] = {"TransferStatus": "ERROR", **ex.fail}
        out["TaskMode"] = "ENHANCED"
        if out.get("Status") in ("TRANSFERRING", "VERIFYING", "SUCCESS"):
            out.update(ex.counters)
        if out.get("Status") == "SUCCESS":
            out["ReportResult"] = {"Status": "SUCCESS"}
        return out


class DataPlaneStandIn:
    """Stands in for DataSync's data plane (see the module docstring): what an
    ENHANCED Azure Blob → S3 execution of this task would do, done with plain
    SDK calls, and its task report written in the documented shape."""

    def __init__(self, st: State, task: dict[str, Any], src: dict[str, Any],
                 dst: dict[str, Any], execution_arn: str) -> None:
        self.st, self.task, self.src, self.dst, self.arn = st, task, src, dst, execution_arn
        self.s3 = st.s3()
        self.bucket = dst["S3BucketArn"].rsplit(":", 1)[-1]
        self.includes = _patterns(task.get("Includes"))
        self.excludes = _patterns(task.get("Excludes"))
        self.options = task.get("Options") or {}

    def selected(self, key: str) -> bool:
        path = "/" + key
        if self.includes and not any(_matches(p, path) for p in self.includes):
            return False
        return not any(_matches(p, path) for p in self.excludes)

    def _dest(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = o
        return out

    def run(self) -> dict[str, Any]:
        # The SAS the location holds is what reads the container: a wrong token fails here.
        container = ContainerClient.from_container_url(
            f"{self.src['ContainerUrl']}?{self.src['Token']}")
        dest = self._dest()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        transferred, verified, skipped, deleted = [], [], [], []
        seen: set[str] = set()
        at_source = 0
        for blob in container.list_blobs(include=["metadata"]):
            at_source += 1
            key = blob.name
            if not self.selected(key):
                continue
            seen.add(key)
            md5 = (blob.content_settings.content_md5 or b"").hex() or None
            d = dest.get(key)
            meta = {"Type": "Regular", "ContentSize": blob.size,
                    "Mtime": blob.last_modified.isoformat()}
            if self.options.get("TransferMode") == "CHANGED" and d is not None and \
                    d["Size"] == blob.size and md5 and d["ETag"].strip('"') == md5:
                skipped.append({"RelativePath": "/" + key, "SourceMetadata": meta,
                                "SkippedStatus": "SUCCESS", "SkippedReason": "Unchanged"})
                continue
            if key in self.st.fail_keys:
                transferred.append({"RelativePath": "/" + key, "SourceMetadata": meta,
                                    "TransferType": "CONTENT_AND_METADATA",
                                    "TransferTimestamp": now, "TransferStatus": "FAILED",
                                    "ErrorCode": "AccessDenied",
                                    "ErrorDetail": "stand-in: refused for the test"})
                continue
            data = container.download_blob(key).readall()
            digest = hashlib.md5(data).digest()
            cs = blob.content_settings
            kw: dict[str, Any] = {"Metadata": dict(blob.metadata or {})}
            if cs.content_type:
                kw["ContentType"] = cs.content_type
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data,
                               ContentMD5=base64.b64encode(digest).decode(), **kw)
            transferred.append({"RelativePath": "/" + key, "SourceMetadata": meta,
                                "TransferType": "CONTENT_AND_METADATA",
                                "TransferTimestamp": now, "TransferStatus": "SUCCESS"})
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
            ok = head["ETag"].strip('"') == digest.hex() and head["ContentLength"] == len(data)
            verified.append({"RelativePath": "/" + key, "SourceMetadata": meta,
                             "SourceChecksum": digest.hex(),
                             "DestinationChecksum": head["ETag"].strip('"'),
                             "VerifyTimestamp": now,
                             "VerifyStatus": "SUCCESS" if ok else "FAILED",
                             **({} if ok else {"ErrorCode": "ChecksumMismatch"})})
        if self.options.get("PreserveDeletedFiles") == "REMOVE":
            for key in sorted(set(dest) - seen):
                if self.selected(key):
                    self.s3.delete_object(Bucket=self.bucket, Key=key)
                    deleted.append({"RelativePath": "/" + key, "DeleteStatus": "SUCCESS",
                                    "SourceMetadata": {"Type": "Regular",
                                                       "ContentSize": dest[key]["Size"]}})
        self._report(transferred, verified, skipped, deleted, at_source)
        failed_transfers = sum(t["TransferStatus"] != "SUCCESS" for t in transferred)
        transferred = [t for t in transferred if t["TransferStatus"] == "SUCCESS"]
        return {
            "EstimatedFilesToTransfer": len(transferred),
            "EstimatedBytesToTransfer": sum(t["SourceMetadata"]["ContentSize"]
                                            for t in transferred),
            "FilesTransferred": len(transferred),
            "BytesTransferred": sum(t["SourceMetadata"]["ContentSize"] for t in transferred),
            "BytesWritten": sum(t["SourceMetadata"]["ContentSize"] for t in transferred),
            "FilesVerified": len(verified), "FilesSkipped": len(skipped),
            "FilesDeleted": len(deleted), "EstimatedFilesToDelete": len(deleted),
            "FilesListed": {"AtSource": at_source, "AtDestinationForDelete": len(dest)},
            "FilesFailed": {"Transfer": failed_transfers,
                            "Verify": sum(v["VerifyStatus"] != "SUCCESS" for v in verified),
                            "Delete": 0, "Prepare": 0},
        }

    def _report(self, transferred: list[Any], verified: list[Any], skipped: list[Any],
                deleted: list[Any], at_source: int) -> None:
        cfg = self.task.get("TaskReportConfig") or {}
        s3cfg = (cfg.get("Destination") or {}).get("S3")
        if not s3cfg:
            return
        bucket = s3cfg["S3BucketArn"].rsplit(":", 1)[-1]
        sub = s3cfg.get("Subdirectory", "")
        task_id = self.arn.split("/")[1]
        exec_id = self.arn.rsplit("/", 1)[-1]
        base = f"{sub}Detailed-Reports/{task_id}/{exec_id}/"
        for section, entries in (("Transferred", transferred), ("Verified", verified),
                                 ("Skipped", skipped), ("Deleted", deleted)):
            # Lists are split over several documents, as DataSync does with long ones.
            for i, chunk in enumerate(_chunks(entries, 50)):
                self.s3.put_object(
                    Bucket=bucket, Key=f"{base}{exec_id}.files-{section.lower()}-v1-"
                    f"{i:05d}.json",
                    Body=json.dumps({"TaskExecutionId": exec_id, section: chunk}).encode())
        summary = {"AccountId": "111222333444", "TaskExecutionId": exec_id,
                   "Status": "SUCCESS", "SourceLocation": self.task.get("SourceLocationArn"),
                   "DestinationLocation": self.task.get("DestinationLocationArn"),
                   "Result": {"FilesTransferred": len(transferred),
                              "FilesVerified": len(verified), "FilesSkipped": len(skipped),
                              "FilesDeleted": len(deleted), "FilesListedAtSource": at_source}}
        self.s3.put_object(Bucket=bucket,
                           Key=f"{sub}Summary-Reports/{task_id}/{exec_id}/{exec_id}"
                           ".summary-v1.json", Body=json.dumps(summary).encode())


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class DataSyncServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, moto_endpoint: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = State(moto_endpoint)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> DataSyncServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests)

    def control(self, **ctl: Any) -> None:
        with self.state.lock:
            if "fail_next" in ctl:
                self.state.fail_next = ctl["fail_next"]
            if "hang_next" in ctl:
                self.state.hang_next = bool(ctl["hang_next"])
            if "fail_keys" in ctl:
                self.state.fail_keys = set(ctl["fail_keys"])
            hanging = [(arn, ex) for arn, ex in self.state.executions.items() if ex.hang] \
                if ctl.get("release") else []
        for arn, ex in hanging:
            # The held execution goes on: its data plane runs now, then moto's steps.
            with self.state.lock:
                task = dict(self.state.tasks.get(ex.task_arn, {}))
                src = self.state.azure[task["SourceLocationArn"]]
                dst = self.state.s3_locations[task["DestinationLocationArn"]]
            ex.counters = DataPlaneStandIn(self.state, task, src, dst, arn).run()
            ex.hang = False
