"""AWS capacity monitors: the use of two quotas a serverless or VPC deployment
of crosswind runs into, for ``crosswind_aws_quota_*`` (alert at 70 %).

* ``lambda-concurrency``: Lambda's ``GetAccountSettings`` (concurrent executions
  in use would need CloudWatch; the account settings give the quota and what
  functions reserved); the generated CloudWatch alarm watches
  ``AWS/Lambda ConcurrentExecutions`` against 70 % of the quota directly.
* ``vpc-network-interfaces``: the network interfaces in the region
  (``DescribeNetworkInterfaces``) over Service Quotas' ``L-DF5E4CA3``
  ("Network interfaces per Region").

A quota the account (or an emulator) cannot tell is reported with its reason,
never guessed, except the Lambda quota's configured fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("crosswind.observability")

ENI_QUOTA = ("vpc", "L-DF5E4CA3")
LAMBDA_QUOTA = ("lambda", "L-B99A9384")

ClientFn = Callable[[str], Any]


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _quota(client: ClientFn, code: tuple[str, str]) -> float:
    q = client("service-quotas").get_service_quota(ServiceCode=code[0], QuotaCode=code[1])
    return float(q["Quota"]["Value"])


def network_interfaces(client: ClientFn) -> dict[str, Any]:
    try:
        used = 0
        for page in client("ec2").get_paginator("describe_network_interfaces").paginate():
            used += len(page.get("NetworkInterfaces", []))
        limit = _quota(client, ENI_QUOTA)
    except Exception as exc:  # an account without the permission, an emulator without the API
        return {"quota": "vpc-network-interfaces", "error": _error(exc)}
    return {"quota": "vpc-network-interfaces", "used": used, "limit": limit,
            "ratio": used / limit if limit else None}


def lambda_concurrency(client: ClientFn, fallback_quota: int) -> dict[str, Any]:
    try:
        settings = client("lambda").get_account_settings()
    except Exception as exc:
        return {"quota": "lambda-concurrency", "error": _error(exc)}
    limit = float(settings.get("AccountLimit", {}).get("ConcurrentExecutions")
                  or fallback_quota)
    unreserved = settings.get("AccountLimit", {}).get("UnreservedConcurrentExecutions")
    # what is claimed by functions' reserved concurrency: the part no longer free
    used = limit - float(unreserved) if unreserved is not None else None
    return {"quota": "lambda-concurrency", "used": used, "limit": limit,
            "ratio": used / limit if used is not None and limit else None}


def check_quotas(client: ClientFn, lambda_fallback: int) -> list[dict[str, Any]]:
    return [lambda_concurrency(client, lambda_fallback), network_interfaces(client)]
