"""The audit chain: every kind of tampering is found, with its sequence number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.audit import (
    AuditLog,
    Head,
    canonical_json,
    read_export,
    record_hash,
    sha256_hex,
    verify_chain,
)
from crosswind.secrets import REDACTOR
from crosswind.state import StateStore


def chain(tmp_path: Path, n: int = 5) -> tuple[StateStore, AuditLog]:
    state = StateStore(tmp_path / "state")
    log = AuditLog(state)
    for i in range(1, n + 1):
        log.append(f"step-{i}", "ok", principal="alice", verified_by="test",
                   plan_hash="ab" * 32, evidence={"lag_p99_s": i * 0.5, "n": i})
    return state, log


def problems(log: AuditLog, anchors: list[tuple[str, Head]] | None = None) -> list[str]:
    found, _ = log.verify(anchors or [])
    return [str(p) for p in found]


def body(state: StateStore, seq: int) -> dict[str, object]:
    return dict(json.loads(state.db.execute("SELECT body FROM audit_log WHERE seq=?",
                                            (seq,)).fetchone()[0]))


def put(state: StateStore, seq: int, doc: dict[str, object], rehash: bool) -> None:
    text = canonical_json(doc).decode()
    if rehash:
        state.db.execute("UPDATE audit_log SET body=?, hash=? WHERE seq=?",
                         (text, sha256_hex(text.encode()), seq))
    else:
        state.db.execute("UPDATE audit_log SET body=? WHERE seq=?", (text, seq))


def test_an_untouched_chain_verifies_and_records_have_the_au3_fields(tmp_path: Path) -> None:
    _state, log = chain(tmp_path)
    assert problems(log) == []
    rec = next(log.records())
    assert set(rec.body) == {"seq", "prev", "time", "action", "outcome", "actor", "where",
                             "source", "plan_hash", "evidence"}
    assert rec.body["actor"] == {"principal": "alice", "verified_by": "test"}
    assert rec.body["prev"] == "0" * 64 and rec.hash == record_hash(rec.body)
    assert log.head() == log.head_file() == Head(5, list(log.records())[-1].hash)


def test_an_edited_field_is_found(tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    doc = body(state, 3)
    doc["outcome"] = "failed"
    put(state, 3, doc, rehash=False)
    assert problems(log) == ["record 3: its content does not match its hash (edited)"]


def test_an_edit_with_a_recomputed_hash_is_found_at_the_next_record(tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    doc = body(state, 3)
    doc["actor"] = {"principal": "mallory", "verified_by": "test"}
    put(state, 3, doc, rehash=True)
    assert problems(log) == ["record 4: its prev does not match record 3's hash (a record "
                             "was edited, inserted or reordered here)"]


def test_a_removed_record_is_found(tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    state.db.execute("DELETE FROM audit_log WHERE seq=2")
    assert problems(log) == ["record 3: record(s) 2 before it are missing (removed)"]
    state.db.execute("DELETE FROM audit_log WHERE seq=1")
    assert problems(log)[0] == "record 3: record(s) 1..2 before it are missing (removed)"


def test_two_swapped_records_are_found(tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    rows = {s: (h, b) for s, h, b in state.db.execute("SELECT seq, hash, body FROM audit_log")}
    for a, b in ((2, 4), (4, 2)):
        state.db.execute("UPDATE audit_log SET hash=?, body=? WHERE seq=?", (*rows[b], a))
    found = problems(log)
    assert "record 2: says it is record 4 (moved, reordered or inserted)" in found
    assert "record 4: says it is record 2 (moved, reordered or inserted)" in found
    assert any(p.startswith("record 3: its prev") for p in found)


def test_an_inserted_record_is_found(tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    # Shift records 3.. up by one and slip a well-formed record in as 3.
    state.db.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3")
    state.db.execute("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100")
    two = state.db.execute("SELECT hash FROM audit_log WHERE seq=2").fetchone()[0]
    forged = {**body(state, 2), "seq": 3, "prev": two, "action": "approve"}
    text = canonical_json(forged).decode()
    state.db.execute("INSERT INTO audit_log(seq, hash, body) VALUES (3, ?, ?)",
                     (sha256_hex(text.encode()), text))
    found = problems(log)
    assert "record 4: says it is record 3 (moved, reordered or inserted)" in found
    assert any(p.startswith("record 4: its prev") for p in found)


def test_a_truncated_tail_is_found_against_the_head_file(tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    state.db.execute("DELETE FROM audit_log WHERE seq >= 4")
    assert problems(log) == ["the chain ends at record 3 but the head file audit.head has "
                             "record 5: records 4..5 were removed (truncated)"]


def test_truncation_with_the_head_file_gone_is_found_against_an_outside_head(
        tmp_path: Path) -> None:
    state, log = chain(tmp_path)
    kept = log.head()
    assert kept is not None
    state.db.execute("DELETE FROM audit_log WHERE seq = 5")
    log.head_path.unlink()
    found = problems(log, [("--head", kept)])
    assert found[0].startswith("the head file audit.head is missing")
    assert found[1] == ("the chain ends at record 4 but --head has record 5: records 5..5 "
                        "were removed (truncated)")
    # A head file rewritten to the shorter chain still loses to the outside head.
    log._write_head(Head(4, state.db.execute("SELECT hash FROM audit_log WHERE seq=4"
                                             ).fetchone()[0]))
    assert problems(log, [("--head", kept)]) == [found[1]]


def test_a_rewritten_chain_is_found_against_an_anchor(tmp_path: Path) -> None:
    _state, log = chain(tmp_path)
    anchor = Head(2, "f" * 64)
    assert problems(log, [("plan abc", anchor)]) == [
        "record 2: does not match the hash plan abc has for it (the chain was rewritten)"]


def test_secrets_never_enter_a_record(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    log = AuditLog(state)
    secret = "s3cr3t-value-registered-0123"
    REDACTOR.register(secret)
    rec = log.append("plan", f"used {secret}", principal="ops", verified_by="test",
                     evidence={"password": "hunter2hunter2", "token": "env:TOKEN",
                               "note": f"key={secret}",
                               "conn": "DefaultEndpointsProtocol=https;AccountKey=abcdefgh"})
    text = state.db.execute("SELECT body FROM audit_log").fetchone()[0]
    for leaked in (secret, "hunter2hunter2", "abcdefgh"):
        assert leaked not in text
    assert rec.body["evidence"]["token"] == "env:TOKEN"  # a reference is no secret


def test_export_is_jsonl_and_verifies_on_its_own(tmp_path: Path) -> None:
    _state, log = chain(tmp_path)
    out = tmp_path / "audit.jsonl"
    n, head = log.export(out)
    lines = out.read_text().splitlines()
    assert n == len(lines) == 5 and head == log.head()
    first = json.loads(lines[0])
    h = first.pop("hash")
    assert sha256_hex(canonical_json(first)) == h  # anyone can recompute it
    assert verify_chain(read_export(out))[0] == []
    # Reordered lines in an export are found too.
    out.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    assert verify_chain(read_export(out))[0] != []


def test_appends_from_two_logs_on_one_state_dir_keep_one_chain(tmp_path: Path) -> None:
    a_state = StateStore(tmp_path / "state")
    b_state = StateStore(tmp_path / "state")
    a, b = AuditLog(a_state), AuditLog(b_state)
    for i in range(10):
        (a if i % 2 else b).append("x", "ok", principal="p", verified_by="v")
    assert problems(a) == [] and a.head() == b.head_file() and a.head() is not None
    assert a.head().seq == 10  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 8), st.data())
def test_any_single_tampering_is_found(n: int, data: st.DataObject) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cw-audit-") as tmp:
        state, log = chain(Path(tmp), n)
        kind = data.draw(st.sampled_from(["edit", "edit-rehash", "delete", "swap", "truncate"]))
        seq = data.draw(st.integers(1, n - 1))
        if kind.startswith("edit"):
            doc = body(state, seq)
            doc["evidence"] = {"n": -1}
            put(state, seq, doc, rehash=kind == "edit-rehash")
        elif kind == "delete":
            state.db.execute("DELETE FROM audit_log WHERE seq=?", (seq,))
        elif kind == "swap":
            rows = {s: (h, b) for s, h, b in state.db.execute(
                "SELECT seq, hash, body FROM audit_log WHERE seq IN (?, ?)", (seq, seq + 1))}
            state.db.execute("UPDATE audit_log SET hash=?, body=? WHERE seq=?",
                             (*rows[seq + 1], seq))
            state.db.execute("UPDATE audit_log SET hash=?, body=? WHERE seq=?",
                             (*rows[seq], seq + 1))
        else:
            state.db.execute("DELETE FROM audit_log WHERE seq > ?", (seq,))
        found, _ = log.verify()
        assert found, kind
        state.close()


def test_a_head_is_parsed_strictly() -> None:
    h = Head.parse(f"7:{'a' * 64}")
    assert h == Head(7, "a" * 64) and str(h) == f"7:{'a' * 64}"
    from crosswind.audit import AuditError

    with pytest.raises(AuditError, match="not an audit head"):
        Head.parse("7:xyz")
