"""The AWS identity crosswind works with, shared by every AWS client it builds
(S3, SQS, STS, Secrets Manager, CloudWatch).

* Keys from ``[aws]`` (references, resolved) or the default chain (environment,
  profile, SSO, instance role);
* then, with ``[aws] role_arn``, STS AssumeRole (``external_id`` when given):
  temporary credentials whose expiry the stores watch (``expires_at``), and the
  assumed identity (``caller_identity``: STS GetCallerIdentity) that preflight
  shows;
* ``[aws] endpoint_url`` for every client when set (moto serves them all on one
  port), ``[tls] ca_bundle`` as the CA bundle of every client.

Secrets Manager is read with the same identity, except that ``[aws]`` keys which
are themselves ``secretsmanager:`` references are not used to read Secrets
Manager (the default chain is): no circle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crosswind.errors import AuthError, EndpointUnreachable
from crosswind.secrets import settings as _settings
from crosswind.secrets.cache import resolve
from crosswind.secrets.redaction import REDACTOR, redact
from crosswind.secrets.references import is_reference

if TYPE_CHECKING:
    from crosswind.config import AwsConfig
    from crosswind.secrets.settings import SecretSettings

#: assumed-role credentials are renewed this long before they expire
RENEW_BEFORE_S = 300.0


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    #: time.time() when they expire (None: static keys)
    expires_at: float | None
    #: who these are, safe to show ("access key AKIA…WXYZ", an assumed-role ARN)
    principal: str

    def as_boto(self) -> dict[str, str]:
        out = {"aws_access_key_id": self.access_key_id,
               "aws_secret_access_key": self.secret_access_key}
        if self.session_token:
            out["aws_session_token"] = self.session_token
        return out

    def __repr__(self) -> str:
        return f"AwsCredentials(principal={self.principal!r})"


def key_label(access_key_id: str) -> str:
    """An access key id as shown: its first four and last four characters."""
    return f"access key {access_key_id[:4]}…{access_key_id[-4:]}" if len(
        access_key_id) > 8 else "access key ***"


def static_keys(aws: AwsConfig, *, refresh: bool = False, for_secrets: bool = False
                ) -> dict[str, str] | None:
    """``[aws]`` keys, resolved; None for the default chain."""
    if not (aws.access_key_id and aws.secret_access_key):
        return None
    refs = [aws.access_key_id, aws.secret_access_key, aws.session_token or ""]
    if for_secrets and any(r.startswith("secretsmanager:") for r in refs):
        return None
    keys = {
        "aws_access_key_id": resolve(aws.access_key_id, where="[aws].access_key_id",
                                     allow_literal=aws.emulator,
                                     refresh=refresh).get_secret_value(),
        "aws_secret_access_key": resolve(aws.secret_access_key,
                                         where="[aws].secret_access_key",
                                         allow_literal=aws.emulator,
                                         refresh=refresh).get_secret_value(),
    }
    if aws.session_token:
        keys["aws_session_token"] = resolve(aws.session_token, where="[aws].session_token",
                                            allow_literal=aws.emulator,
                                            refresh=refresh).get_secret_value()
    return keys


def botocore_config(region: str, **extra: Any) -> Any:
    from botocore.config import Config as BotoConfig

    kw: dict[str, Any] = {"region_name": region,
                          "retries": {"max_attempts": 3, "mode": "standard"},
                          "connect_timeout": 10, "read_timeout": 60}
    kw.update(extra)
    return BotoConfig(**kw)


def verify_arg() -> str | None:
    """``verify=`` of a boto3/aiobotocore client: the configured CA bundle, or None
    (the system's, or ``AWS_CA_BUNDLE``); certificates are always verified."""
    ca = _settings.current().ca_bundle
    return str(ca) if ca else None


def _plain_client(service: str, aws: AwsConfig, region: str, keys: dict[str, str] | None
                  ) -> Any:
    import boto3  # type: ignore[import-untyped]

    session = boto3.Session(region_name=region, **(keys or {}))
    return session.client(service, endpoint_url=aws.endpoint_url, verify=verify_arg(),
                          config=botocore_config(region))


def assume_role(aws: AwsConfig, *, refresh: bool = False, for_secrets: bool = False
                ) -> AwsCredentials:
    """STS AssumeRole of ``[aws] role_arn`` with the base identity."""
    from botocore import exceptions as bx

    assert aws.role_arn
    sts = _plain_client("sts", aws, aws.region,
                        static_keys(aws, refresh=refresh, for_secrets=for_secrets))
    kw: dict[str, Any] = {"RoleArn": aws.role_arn, "RoleSessionName": aws.role_session_name,
                          "DurationSeconds": 3600}
    if aws.external_id:
        ext = aws.external_id
        kw["ExternalId"] = resolve(ext, where="[aws].external_id", allow_literal=True
                                   ).get_secret_value() if is_reference(ext) else ext
    try:
        r = sts.assume_role(**kw)
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        msg = redact(str(exc.response.get("Error", {}).get("Message", "")))[:200]
        raise AuthError(f"[aws].role_arn: cannot assume {aws.role_arn} ({code}): {msg}; the "
                        "role's trust policy must allow sts:AssumeRole for this identity"
                        + (" with this external ID" if aws.external_id else "")) from None
    except bx.NoCredentialsError:
        raise AuthError("[aws].role_arn: no AWS credentials to assume the role with "
                        "(no [aws] keys and none in the default chain)") from None
    except bx.BotoCoreError as exc:
        raise EndpointUnreachable(f"[aws].role_arn: cannot reach STS: "
                                  f"{redact(str(exc))[:200]}") from None
    c = r["Credentials"]
    for v in (c["SecretAccessKey"], c["SessionToken"]):
        REDACTOR.register(v)
    expires = c.get("Expiration")
    return AwsCredentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                          expires.timestamp() if expires is not None else None,
                          str(r.get("AssumedRoleUser", {}).get("Arn") or aws.role_arn))


def aws_credentials(aws: AwsConfig, *, refresh: bool = False) -> AwsCredentials | None:
    """The credentials every AWS store signs with; None: the default chain."""
    if aws.role_arn:
        return assume_role(aws, refresh=refresh)
    keys = static_keys(aws, refresh=refresh)
    if keys is None:
        return None
    return AwsCredentials(keys["aws_access_key_id"], keys["aws_secret_access_key"],
                          keys.get("aws_session_token"), None,
                          key_label(keys["aws_access_key_id"]))


def boto3_client(service: str, settings: SecretSettings, *, region: str | None = None,
                 for_secrets: bool = False) -> Any:
    """A boto3 client of ``service`` with crosswind's identity, endpoint and CA."""
    aws = settings.aws
    if aws is None:
        from crosswind.config import AwsConfig

        aws = AwsConfig.model_validate({"bucket": "-"})
    region = region or aws.region
    if aws.role_arn:
        creds = assume_role(aws, for_secrets=for_secrets)
        return _plain_client(service, aws, region, creds.as_boto())
    return _plain_client(service, aws, region, static_keys(aws, for_secrets=for_secrets))


def caller_identity(aws: AwsConfig) -> dict[str, str]:
    """STS GetCallerIdentity with the credentials the stores use: Arn, Account, UserId."""
    from botocore import exceptions as bx

    creds = aws_credentials(aws)
    sts = _plain_client("sts", aws, aws.region, creds.as_boto() if creds else None)
    try:
        r = sts.get_caller_identity()
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        raise AuthError(f"sts: GetCallerIdentity refused ({code})") from None
    except bx.NoCredentialsError:
        raise AuthError("sts: no AWS credentials found (config or default chain)") from None
    except bx.BotoCoreError as exc:
        raise EndpointUnreachable(f"sts: cannot reach STS: {redact(str(exc))[:200]}") from None
    return {"arn": str(r.get("Arn", "")), "account": str(r.get("Account", "")),
            "user_id": str(r.get("UserId", ""))}


def needs_renewal(creds: AwsCredentials | None, now: float | None = None) -> bool:
    """Temporary credentials that expire within ``RENEW_BEFORE_S``."""
    if creds is None or creds.expires_at is None:
        return False
    return (now or time.time()) >= creds.expires_at - RENEW_BEFORE_S


def aws_references(aws: AwsConfig) -> tuple[str, ...]:
    """What a refresh of the AWS credentials reads again, as shown in messages."""
    out = [f"[aws].{name} ({value})" for name in ("access_key_id", "secret_access_key",
                                                   "session_token")
           if (value := getattr(aws, name)) and is_reference(value)]
    if aws.role_arn:
        out.append(f"[aws].role_arn ({aws.role_arn}, assumed again)")
    return tuple(out)
