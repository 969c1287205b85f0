"""boto3 clients for the monitoring calls (CloudWatch, Service Quotas, EC2,
Lambda), built like every other AWS client of crosswind (``secrets/aws.py``):
the ``[aws]`` identity (keys by reference, or the role of ``role_arn``), its
``endpoint_url`` (an emulator serves them all on one port) and ``[tls]
ca_bundle``."""

from __future__ import annotations

from typing import Any

from crosswind.config import AwsConfig


def client(aws: AwsConfig, service: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    from crosswind.secrets.aws import assume_role, botocore_config, static_keys, verify_arg

    keys = assume_role(aws).as_boto() if aws.role_arn else static_keys(aws)
    session = boto3.Session(region_name=aws.region, **(keys or {}))
    return session.client(service, endpoint_url=aws.endpoint_url, verify=verify_arg(),
                          config=botocore_config(aws.region, read_timeout=30))
