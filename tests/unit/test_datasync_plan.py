"""The DataSync engine's pure parts: our filters and options as DataSync's
requests, and the task report reader (``crosswind.datasync.plan``, ``taskreport``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.datasync.plan import (
    TAG_MANAGED,
    TAG_NAME,
    FilterNotMappable,
    Filters,
    TaskPlan,
    datasync_selects,
    is_ours,
    map_filter,
    tag_map,
    task_options,
)
from crosswind.datasync.taskreport import ReportTally, key_of
from crosswind.sync.filters import PROBE_PREFIX, KeyFilter

bounded = settings(max_examples=60, deadline=None)

# Few letters, so that prefixes, includes and keys overlap often.
_ALPHA = "ab/.-"
literal = st.text(_ALPHA, max_size=4)
keys = st.one_of(st.text(_ALPHA, min_size=1, max_size=7),
                 st.builds(lambda s: PROBE_PREFIX + s, st.text(_ALPHA, max_size=3)),
                 st.just(PROBE_PREFIX.rstrip("/")))
prefix_globs = st.lists(literal.map(lambda p: p + "*"), max_size=3)


@bounded
@given(prefix=literal, include=prefix_globs, exclude=prefix_globs,
       probe=st.lists(keys, min_size=1, max_size=25))
def test_datasync_selects_exactly_the_keys_crosswind_selects(
        prefix: str, include: list[str], exclude: list[str], probe: list[str]) -> None:
    ours = KeyFilter(tuple(include), tuple(exclude), prefix)
    try:
        mapped = map_filter(ours)
    except FilterNotMappable as exc:
        # Only a prefix and includes with nothing in common are refused here.
        assert "select no key together" in str(exc)
        assert not any(ours(k) for k in probe)
        return
    for k in probe:
        assert datasync_selects(mapped, k) == ours(k), (k, mapped)
    assert all(p.startswith("/") for p in (*mapped.includes, *mapped.excludes))
    assert f"/{PROBE_PREFIX}*" in mapped.excludes


unmappable = st.one_of(
    st.builds(lambda a, b: f"{a}*{b}", literal, st.text(_ALPHA, min_size=1, max_size=3)),
    literal.filter(lambda s: s != ""),  # no trailing '*': DataSync's folder rule differs
    st.builds(lambda a, c: f"{a}{c}*", literal, st.sampled_from("?[]|\\")),
)


@bounded
@given(glob=unmappable, option=st.sampled_from(["include", "exclude"]))
def test_globs_datasync_reads_differently_are_refused_naming_them(glob: str,
                                                                  option: str) -> None:
    f = KeyFilter(include=(glob,)) if option == "include" else KeyFilter(exclude=(glob,))
    with pytest.raises(FilterNotMappable) as info:
        map_filter(f)
    msg = str(info.value)
    assert f"--{option}" in msg and repr(glob) in msg and "\n" not in msg


def test_a_star_in_the_prefix_is_refused() -> None:
    with pytest.raises(FilterNotMappable, match="--prefix"):
        map_filter(KeyFilter(prefix="a*b/"))


def test_the_refusal_example_a_suffix_glob() -> None:
    # *.tmp under DataSync's folder rule would also skip x.tmp/child
    with pytest.raises(FilterNotMappable, match="folder"):
        map_filter(KeyFilter(exclude=("*.tmp",)))
    assert datasync_selects(Filters(excludes=("/*.tmp",)), "x.tmp/child") is False
    assert KeyFilter(exclude=("*.tmp",))("x.tmp/child") is True


@bounded
@given(delete=st.booleans(), bps=st.one_of(st.none(), st.integers(1, 10**10)),
       logs=st.booleans())
def test_task_options_match_ours(delete: bool, bps: int | None, logs: bool) -> None:
    o = task_options(delete=delete, bytes_per_second=bps, logs=logs)
    assert o["TransferMode"] == "CHANGED"
    assert o["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
    assert o["PreserveDeletedFiles"] == ("REMOVE" if delete else "PRESERVE")
    assert o.get("BytesPerSecond") == bps
    assert o["LogLevel"] == ("TRANSFER" if logs else "OFF")


def _plan(**kw: Any) -> TaskPlan:
    base: dict[str, Any] = dict(
        name="crosswind-c-b", container_url="https://acct.blob.core.windows.net/c",
        agent_arns=(), bucket_arn="arn:aws:s3:::b",
        bucket_access_role_arn="arn:aws:iam::123456789012:role/ds",
        s3_storage_class="STANDARD", options=task_options(delete=False, bytes_per_second=None,
                                                          logs=False),
        filters=map_filter(KeyFilter(prefix="events/")), report_bucket_arn="arn:aws:s3:::r",
        report_prefix="crosswind-datasync/", report_role_arn="arn:aws:iam::123456789012:role/ds")
    base.update(kw)
    return TaskPlan(**base)


def test_the_requests_are_enhanced_tagged_and_carry_no_token() -> None:
    p = _plan()
    t = p.create_task("arn:src", "arn:dst")
    assert t["TaskMode"] == "ENHANCED"
    assert t["Includes"] == [{"FilterType": "SIMPLE_PATTERN", "Value": "/events/*"}]
    assert t["Excludes"] == [{"FilterType": "SIMPLE_PATTERN", "Value": f"/{PROBE_PREFIX}*"}]
    assert t["TaskReportConfig"]["OutputType"] == "STANDARD"
    assert t["TaskReportConfig"]["ReportLevel"] == "SUCCESSES_AND_ERRORS"
    assert t["TaskReportConfig"]["Destination"]["S3"]["Subdirectory"] == "crosswind-datasync/"
    assert is_ours(tag_map(t["Tags"]), "crosswind-c-b", "task")
    az = p.azure_location()
    assert "SasConfiguration" not in az and "AgentArns" not in az  # agentless
    assert tag_map(az["Tags"])[TAG_MANAGED] == "crosswind"
    assert tag_map(p.s3_location()["Tags"])[TAG_NAME] == "crosswind-c-b"
    agents = ("arn:aws:datasync:us-east-1:123456789012:agent/agent-0123456789abcdef0",)
    assert _plan(agent_arns=agents).azure_location()["AgentArns"] == list(agents)
    # An update clears filters the config no longer has (an empty list).
    upd = _plan(filters=map_filter(KeyFilter())).update_task("arn:t")
    assert upd["Includes"] == [] and "TaskMode" not in upd


# -- the task report --------------------------------------------------------------

entry_status = st.sampled_from(["SUCCESS", "FAILED"])
entries = st.lists(st.tuples(st.text("abc/", min_size=1, max_size=5).filter(
    lambda k: not k.endswith("/")), st.integers(0, 999),
                             entry_status, st.booleans()), max_size=12)


@bounded
@given(section=st.sampled_from(["Transferred", "Verified", "Deleted", "Skipped"]),
       items=entries, split=st.integers(1, 5))
def test_report_tallies_count_objects_by_outcome(section: str,
                                                 items: list[tuple[str, int, str, bool]],
                                                 split: int) -> None:
    status_field = {"Transferred": "TransferStatus", "Verified": "VerifyStatus",
                    "Deleted": "DeleteStatus", "Skipped": "SkippedStatus"}[section]
    docs_entries = [{"RelativePath": "/" + k + ("/" if folder else ""),
                     "SourceMetadata": {"Type": "Directory" if folder else "Regular",
                                        "ContentSize": size},
                     status_field: status, "ErrorCode": "E1" if status != "SUCCESS" else None}
                    for k, size, status, folder in items]
    docs = [{"TaskExecutionId": "exec-1", section: docs_entries[i::split]}
            for i in range(split)]
    docs.append({"TaskExecutionId": "exec-0", section: docs_entries})  # an older execution
    verified: list[tuple[str, int]] = []
    tally = ReportTally()
    for d in docs:
        tally.add(json.loads(json.dumps(d)), lambda k, s: verified.append((k, s)), "exec-1")
    objects = [(k, size, status) for k, size, status, folder in items if not folder]
    ok = [(k, size) for k, size, status in objects if status == "SUCCESS"]
    assert tally.ok[section].count == len(ok)
    assert tally.ok[section].bytes == sum(s for _, s in ok)
    assert tally.failed_count == len(objects) - len(ok)
    assert sorted(verified) == (sorted(ok) if section == "Verified" else [])
    assert tally.foreign == 1 and tally.documents == split


def test_key_of_leaves_folders_out() -> None:
    assert key_of({"RelativePath": "/a/b.json"}) == "a/b.json"
    assert key_of({"RelativePath": "/a/"}) is None
    assert key_of({"RelativePath": "/a", "SourceMetadata": {"Type": "Directory"}}) is None
    assert key_of({}) is None


def test_the_summary_document_is_kept_without_item_lists() -> None:
    t = ReportTally()
    t.add({"TaskExecutionId": "exec-1", "Status": "SUCCESS", "Result": {"FilesVerified": 3},
           "Options": {"VerifyMode": "ONLY_FILES_TRANSFERRED"}}, lambda k, s: None)
    assert t.summary == {"TaskExecutionId": "exec-1", "Status": "SUCCESS",
                         "Result": {"FilesVerified": 3}}
