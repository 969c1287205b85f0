"""What one run gets from governance: the stewardship, the schema gate and the
lineage. Built at the edges of a run (``Governance.open``), handed to the
engines, closed when the run is over; ``Governance.off()`` is every engine's
default (nothing checked, no lineage, no stewardship)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crosswind.config import Config
from crosswind.governance.gate import SchemaGate, SchemaRejected
from crosswind.governance.stewardship import Stewardship, stewardship_fields
from crosswind.state import StateStore

if TYPE_CHECKING:
    from crosswind.governance.lineage import Lineage


def _no_lineage() -> Lineage:
    # openlineage-python costs ~0.3 s of imports: only a run that sends events
    # (or asks for Governance.off()) pays it, not every CLI start.
    from crosswind.governance.lineage import Lineage

    return Lineage.off()


@dataclass
class Governance:
    stewardship: Stewardship = field(default_factory=Stewardship)
    schemas: SchemaGate = field(default_factory=SchemaGate.off)
    lineage: Lineage = field(default_factory=_no_lineage)

    @classmethod
    def off(cls) -> Governance:
        return cls()

    @classmethod
    def open(cls, cfg: Config, state: StateStore, *, lineage: bool = True,
             on_reject: Callable[[SchemaRejected], None] | None = None) -> Governance:
        """For a run on ``state`` (kept open while the run lasts)."""
        from crosswind.governance.lineage import Lineage
        from crosswind.governance.registry import Registry

        g = cfg.governance
        gate = SchemaGate.from_state(state, g.enforce, on_reject=on_reject)
        reg = Registry(state)

        def schema_of(subject: str) -> tuple[int, Any] | None:
            v = reg.get(subject)
            return None if v is None else (v.version, v.schema)

        lin = Lineage.from_config(cfg, schema_of) if lineage else Lineage.off()
        return cls(Stewardship.from_config(cfg), gate, lin)

    def report_fields(self, *, schemas: bool = True) -> dict[str, Any]:
        """What every report carries: the stewardship and (for runs that write) the
        validation before write."""
        out = stewardship_fields(self.stewardship)
        if schemas:
            out["schema_validation"] = self.schemas.report()
        return out

    def status(self) -> dict[str, Any]:
        """For the status document (and the dashboard): the report fields and how
        lineage delivery goes."""
        return {**self.report_fields(), "lineage": self.lineage.status()}

    def close(self) -> None:
        self.lineage.close()
