"""The migration phase, kept in the state store: which side is the primary.

``pre_cutover`` (Azure primary, replication azure-to-aws), ``cutting_over`` (the
switch is in progress), ``post_cutover`` (AWS primary, replication
aws-to-azure), ``rolling_back`` (going back to Azure). A fresh state is
``pre_cutover``. Changes go through ``MigrationStore.transition`` only, which
is optimistic: it names the version it read, and a second writer that read the
same version fails loudly instead of overwriting (the cutover's transition
table, in ``crosswind.cutover``, decides which transitions are legal).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from crosswind.errors import CrosswindError
from crosswind.model import Direction
from crosswind.state import StateStore, now_iso


class Phase(StrEnum):
    PRE_CUTOVER = "pre_cutover"
    CUTTING_OVER = "cutting_over"
    POST_CUTOVER = "post_cutover"
    ROLLING_BACK = "rolling_back"

    @property
    def direction(self) -> Direction:
        """Which way replication runs in this phase. While a switch is in
        progress the old primary is still the one being drained."""
        if self in (Phase.PRE_CUTOVER, Phase.CUTTING_OVER):
            return Direction.AZURE_TO_AWS
        return Direction.AWS_TO_AZURE


class ConcurrentUpdate(CrosswindError):
    """Someone else changed the migration state since it was read."""

    exit_code = 5


@dataclass(frozen=True, slots=True)
class MigrationRecord:
    phase: Phase
    version: int
    updated_at: str | None
    updated_by: str | None

    @property
    def direction(self) -> Direction:
        return self.phase.direction


class MigrationStore:
    def __init__(self, state: StateStore) -> None:
        self.db = state.db

    def get(self) -> MigrationRecord:
        row = self.db.execute(
            "SELECT phase, version, updated_at, updated_by FROM migration WHERE id=1"
        ).fetchone()
        if row is None:
            return MigrationRecord(Phase.PRE_CUTOVER, 0, None, None)
        return MigrationRecord(Phase(row[0]), int(row[1]), row[2], row[3])

    def transition(self, expected_version: int, phase: Phase, by: str | None = None
                   ) -> MigrationRecord:
        """Set ``phase`` if the stored version is still ``expected_version``."""
        at = now_iso()
        new = expected_version + 1
        if expected_version == 0:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO migration(id, phase, version, updated_at, updated_by)"
                " VALUES (1, ?, ?, ?, ?)", (phase.value, new, at, by))
        else:
            cur = self.db.execute(
                "UPDATE migration SET phase=?, version=?, updated_at=?, updated_by=?"
                " WHERE id=1 AND version=?", (phase.value, new, at, by, expected_version))
        if cur.rowcount != 1:
            now = self.get()
            raise ConcurrentUpdate(
                f"the migration state changed underneath (expected version {expected_version}, "
                f"found {now.version}, phase {now.phase.value}); read it again")
        return MigrationRecord(phase, new, at, by)
