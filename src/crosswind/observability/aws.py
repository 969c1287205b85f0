"""boto3 clients for the monitoring calls (CloudWatch, Service Quotas, EC2,
Lambda), with the credentials of ``[aws]`` (by reference) and its
``endpoint_url`` (an emulator serves them all on one port)."""

from __future__ import annotations

from typing import Any

from crosswind.config import AwsConfig
from crosswind.secrets import resolve


def client(aws: AwsConfig, service: str) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config as BotoConfig

    kw: dict[str, Any] = {}
    if aws.access_key_id and aws.secret_access_key:
        kw["aws_access_key_id"] = resolve(aws.access_key_id, where="[aws].access_key_id",
                                          allow_literal=aws.emulator).get_secret_value()
        kw["aws_secret_access_key"] = resolve(
            aws.secret_access_key, where="[aws].secret_access_key",
            allow_literal=aws.emulator).get_secret_value()
        if aws.session_token:
            kw["aws_session_token"] = resolve(aws.session_token, where="[aws].session_token",
                                              allow_literal=aws.emulator).get_secret_value()
    cfg = BotoConfig(region_name=aws.region, connect_timeout=10, read_timeout=30,
                     retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client(service, endpoint_url=aws.endpoint_url, config=cfg, **kw)
