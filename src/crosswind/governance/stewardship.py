"""Who answers for the flow: ``[governance] domain, steward, owner, flow_id``,
written by one helper (``stewardship_fields``) on every report, HTML report,
lineage event and the status document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crosswind.config import Config


@dataclass(frozen=True, slots=True)
class Stewardship:
    domain: str | None = None
    steward: str | None = None
    owner: str | None = None
    flow_id: str | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> Stewardship:
        g = cfg.governance
        return cls(g.domain, g.steward, g.owner, g.flow_id)

    def as_dict(self) -> dict[str, str | None]:
        return {"domain": self.domain, "steward": self.steward, "owner": self.owner,
                "flow_id": self.flow_id}

    @property
    def known(self) -> bool:
        return any(self.as_dict().values())


def stewardship_fields(who: Stewardship | Config | None) -> dict[str, Any]:
    """``{"stewardship": {domain, steward, owner, flow_id}}``, for a report."""
    if isinstance(who, Config):
        who = Stewardship.from_config(who)
    return {"stewardship": (who or Stewardship()).as_dict()}
