"""The whole sync engine (``SyncRun``) over MemoryStores, as a property.

Each example builds a random estate and history:

1. a source and a destination of random flavors (azure / s3 / free) with random
   objects, headers and user metadata valid for the source flavor;
2. optionally a prior run (its own random filter, no deletes) that leaves
   real verified records in the state store;
3. random drift since then: source objects rewritten, re-labelled (metadata
   only), deleted or added; destination objects overwritten, deleted or
   added; optionally the state store lost; stale verified records;
4. the run under test, with a random filter, delete on or off, random delete
   limits, small multipart thresholds and concurrency (optionally preceded by
   a dry run that must change nothing).

Then: within the filter the destination equals the source (bytes, headers,
user metadata after mapping and back), keys outside the filter are untouched,
the source is untouched, deletes happen all-or-nothing under the limits, and a
second run copies nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from crosswind.mapping import original_names, split_reserved, valid_name
from crosswind.model import ObjectProps
from crosswind.state import StateStore, VerifiedCopy
from crosswind.stores.base import MetadataFlavor
from crosswind.stores.common import md5_hex
from crosswind.stores.memory import MemoryStore
from crosswind.sync.engine import SyncRun
from crosswind.sync.filters import KeyFilter
from crosswind.sync.result import SyncOptions, SyncResult
from crosswind.sync.transfer import TransferSettings

DIRECTION = "azure-to-aws"
FLAVORS: list[MetadataFlavor] = ["azure", "s3", "free"]

keys = st.text(st.sampled_from(["a", "b", "/", "é", "\ue000", "\U0001f600"]), min_size=1,
               max_size=3)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6)
NAMES: dict[str, st.SearchStrategy[str]] = {
    "azure": st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True),
    "s3": st.from_regex(r"[a-z0-9\-._~]{1,6}", fullmatch=True),
    "free": st.text(st.sampled_from(["a", "B", "-", " ", "_", "é", "1"]), min_size=1,
                    max_size=4),
}
filters = st.builds(
    KeyFilter,
    st.sampled_from([(), (), (), ("a*",), ("*b*", "é*"), ("*\U0001f600*",)]),
    st.sampled_from([(), (), (), ("*/*",), ("?",), ("*\ue000",)]),
    st.sampled_from(["", "", "", "a", "a/"]),
)

_unique = itertools.count()


def _is_reserved(name: str) -> bool:
    return name.lower().replace("_", "-") in {"crosswind-md5", "crosswind-mtime",
                                              "crosswind-keymap"}


@st.composite
def props_for(draw: st.DrawFn, flavor: str) -> ObjectProps:
    names = draw(st.lists(NAMES[flavor], max_size=3, unique_by=str.lower))
    md = {n: draw(values) for n in names if not _is_reserved(n)}
    return ObjectProps(
        content_type=draw(st.sampled_from([None, "application/json", "text/plain"])),
        cache_control=draw(st.sampled_from([None, "no-cache"])),
        content_language=draw(st.sampled_from([None, "en"])),
        metadata=md,
    )


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    # Every payload is unique, so the destination never holds the source's bytes
    # unless crosswind put them there (see test_sync on metadata-only changes).
    return draw(st.binary(max_size=10)) + f"#{next(_unique)}".encode()


@dataclass
class Scenario:
    src_flavor: MetadataFlavor
    dst_flavor: MetadataFlavor
    src: dict[str, tuple[bytes, ObjectProps]]
    dst: dict[str, bytes]
    prior_filter: KeyFilter | None
    src_rewrite: dict[str, tuple[bytes, ObjectProps]]
    src_relabel: dict[str, ObjectProps]
    src_delete: set[str]
    dst_overwrite: dict[str, bytes]
    dst_delete: set[str]
    lose_state: bool
    stale_records: set[str]
    filter: KeyFilter
    delete: bool
    max_delete_count: int
    max_delete_percent: float
    dry_run_first: bool
    transfer: TransferSettings
    concurrency: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    src_flavor = draw(st.sampled_from(FLAVORS))
    dst_flavor = draw(st.sampled_from(FLAVORS))
    all_keys = sorted(draw(st.sets(keys, min_size=3, max_size=14)))
    src_keys = [k for k in all_keys if draw(st.integers(0, 3))]
    dst_keys = [k for k in all_keys if draw(st.booleans())]
    src = {k: (draw(payloads()), draw(props_for(src_flavor))) for k in src_keys}
    dst = {k: draw(payloads()) for k in dst_keys}
    prior_filter = draw(st.one_of(st.just(KeyFilter()), filters)) if draw(
        st.integers(0, 3)) else None

    def some(ks: list[str], one_in: int = 4) -> list[str]:
        return [k for k in ks if draw(st.integers(1, one_in)) == 1]

    lose_state = draw(st.integers(1, 3)) == 1
    src_rewrite = {k: (draw(payloads()), draw(props_for(src_flavor)))
                   for k in some(src_keys) + draw(st.lists(keys, max_size=2))}
    # Metadata-only changes: the verified record shows the source etag moved;
    # without a record (lost state) equal bytes get their metadata compared.
    src_relabel = {
        k: draw(props_for(src_flavor)) for k in some(src_keys, 2) if k not in src_rewrite
    }
    return Scenario(
        src_flavor, dst_flavor, src, dst, prior_filter,
        src_rewrite, src_relabel, set(some(src_keys)) - set(src_rewrite),
        {k: draw(payloads()) for k in some(all_keys) + draw(st.lists(keys, max_size=2))},
        set(some(all_keys)),
        lose_state, set(draw(st.lists(keys, max_size=3))),
        draw(filters), draw(st.booleans()), draw(st.integers(0, 4)),
        draw(st.sampled_from([0.0, 25.0, 50.0, 100.0])), draw(st.booleans()),
        TransferSettings(multipart_threshold=draw(st.sampled_from([4, 1 << 20])),
                         part_size=3, part_concurrency=2),
        draw(st.integers(1, 4)),
    )


def _snapshot(store: MemoryStore) -> dict[str, str]:
    return {k: s.etag for k, s in store.objects.items()}


async def _put(store: MemoryStore, key: str, data: bytes, props: ObjectProps) -> None:
    await store.put(key, data, props, md5=md5_hex(data))


async def _run(sc: Scenario, src: MemoryStore, dst: MemoryStore, state: StateStore,
               *, dry_run: bool = False, flt: KeyFilter | None = None,
               delete: bool | None = None) -> SyncResult:
    opts = SyncOptions(
        direction=DIRECTION, dry_run=dry_run,
        delete=sc.delete if delete is None else delete,
        filter=sc.filter if flt is None else flt, concurrency=sc.concurrency,
        max_delete_count=sc.max_delete_count, max_delete_percent=sc.max_delete_percent,
        attempts=2, transfer=sc.transfer,
    )
    return await SyncRun(src, dst, state, opts).run()


def _check_copy(sc: Scenario, key: str, src: MemoryStore, dst: MemoryStore) -> None:
    s, d = src.objects[key], dst.objects.get(key)
    assert d is not None, f"{key!r} missing at the destination"
    assert d.data == s.data, key
    assert d.props.headers() == s.props.headers(), key
    for name in d.props.metadata:
        assert valid_name(sc.dst_flavor, name), (key, name)
    # Read back through the keymap, the destination's user metadata is the source's.
    assert original_names(d.props.metadata) == dict(s.props.metadata), key
    ours = split_reserved(d.props.metadata)[1]
    assert ours.get("md5") == md5_hex(s.data), key
    assert ours.get("mtime"), key


async def _scenario(sc: Scenario, tmp: Path) -> list[str]:
    """Run one scenario and check it; return labels for hypothesis' statistics."""
    src = MemoryStore("src", sc.src_flavor)
    dst = MemoryStore("dst", sc.dst_flavor)
    for k, (data, props) in sc.src.items():
        await _put(src, k, data, props)
    for k, data in sc.dst.items():
        await _put(dst, k, data, ObjectProps(content_type="old/stuff", metadata={"old": "1"}))

    state = StateStore(tmp / "state")
    if sc.prior_filter is not None:
        prior = await _run(sc, src, dst, state, flt=sc.prior_filter, delete=False)
        assert prior.ok, prior.error

    # Drift since the prior run.
    for k, (data, props) in sc.src_rewrite.items():
        await _put(src, k, data, props)
    for k, props in sc.src_relabel.items():
        await _put(src, k, src.objects[k].data, props)
    for k in sc.src_delete:
        await src.delete(k)
    for k, data in sc.dst_overwrite.items():
        await _put(dst, k, data, ObjectProps(metadata={"drift": "1"}))
    for k in sc.dst_delete:
        await dst.delete(k)
    if sc.lose_state:
        state.close()
        state = StateStore(tmp / "fresh-state")
    for k in sorted(sc.stale_records):
        # A record of an older version: same size if the key exists, other etags.
        size = len(src.objects[k].data) if k in src.objects else 1
        state.record_verified(DIRECTION, VerifiedCopy(k, "stale", size, "0" * 32, "stale"))

    src_before = _snapshot(src)
    dst_before = _snapshot(dst)

    if sc.dry_run_first:
        dry = await _run(sc, src, dst, state, dry_run=True)
        assert dry.status in ("succeeded", "aborted")
        assert _snapshot(dst) == dst_before, "a dry run changed the destination"
        assert all(sc.filter(c["key"]) for c in dry.would_copy_examples)

    result = await _run(sc, src, dst, state)
    assert _snapshot(src) == src_before, "the source was changed"
    after = _snapshot(dst)
    assert result.failures == []

    keep = sc.filter
    for k in src.objects:
        if keep(k):
            _check_copy(sc, k, src, dst)
    for k in set(dst_before) | set(after):
        if not keep(k):
            assert after.get(k) == dst_before.get(k), f"{k!r} is outside the filter"

    extras = sorted(k for k in dst_before if keep(k) and k not in src.objects)
    in_scope = sum(1 for k in dst_before if keep(k))
    too_many = len(extras) > sc.max_delete_count or (
        100.0 * len(extras) / max(in_scope, 1) > sc.max_delete_percent
    )
    gone = [k for k in extras if k not in after]
    deletes = "off" if not sc.delete else "none" if not extras else (
        "over the limit" if too_many else "done")
    changed = result.stats.copy_reasons["source changed since verified copy"]
    labels = [
        f"deletes: {deletes}",
        f"copied: {'some' if result.stats.copied.count else 'none'}",
        f"skipped as in sync: {'some' if result.stats.skipped.count else 'none'}",
        f"prior run: {sc.prior_filter is not None}, state lost: {sc.lose_state}",
        f"metadata-only changes: {'some' if sc.src_relabel else 'none'}",
        f"copied because the source changed: {'some' if changed else 'none'}",
    ]
    if not sc.delete or not extras:
        assert gone == []
        assert result.status == "succeeded", result.error
    elif too_many:
        assert gone == [], "deleted although the limit was exceeded"
        assert result.status == "aborted"
        assert result.error and "nothing was deleted" in result.error
    else:
        assert gone == extras
        assert len(gone) <= sc.max_delete_count
        assert result.status == "succeeded", result.error
    assert result.stats.deleted.count == len(gone)

    again = await _run(sc, src, dst, state)
    assert again.stats.copied.count == 0, "the second run copied again"
    assert again.stats.planned.count == 0
    if result.status == "aborted":
        # The percentage is of the destination as listed, which the first run's
        # copies grew: the second run may now be within the limit. All or nothing.
        left = [k for k in extras if k in dst.objects]
        assert left in ([], extras)
        assert again.stats.deleted.count in (0, len(extras))
        assert again.stats.deleted.count <= sc.max_delete_count
    else:
        assert again.stats.deleted.count == 0
        assert _snapshot(dst) == after
    state.close()
    return labels


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_sync(sc: Scenario) -> None:
    """Metadata-only drift is covered with and without the state store: equal
    bytes without a verified record get their headers and metadata compared."""
    with tempfile.TemporaryDirectory() as tmp:
        for label in asyncio.run(_scenario(sc, Path(tmp))):
            event(label)


def test_sync_copies_everything_with_metadata_example() -> None:
    """One readable example of the property, with a multipart object."""
    sc = Scenario(
        "azure", "s3",
        {"a/1": (b"x" * 9, ObjectProps(content_type="application/json",
                                       metadata={"FlightNo": "BA117"})),
         "b": (b"yy", ObjectProps())},
        {"zz": b"extra"}, None, {}, {}, set(), {}, set(), False, set(),
        KeyFilter(), True, 5, 100.0, False,
        TransferSettings(multipart_threshold=4, part_size=3, part_concurrency=2), 2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(sc, Path(tmp)))
