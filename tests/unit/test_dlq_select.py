"""Naming DLQ entries for a replay: an unknown id is an error, one that something
else resolved first (the service's reconcile) is reported, not an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from crosswind.errors import ConfigError
from crosswind.metasync.ledger import Ledger
from crosswind.metasync.repair import already_resolved, select_items
from crosswind.state import StateStore


def _ledger(tmp_path: Path) -> tuple[StateStore, Ledger]:
    state = StateStore(tmp_path)
    return state, Ledger(state, "scope")


def _put(ledger: Ledger, item: str) -> int:
    return ledger.dlq_put("azure-to-aws", "object", item, pk=None, rk=None, kind="refused",
                          reason="403 from the replica", payload=None, run_id=None)


def test_resolved_entries_are_reported_and_unknown_ones_refused(tmp_path: Path) -> None:
    state, ledger = _ledger(tmp_path)
    try:
        a, b = _put(ledger, "events/a"), _put(ledger, "events/b")
        ledger.dlq_resolve("azure-to-aws", "object", ["events/a"], note="reconciled")
        items = select_items(ledger, [a, b], every=False, direction=None, kind=None)
        assert [i.id for i in items] == [b]
        done = already_resolved(ledger, [a, b])
        assert [(d["id"], d["item"], d["how"]) for d in done] == [(a, "events/a", "reconciled")]
        assert done[0]["when"]
        with pytest.raises(ConfigError, match=r"no open DLQ entries with id 999$"):
            select_items(ledger, [a, 999], every=False, direction=None, kind=None)
        assert already_resolved(ledger, []) == []
    finally:
        state.close()
