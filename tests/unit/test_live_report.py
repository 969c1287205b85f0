"""The status document's ``last_reconcile``, from the summary the service publishes
(the objects' and the rows' reconciles nested under it)."""

from __future__ import annotations

from typing import Any

from crosswind.live.report import status_document
from crosswind.migration import Phase


def _doc(last_reconcile: dict[str, Any]) -> dict[str, Any]:
    return status_document(phase=Phase.PRE_CUTOVER, running=True, pid=1, since=None,
                           snapshot={"last_reconcile": last_reconcile}, dlq_open=0)


def test_listing_counts_and_errors_of_the_nested_reconciles_are_shown() -> None:
    objects = {"at": "2026-12-01T22:31:21+00:00", "listed": {"primary": 5016, "replica": 4649},
               "found": 1114, "drift": 610, "drift_examples": ["upsert a (new)"],
               "error": "azure-blob: listing failed"}
    rows = {"at": "2026-12-01T22:31:35+00:00", "drift": 322, "error": None}
    # the shape Epoch._reconcile_summary publishes
    summary = {"at": rows["at"], "drift": 932, "found": 1114,
               "drift_examples": objects["drift_examples"], "objects": objects, "rows": rows}
    brief = _doc(summary)["last_reconcile"]
    assert brief == {"at": rows["at"], "drift": 932, "found": 1114,
                     "listed": {"primary": 5016, "replica": 4649},
                     "drift_examples": ["upsert a (new)"],
                     "error": "azure-blob: listing failed",
                     "parts": {"objects": {"at": objects["at"], "drift": 610},
                               "rows": {"at": rows["at"], "drift": 322}}}


def test_a_rows_error_shows_when_the_objects_reconcile_had_none() -> None:
    summary = {"at": "t", "drift": 0, "found": 0, "drift_examples": [],
               "objects": {"at": "t", "listed": {"primary": 1, "replica": 1}, "error": None},
               "rows": {"at": "t", "drift": 0, "error": "documentdb: unreachable"}}
    assert _doc(summary)["last_reconcile"]["error"] == "documentdb: unreachable"


def test_a_flat_record_is_shown_as_it_is() -> None:
    flat = {"at": "t", "drift": 1, "found": 2, "listed": {"primary": 3, "replica": 2},
            "drift_examples": [], "error": None}
    assert _doc(flat)["last_reconcile"]["listed"] == {"primary": 3, "replica": 2}
