"""plan.decide: what to do with one key. Safety properties over small domains, so
that etags, sizes and hashes collide often."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from crosswind.model import ObjectMeta
from crosswind.state import VerifiedCopy
from crosswind.sync.march import Match
from crosswind.sync.plan import CLOCK_MARGIN_S, UNSETTLED, Action, decide, mtime_of, settled

etags = st.sampled_from(["e1", "e2", "e3"])
sizes = st.sampled_from([0, 1, 2])
md5s = st.sampled_from([None, "a" * 32, "b" * 32])
T1, T2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
times = st.sampled_from([None, T1, T2])
mtimes = st.sampled_from([None, int(T1.timestamp()), int(T2.timestamp())])
# Reads within, and long after, each mtime's second.
read_ats = st.sampled_from([None, T1.timestamp() + 0.5, T1.timestamp() + 10,
                            T2.timestamp() + 0.5, T2.timestamp() + 10])


@st.composite
def metas(draw: st.DrawFn) -> ObjectMeta:
    return ObjectMeta("k", draw(sizes), draw(st.one_of(st.none(), etags)), draw(times),
                      draw(md5s))


@st.composite
def records(draw: st.DrawFn) -> VerifiedCopy:
    return VerifiedCopy("k", draw(etags), draw(sizes), "c" * 32, draw(etags), draw(mtimes),
                        draw(read_ats))


matches = st.builds(
    Match, st.just("k"), st.one_of(st.none(), metas()), st.one_of(st.none(), metas()),
    st.one_of(st.none(), records()),
).filter(lambda m: m.src is not None or m.dst is not None)


def _same_mtime(m: Match) -> bool:
    s, r = m.src, m.record
    assert s is not None and r is not None
    return r.src_mtime is None or s.last_modified is None or r.src_mtime == mtime_of(s)


def _record_proves_equal(m: Match) -> bool:
    s, d, r = m.src, m.dst, m.record
    assert s is not None and d is not None
    return (
        r is not None and r.src_size == s.size and r.src_etag == s.etag
        and r.dst_etag == d.etag and _same_mtime(m)
    )


def _trusted(m: Match, tracks: bool) -> bool:
    """A record that proves equality may be trusted without a look at the
    metadata: the source's etag covers metadata, or no write can share the
    second of the version read."""
    assert m.src is not None and m.record is not None
    return tracks or m.src.last_modified is None or settled(m.record)


@given(matches, st.booleans(), st.booleans())
def test_decide(m: Match, delete: bool, tracks: bool) -> None:
    d = decide(m, delete=delete, etag_tracks_metadata=tracks)
    s, t, r = m.src, m.dst, m.record
    if s is None:
        # Only destination-only keys are ever deleted, and only when asked.
        assert d.action is (Action.DELETE if delete else Action.EXTRA)
        return
    assert d.action in (Action.COPY, Action.SKIP, Action.CHECK)
    if t is None:
        assert d.action is Action.COPY
        return
    if d.action is Action.SKIP:
        # Never skip without a verified record vouching for bytes and metadata.
        assert s.size == t.size and _record_proves_equal(m) and _trusted(m, tracks)
    if d.action is Action.CHECK and not _record_proves_equal(m):
        # Equal bytes without a record: metadata is compared before any skip.
        assert s.size == t.size and s.content_md5 is not None
        assert s.content_md5 == t.content_md5
    if s.size != t.size:
        assert d.action is Action.COPY
    elif _record_proves_equal(m):
        if _trusted(m, tracks):
            assert d.action is Action.SKIP, "a verified, unchanged pair is not copied again"
        else:
            # S3 (the etag misses metadata) read within its version's second.
            assert d == UNSETTLED
    elif r is not None and r.src_size == s.size and (r.src_etag != s.etag
                                                      or not _same_mtime(m)):
        # Metadata-only changes move the etag (Azure) or only the last-modified
        # time (S3, whose ETag is the MD5), not the MD5: still copied.
        assert d.action is Action.COPY
    elif s.content_md5 and t.content_md5:
        assert d.action is (Action.CHECK if s.content_md5 == t.content_md5 else Action.COPY)
    else:
        assert d.action is Action.COPY, "nothing proves them equal"


def test_a_read_is_settled_once_its_versions_second_is_surely_over() -> None:
    t = int(T1.timestamp())

    def rec(read_at: float | None, mtime: int | None = t) -> VerifiedCopy:
        return VerifiedCopy("k", "e", 1, "c" * 32, "d", mtime, read_at)

    assert not settled(rec(t + 0.9))  # within the second
    assert not settled(rec(t + 1 + CLOCK_MARGIN_S - 0.01))  # within the clock margin
    assert settled(rec(t + 1 + CLOCK_MARGIN_S))
    assert not settled(rec(None)) and not settled(rec(t + 100, None))  # unknown: look once


@given(metas(), st.booleans())
def test_delete_flag_never_touches_keys_the_source_has(s: ObjectMeta, delete: bool) -> None:
    for dst in (None, s):
        assert decide(Match("k", s, dst, None), delete=delete).action is not Action.DELETE


def test_s3_metadata_change_keeps_the_etag_but_moves_the_mtime() -> None:
    s = ObjectMeta("k", 2, "a" * 32, T2, "a" * 32)
    d = ObjectMeta("k", 2, "d1", T1, "a" * 32)
    r = VerifiedCopy("k", "a" * 32, 2, "a" * 32, "d1", int(T1.timestamp()))
    assert decide(Match("k", s, d, r), delete=False).action is Action.COPY
    legacy = VerifiedCopy("k", "a" * 32, 2, "a" * 32, "d1")  # recorded before src_mtime
    assert decide(Match("k", s, d, legacy), delete=False).action is Action.SKIP
