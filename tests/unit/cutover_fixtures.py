"""Shared pieces of the cutover tests: real ed25519 keys made by ssh-keygen, a
config listing them as approvers, plans built from passing gate inputs."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crosswind.config import Config, load_config
from crosswind.cutover.gates import (
    GateInputs,
    Kind,
    PreflightResult,
    StreamBrief,
    ValidationBrief,
    evaluate_gates,
)
from crosswind.cutover.plan import Plan, make_plan
from crosswind.cutover.planning import limits
from crosswind.cutover.runbook import runbook_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Key:
    name: str
    private: Path
    public: str


def make_key(directory: Path, name: str) -> Key:
    path = directory / f"{name}_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test",
                    "-f", str(path)], check=True)
    return Key(name, path, Path(f"{path}.pub").read_text().strip())


def ssh_sign(key: Key, message: bytes, directory: Path, namespace: str = "crosswind") -> str:
    msg = directory / f"msg-{key.name}-{namespace}.txt"
    msg.write_bytes(message)
    sig = Path(f"{msg}.sig")
    sig.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key.private), "-n", namespace,
                    str(msg)], check=True, capture_output=True)
    return sig.read_text()


def write_config(directory: Path, approvers: dict[str, tuple[Key, str]], extra: str = ""
                 ) -> Path:
    lines = [textwrap.dedent(f"""
        [azure]
        connection_string = "env:CW_TEST_NEVER_RESOLVED"
        container = "c"
        [aws]
        bucket = "b"
        [state]
        dir = "{directory / 'state'}"
        [cutover]
        approval_ttl_s = 600
        {extra}
        """)]
    for name, (key, role) in approvers.items():
        lines.append(f'[cutover.approvers.{name}]\npublic_key = "{key.public}"\n'
                     f'role = "{role}"\n')
    path = directory / "cw.toml"
    path.write_text("\n".join(lines))
    return path


def passing_inputs(kind: Kind = "cutover", **over: Any) -> GateInputs:
    leaving = "azure-to-aws" if kind == "cutover" else "aws-to-azure"
    arriving = "aws-to-azure" if kind == "cutover" else "azure-to-aws"
    base = GateInputs(
        kind=kind, phase="pre_cutover" if kind == "cutover" else "post_cutover",
        service_running=True, service_direction=leaving, lag_p99_s=1.5,
        oldest_pending_s=0.2, streams=(StreamBrief("reconcile"),), service_errors=(),
        breakers=(("azure-blob", "closed"), ("s3", "closed")), dlq_open=0,
        dlq_acknowledged=0,
        validation=ValidationBrief(7, leaving, "pass", "2026-12-01T11:00:00+00:00",
                                   100.0, 100.0),
        validation_age_s=3600.0,
        preflight=PreflightResult(arriving, True, "probed", ("s3: read", "azure: write")),
        observed_at=NOW.isoformat())
    return replace(base, **over)


def build_plan(cfg: Config, kind: Kind = "cutover", inputs: GateInputs | None = None,
               created_at: str = "2026-12-01T12:00:00.000+00:00", **kw: Any) -> Plan:
    i = inputs or passing_inputs(kind)
    return make_plan(kind=kind, cfg=cfg, phase=i.phase, inputs=i,
                     gates=evaluate_gates(i, limits(cfg)),
                     runbook=runbook_for(kind, cfg.cutover, cfg.validation),
                     created_at=created_at, created_by="tester", audit_head=kw.get("head"))


def load(path: Path) -> Config:
    return load_config(path)
