"""``[sync] engine`` and ``[datasync]``: bad settings are one line naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crosswind.config import parse_config
from crosswind.errors import ConfigError

ROLE = "arn:aws:iam::123456789012:role/ds"


def _cfg(datasync: dict[str, Any] | None, *, engine: str = "datasync",
         emulator: bool = False) -> Any:
    data: dict[str, Any] = {
        "azure": {"account_url": "https://acct.blob.core.windows.net", "container": "c",
                  "credential": "default",
                  "emulator": emulator},
        "aws": {"bucket": "b"}, "sync": {"engine": engine}}
    if datasync is not None:
        data["datasync"] = datasync
    return parse_config(data, Path("."))


GOOD = {"sas_token": "env:SAS", "bucket_access_role_arn": ROLE,
        "report_bucket_arn": "arn:aws:s3:::reports"}


def test_the_crosswind_engine_stays_the_default() -> None:
    cfg = parse_config({"azure": {"container": "c", "credential": "default",
                                  "account_url": "https://a.blob.core."
                                  "windows.net"}, "aws": {"bucket": "b"}}, Path("."))
    assert cfg.sync.engine == "crosswind" and cfg.datasync is None


def test_a_good_section_loads() -> None:
    cfg = _cfg(GOOD)
    assert cfg.datasync is not None and cfg.datasync.agent_arns == ()


@pytest.mark.parametrize(("datasync", "says"), [
    (None, '[sync] engine = "datasync" needs a [datasync] section'),
    ({k: v for k, v in GOOD.items() if k != "report_bucket_arn"},
     "[datasync].report_bucket_arn is required"),
    ({**GOOD, "sas_token": "sv=2024&sig=abc"}, "sas_token must be a reference"),
    ({**GOOD, "bucket_access_role_arn": "role/ds"}, "is not an IAM role ARN"),
    ({**GOOD, "report_bucket_arn": "reports"}, "is not an S3 bucket ARN"),
    ({**GOOD, "agent_arns": ["agent-1"]}, "is not a DataSync agent ARN"),
    ({**GOOD, "endpoint_url": "http://datasync.example.com"}, "plain http"),
    ({**GOOD, "poll_interval_s": 0}, "[datasync].poll_interval_s"),
    ({**GOOD, "sas": "env:X"}, "[datasync].sas is not a known setting"),
])
def test_bad_settings_are_one_line_naming_them(datasync: dict[str, Any] | None,
                                               says: str) -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(datasync)
    msg = str(info.value)
    assert says in msg and "\n" not in msg
    assert "sig=abc" not in msg
