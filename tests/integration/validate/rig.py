"""Helpers of the validation tests on the rig: seed a side, copy it with
crosswind, inject discrepancies behind crosswind's back, read findings."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

from azure.storage.blob import ContentSettings

from crosswind.config import load_config
from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.sync.objects import options_from_config, sync_objects
from crosswind.validate.findings import Kind
from crosswind.validate.history import FindingLog
from crosswind.validate.run import ValidateOptions, validate
from tests.integration.conftest import Env

A2W = Direction.AZURE_TO_AWS
W2A = Direction.AWS_TO_AZURE


def put_source(env: Env, direction: Direction, key: str, body: bytes,
               metadata: dict[str, str], content_type: str = "application/json") -> None:
    if direction is A2W:
        env.container.upload_blob(key, body, overwrite=True, metadata=metadata,
                                  content_settings=ContentSettings(content_type=content_type))
    else:
        env.s3.put_object(Bucket=env.bucket, Key=key, Body=body,  # type: ignore[attr-defined]
                          Metadata=metadata, ContentType=content_type)


def sync(env: Env, direction: Direction) -> dict[str, Any]:
    from crosswind.sync.report import sync_report

    result = asyncio.run(sync_objects(env.config, direction,
                                      options_from_config(env.config, direction)))
    report = sync_report(result)
    assert report["status"] == "succeeded", report
    return report


class Side:
    """Raw access to one side with the native SDKs (nothing of crosswind)."""

    def __init__(self, env: Env, azure: bool) -> None:
        self.env = env
        self.azure = azure

    def delete(self, key: str) -> None:
        if self.azure:
            self.env.container.delete_blob(key)
        else:
            self.env.s3.delete_object(Bucket=self.env.bucket, Key=key)  # type: ignore[attr-defined]

    def read(self, key: str) -> tuple[bytes, dict[str, str], str | None]:
        if self.azure:
            bc = self.env.container.get_blob_client(key)
            p = bc.get_blob_properties()
            return bc.download_blob().readall(), dict(p.metadata), p.content_settings.content_type
        r = self.env.s3.get_object(Bucket=self.env.bucket, Key=key)  # type: ignore[attr-defined]
        return r["Body"].read(), dict(r["Metadata"]), r.get("ContentType")

    def rewrite(self, key: str, body: bytes) -> None:
        """New bytes under the same metadata (the stored crosswind MD5 goes stale)."""
        _, md, ctype = self.read(key)
        if self.azure:
            self.env.container.upload_blob(key, body, overwrite=True, metadata=md,
                                           content_settings=ContentSettings(content_type=ctype))
        else:
            self.env.s3.put_object(Bucket=self.env.bucket, Key=key, Body=body,  # type: ignore[attr-defined]
                                   Metadata=md, ContentType=ctype or "binary/octet-stream")

    def set_metadata(self, key: str, name: str, value: str) -> None:
        _, md, ctype = self.read(key)
        md = {**md, name: value}
        if self.azure:
            self.env.container.get_blob_client(key).set_blob_metadata(md)
        else:
            b = self.env.bucket
            self.env.s3.copy_object(  # type: ignore[attr-defined]
                Bucket=b, Key=key, CopySource={"Bucket": b, "Key": key}, Metadata=md,
                MetadataDirective="REPLACE", ContentType=ctype or "binary/octet-stream")


def inject(env: Env, direction: Direction, key: str, kind: Kind | None) -> None:
    """Make ``key`` show discrepancy ``kind`` (None: leave it alone)."""
    dst = Side(env, azure=direction is W2A)
    src = Side(env, azure=direction is A2W)
    if kind is Kind.MISSING:
        dst.delete(key)
    elif kind is Kind.EXTRA:
        src.delete(key)
    elif kind is Kind.SIZE:
        dst.rewrite(key, dst.read(key)[0] + b"+")
    elif kind is Kind.HASH:
        body = dst.read(key)[0]
        dst.rewrite(key, body[:-1] + bytes([body[-1] ^ 0x01]))
    elif kind is Kind.METADATA:
        dst.set_metadata(key, "seq", "tampered")


def run_validate(env: Env, **kw: Any) -> dict[str, Any]:
    return asyncio.run(validate(env.config, ValidateOptions(**kw)))


def all_findings(env: Env, run_id: int) -> set[tuple[str, str]]:
    state = StateStore(env.config.state_dir)
    try:
        return {(f["kind"], f["key"]) for f in FindingLog(state).findings(run_id, 100_000)}
    finally:
        state.close()


def findings_by_check(env: Env, run_id: int) -> set[tuple[str, str, str]]:
    state = StateStore(env.config.state_dir)
    try:
        return {(f["check"], f["kind"], f["key"])
                for f in FindingLog(state).findings(run_id, 100_000)}
    finally:
        state.close()


def with_bucket(env: Any, moto: Any, s3_client: Any) -> Any:
    """A metadata fixture's env (table, database, [keys]) plus the S3 bucket on moto."""
    text = env.config_path.read_text().replace("[aws]\n", textwrap.dedent(f"""\
        [aws]
        endpoint_url = "{moto.endpoint}"
        access_key_id = "test"
        secret_access_key = "test"
        """), 1)
    env.config_path.write_text(text)
    env.config = load_config(env.config_path)
    env.s3, env.bucket = s3_client, env.config.aws.bucket
    s3_client.create_bucket(Bucket=env.bucket)
    return env
