"""Object sync on the real rig: Azurite ⇄ moto, through the engine's entry point."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import pytest
from azure.storage.blob import ContentSettings

from crosswind.model import Direction
from crosswind.state import StateStore
from crosswind.stores.factory import open_object_store
from crosswind.sync.engine import SyncRun
from crosswind.sync.objects import options_from_config, sync_objects
from crosswind.sync.report import sync_report
from crosswind.sync.result import SyncResult
from tests.faults import CorruptingStore
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
A2W = Direction.AZURE_TO_AWS
W2A = Direction.AWS_TO_AZURE


def sync(env: Env, direction: Direction = A2W, **overrides: Any) -> dict[str, Any]:
    opts = options_from_config(env.config, direction, **overrides)
    result = asyncio.run(sync_objects(env.config, direction, opts))
    return sync_report(result)


def put_blob(env: Env, key: str, data: bytes, **kw: Any) -> None:
    env.container.upload_blob(key, data, overwrite=True, **kw)


def s3_objects(env: Env) -> dict[str, bytes]:
    s3: Any = env.s3
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=env.bucket, Key=o["Key"])["Body"].read()
    return out


def blobs(env: Env) -> dict[str, bytes]:
    return {b.name: env.container.download_blob(b.name).readall()
            for b in env.container.list_blobs()}


def test_copy_incremental_changed_and_headers(make_env: Any) -> None:
    env = make_env()
    estate = {f"events/2026/11/26/AA{i:04d}/DFW-LAX/dep-{i}.json": os.urandom(100 + i)
              for i in range(40)}
    for k, v in estate.items():
        put_blob(env, k, v, metadata={"FlightNo": k.split("/")[4], "Origin": "DFW"},
                 content_settings=ContentSettings(
                     content_type="application/json", content_encoding="identity",
                     content_language="en-US", content_disposition="inline",
                     cache_control="max-age=60"))
    put_blob(env, "names/été/Zürich ✈ 東京.json", b"{}")

    first = sync(env)
    assert first["status"] == "succeeded", first
    assert first["copied"]["count"] == 41
    assert s3_objects(env) == {**estate, "names/été/Zürich ✈ 東京.json": b"{}"}

    # Headers and metadata, read back with the native SDK.
    key = next(iter(estate))
    h = env.s3.head_object(Bucket=env.bucket, Key=key)  # type: ignore[attr-defined]
    assert h["ContentType"] == "application/json"
    assert h["ContentEncoding"] == "identity"
    assert h["ContentLanguage"] == "en-US"
    assert h["ContentDisposition"] == "inline"
    assert h["CacheControl"] == "max-age=60"
    md = h["Metadata"]
    assert md["flightno"] == key.split("/")[4] and md["origin"] == "DFW"
    assert md["crosswind-md5"] == hashlib.md5(estate[key]).hexdigest()
    assert md["crosswind-mtime"].startswith("20")
    assert '"flightno": "FlightNo"' in md["crosswind-keymap"]

    again = sync(env)
    assert again["copied"]["count"] == 0 and again["skipped"]["count"] == 41

    put_blob(env, key, b"changed content")
    third = sync(env)
    assert third["copied"]["count"] == 1
    assert s3_objects(env)[key] == b"changed content"

    # A metadata-only change moves the etag and is propagated too.
    env.container.get_blob_client(key).set_blob_metadata({"FlightNo": "X1"})
    fourth = sync(env)
    assert fourth["copied"]["count"] == 1
    h = env.s3.head_object(Bucket=env.bucket, Key=key)  # type: ignore[attr-defined]
    assert h["Metadata"]["flightno"] == "X1"


def test_multipart_both_directions_round_trip(make_env: Any) -> None:
    env = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=64 * MiB)
    big = os.urandom(13 * MiB + 7)
    put_blob(env, "big/flight-archive.bin", big, metadata={"Kind": "archive"})
    put_blob(env, "small.json", b'{"a": 1}')
    report = sync(env)
    assert report["status"] == "succeeded", report
    s3: Any = env.s3
    h = s3.head_object(Bucket=env.bucket, Key="big/flight-archive.bin")
    assert h["ETag"].strip('"').endswith("-3")  # three parts
    assert s3.get_object(Bucket=env.bucket, Key="big/flight-archive.bin")["Body"].read() == big

    # After cutover: S3 is primary. Copy into a fresh container and compare.
    back = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=64 * MiB)
    s3.put_object(Bucket=back.bucket, Key="big/flight-archive.bin", Body=big,
                  Metadata={"content-owner": "ops", "Kind": "archive"})
    s3.put_object(Bucket=back.bucket, Key="new-after-cutover.json", Body=b"{}",
                  ContentType="application/json")
    rep = sync(back, W2A)
    assert rep["status"] == "succeeded", rep
    assert rep["metadata"]["keys_renamed"] == 1
    got = blobs(back)
    assert got["big/flight-archive.bin"] == big
    p = back.container.get_blob_client("big/flight-archive.bin").get_blob_properties()
    assert p.metadata["content_owner"] == "ops"
    assert p.metadata["crosswind_md5"] == hashlib.md5(big).hexdigest()
    assert bytes(p.content_settings.content_md5).hex() == hashlib.md5(big).hexdigest()
    p2 = back.container.get_blob_client("new-after-cutover.json").get_blob_properties()
    assert p2.content_settings.content_type == "application/json"
    # Incremental in this direction too.
    assert sync(back, W2A)["copied"]["count"] == 0


def _corrupting_run(env: Env, keys: set[str] | None) -> tuple[SyncResult, list[str]]:
    async def go() -> tuple[SyncResult, list[str]]:
        src = await open_object_store(env.config, "azure")
        dst = await open_object_store(env.config, "aws")
        faulty = CorruptingStore(dst, keys)
        state = StateStore(env.config.state_dir)
        try:
            opts = options_from_config(env.config, A2W)
            result = await SyncRun(src, faulty, state, opts).run()  # type: ignore[arg-type]
            return result, faulty.corrupted
        finally:
            state.close()
            await src.close()
            await dst.close()

    return asyncio.run(go())


def test_corruption_between_read_and_write_is_caught(make_env: Any) -> None:
    env = make_env(multipart_threshold=5 * MiB, part_size=5 * MiB, memory_budget=64 * MiB)
    put_blob(env, "ok.json", b"fine")
    put_blob(env, "bad.json", b"will be corrupted on the way")
    put_blob(env, "bad-big.bin", os.urandom(11 * MiB))
    result, corrupted = _corrupting_run(env, {"bad.json", "bad-big.bin"})
    report = sync_report(result)
    assert set(corrupted) >= {"bad.json", "bad-big.bin"}
    assert result.status == "failed"
    assert {f["key"] for f in report["failures"]} == {"bad.json", "bad-big.bin"}
    assert all(f["kind"] == "IntegrityError" for f in report["failures"])
    # Nothing unverified is visible or recorded.
    assert set(s3_objects(env)) == {"ok.json"}
    state = StateStore(env.config.state_dir)
    try:
        assert state.get_verified(A2W.value, "bad.json") is None
        assert state.get_verified(A2W.value, "bad-big.bin") is None
        assert state.get_verified(A2W.value, "ok.json") is not None
    finally:
        state.close()
    # Without the fault the next run copies exactly the two.
    report = sync(env)
    assert report["copied"]["count"] == 2 and report["status"] == "succeeded"


def test_dry_run_changes_nothing(make_env: Any) -> None:
    env = make_env()
    for i in range(5):
        put_blob(env, f"k{i}", b"x" * i)
    env.s3.put_object(Bucket=env.bucket, Key="extra", Body=b"e")  # type: ignore[attr-defined]
    report = sync(env, dry_run=True, delete=True)
    assert report["would_copy"]["count"] == 5
    assert report["would_delete"]["count"] == 1
    assert set(s3_objects(env)) == {"extra"}
    state = StateStore(env.config.state_dir)
    try:
        assert list(state.iter_verified(A2W.value)) == []
    finally:
        state.close()


def test_delete_guard_aborts_before_deleting_anything(make_env: Any) -> None:
    env = make_env(max_delete_count=3)
    put_blob(env, "keep", b"k")
    for i in range(5):
        env.s3.put_object(Bucket=env.bucket, Key=f"stale/{i}", Body=b"s")  # type: ignore[attr-defined]
    report = sync(env, delete=True)
    assert report["status"] == "aborted"
    assert "nothing was deleted" in report["error"]
    assert report["deleted"]["count"] == 0
    assert set(s3_objects(env)) == {"keep", *(f"stale/{i}" for i in range(5))}

    # The percentage limit applies too: 5 of 6 objects is far above 10 %.
    report = sync(env, delete=True, max_delete_count=100)
    assert report["status"] == "aborted"
    # Within both limits, deletes go through and are counted.
    report = sync(env, delete=True, max_delete_count=100, max_delete_percent=100.0)
    assert report["status"] == "succeeded" and report["deleted"]["count"] == 5
    assert set(s3_objects(env)) == {"keep"}


def test_filters_limit_copies_and_deletes(make_env: Any) -> None:
    env = make_env()
    put_blob(env, "events/a.json", b"a")
    put_blob(env, "events/b.tmp", b"b")
    put_blob(env, "other/c.json", b"c")
    env.s3.put_object(Bucket=env.bucket, Key="other/keep-me", Body=b"x")  # type: ignore[attr-defined]
    from crosswind.sync.filters import KeyFilter

    report = sync(env, delete=True, max_delete_percent=100.0,
                  filter=KeyFilter(include=("events/*",), exclude=("*.tmp",)))
    assert report["copied"]["count"] == 1
    assert set(s3_objects(env)) == {"events/a.json", "other/keep-me"}


def test_destination_seeded_by_another_tool(make_env: Any) -> None:
    """Equal bytes without a verified record: metadata is compared, not assumed."""
    env = make_env()
    s3: Any = env.s3
    # Lower-case names map to S3 unchanged (no keymap entry is needed).
    put_blob(env, "same-meta.json", b"{}", metadata={"flightno": "BA117"},
             content_settings=ContentSettings(content_type="application/json"))
    put_blob(env, "lost-meta.json", b"[]", metadata={"FlightNo": "BA118"},
             content_settings=ContentSettings(content_type="application/json"))
    # As rclone would have copied them: same bytes; one without the metadata.
    s3.put_object(Bucket=env.bucket, Key="same-meta.json", Body=b"{}",
                  ContentType="application/json", Metadata={"flightno": "BA117"})
    s3.put_object(Bucket=env.bucket, Key="lost-meta.json", Body=b"[]",
                  ContentType="application/json")
    dry = sync(env, dry_run=True)
    assert dry["would_copy"]["count"] == 1
    assert dry["would_copy"]["examples"][0]["key"] == "lost-meta.json"
    report = sync(env)
    assert report["copy_reasons"] == {"metadata differs": 1}
    assert report["copied"]["count"] == 1 and report["skipped"]["count"] == 1
    h = s3.head_object(Bucket=env.bucket, Key="lost-meta.json")
    assert h["Metadata"]["flightno"] == "BA118"
    # The checked pair is now a verified copy: the next run skips both without a HEAD.
    again = sync(env)
    assert again["copied"]["count"] == 0 and again["skipped"]["count"] == 2


def test_buckets_without_md5_etags(make_env: Any) -> None:
    """SSE-KMS buckets: ETags are not MD5s, so writes carry Content-MD5 and change
    detection rests on verified records, never on ETags."""
    env = make_env(extra="")
    cfg = env.config.model_copy(update={"aws": env.config.aws.model_copy(
        update={"etag_is_md5": False})})
    env.config = cfg
    for i in range(5):
        put_blob(env, f"k{i}", os.urandom(100))
    first = sync(env)
    assert first["copied"]["count"] == 5 and first["status"] == "succeeded"
    again = sync(env)
    assert again["copied"]["count"] == 0 and again["skipped"]["count"] == 5
    put_blob(env, "k0", b"new")
    assert sync(env)["copied"]["count"] == 1
    assert s3_objects(env)["k0"] == b"new"


def test_metadata_only_change_at_an_s3_source_is_copied(make_env: Any) -> None:
    # S3's ETag is the MD5 of the bytes: rewriting an object with the same bytes
    # and other metadata (or CopyObject with REPLACE) keeps its ETag.
    env = make_env()
    s3: Any = env.s3
    s3.put_object(Bucket=env.bucket, Key="k.json", Body=b"{}", Metadata={"origin": "DFW"},
                  ContentType="application/json")
    first = sync(env, W2A)
    assert first["status"] == "succeeded" and first["copied"]["count"] == 1, first
    etag = s3.head_object(Bucket=env.bucket, Key="k.json")["ETag"]

    time.sleep(1.1)  # S3 times are whole seconds: the change must land in another one
    s3.copy_object(Bucket=env.bucket, Key="k.json", CopySource={"Bucket": env.bucket,
                   "Key": "k.json"}, Metadata={"origin": "LAX"}, MetadataDirective="REPLACE",
                   ContentType="text/plain")
    assert s3.head_object(Bucket=env.bucket, Key="k.json")["ETag"] == etag
    second = sync(env, W2A)
    assert second["status"] == "succeeded", second
    p = env.container.get_blob_client("k.json").get_blob_properties()
    assert p.metadata["origin"] == "LAX"
    assert p.content_settings.content_type == "text/plain"


def test_s3_single_put_without_an_etag_is_not_taken_as_verified(make_env: Any) -> None:
    # The fast path sends no Content-MD5 (unsigned payload): the returned ETag is
    # its only check. An endpoint that returns none (a proxy, an S3-compatible
    # server) must not turn an unchecked, here corrupted, write into a receipt.
    from crosswind.errors import IntegrityError
    from crosswind.model import ObjectProps
    from crosswind.stores.s3 import S3ObjectStore
    from tests.faults import flip

    env = make_env()

    async def go() -> None:
        store = await S3ObjectStore.open(env.config.aws)

        async def lossy(key: str, data: bytes, attrs: Any, mode: Any, if_match: Any
                        ) -> tuple[str | None, str | None]:
            await S3ObjectStore._fast_put(store, key, flip(data), attrs, mode, if_match)
            return None, None

        store._fast_put = lossy  # type: ignore[method-assign]
        try:
            with pytest.raises(IntegrityError, match="object was left"):
                await store.put("k.json", b"{}", ObjectProps(), md5=hashlib.md5(b"{}").hexdigest())
        finally:
            await store.close()

    asyncio.run(go())
    # Without an ETag nothing tells the object there from another writer's, so it
    # is not deleted blindly; unrecorded, it is copied again by the next run.
    assert s3_objects(env) == {"k.json": flip(b"{}")}


def _open_run(env: Env, direction: Direction, wrap: Any = None) -> Any:
    """An async context: (run once, stores) with the stores opened only once,
    so that a run takes milliseconds, not the stores' start-up."""
    import contextlib

    @contextlib.asynccontextmanager
    async def ctx() -> Any:
        src = await open_object_store(env.config, direction.source_side)
        dst = await open_object_store(env.config, direction.destination_side)
        state = StateStore(env.config.state_dir)
        source = wrap(src) if wrap else src
        try:
            async def once() -> SyncResult:
                opts = options_from_config(env.config, direction)
                return await SyncRun(source, dst, state, opts).run()

            yield once
        finally:
            state.close()
            await src.close()
            await dst.close()

    return ctx()


def test_metadata_change_in_the_same_second_as_the_copy_is_synced(make_env: Any) -> None:
    """Issue 15 #6: S3 keeps the ETag on a metadata-only change and its times are
    whole seconds, so a change in the same second as the copy looked unchanged
    for ever. A copy read in the second its source was last modified is not
    settled: the next run compares the metadata (one HEAD) before it skips."""
    env = make_env()
    s3: Any = env.s3

    async def go() -> tuple[SyncResult, SyncResult, str]:
        async with _open_run(env, W2A) as once:
            for attempt in range(6):
                key = f"k{attempt}.json"
                await asyncio.sleep(1.02 - time.time() % 1)  # just after a second boundary
                s3.put_object(Bucket=env.bucket, Key=key, Body=b"{}",
                              Metadata={"origin": "DFW"})
                before = s3.head_object(Bucket=env.bucket, Key=key)
                first = await once()
                assert first.status == "succeeded", first.failures
                s3.copy_object(Bucket=env.bucket, Key=key, MetadataDirective="REPLACE",
                               CopySource={"Bucket": env.bucket, "Key": key},
                               Metadata={"origin": "LAX"})
                after = s3.head_object(Bucket=env.bucket, Key=key)
                if (after["LastModified"], after["ETag"]) == (before["LastModified"],
                                                              before["ETag"]):
                    break  # the change landed in the copy's second, invisible to listings
            else:
                pytest.fail("could not land a change in the same second as the copy")
            second = await once()
            third = await once()
            return second, third, key

    second, third, key = asyncio.run(go())
    assert second.status == "succeeded"
    p = env.container.get_blob_client(key).get_blob_properties()
    assert p.metadata["origin"] == "LAX"
    assert second.stats.copy_reasons == {"metadata differs": 1}
    # Settled now (read long after the change): skipped without another look.
    assert third.stats.copied.count == 0
    assert third.stats.skipped.count == second.stats.skipped.count + 1


def test_record_describes_the_version_read_not_the_one_listed(make_env: Any) -> None:
    """A metadata change between listing and read (same ETag, so the pinned read
    gets the new version): the record must carry the version copied, or the next
    run copies it again as 'source changed'."""
    env = make_env()
    s3: Any = env.s3
    s3.put_object(Bucket=env.bucket, Key="k.json", Body=b"{}", Metadata={"origin": "DFW"})
    time.sleep(1.1)  # the change gets a later Last-Modified second

    class ChangesBeforeRead:
        def __init__(self, inner: Any) -> None:
            self.inner, self.changed = inner, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def get(self, key: str, **kw: Any) -> Any:
            if not self.changed:
                self.changed = True
                s3.copy_object(Bucket=env.bucket, Key=key, MetadataDirective="REPLACE",
                               CopySource={"Bucket": env.bucket, "Key": key},
                               Metadata={"origin": "LAX"})
            return await self.inner.get(key, **kw)

    async def go() -> tuple[SyncResult, SyncResult]:
        async with _open_run(env, W2A, wrap=ChangesBeforeRead) as once:
            return await once(), await once()

    first, second = asyncio.run(go())
    assert first.stats.copied.count == 1
    p = env.container.get_blob_client("k.json").get_blob_properties()
    assert p.metadata["origin"] == "LAX"
    assert second.stats.copied.count == 0, second.stats.copy_reasons


def _corrupt_put_then(env: Env, after: Any) -> str:
    """A put through S3ObjectStore whose bytes are corrupted on the way; ``after``
    runs right after the corrupt write lands (before the store checks it).
    Returns the IntegrityError's message."""
    from crosswind.errors import IntegrityError
    from crosswind.model import ObjectProps
    from crosswind.stores.s3 import S3ObjectStore
    from tests.faults import flip

    async def go() -> str:
        store = await S3ObjectStore.open(env.config.aws)

        async def corrupting(key: str, data: bytes, attrs: Any, mode: Any, if_match: Any
                             ) -> tuple[str | None, str | None]:
            written = await S3ObjectStore._fast_put(store, key, flip(data), attrs, mode,
                                                    if_match)
            after()
            return written

        store._fast_put = corrupting  # type: ignore[method-assign]
        try:
            with pytest.raises(IntegrityError) as info:
                await store.put("k.json", b"{}", ObjectProps(),
                                md5=hashlib.md5(b"{}").hexdigest())
            return str(info.value)
        finally:
            await store.close()

    return asyncio.run(go())


def test_discarding_a_corrupt_write_spares_a_concurrent_writers_object(make_env: Any) -> None:
    """The corrupt object is deleted only while it has the ETag its write returned
    (If-Match): another writer's object, written meanwhile, stays."""
    env = make_env()
    s3: Any = env.s3

    def other_writer() -> None:
        s3.put_object(Bucket=env.bucket, Key="k.json", Body=b'{"theirs": 1}')

    message = _corrupt_put_then(env, other_writer)
    assert s3_objects(env) == {"k.json": b'{"theirs": 1}'}
    assert "another write replaced it" in message


def test_discarding_a_corrupt_write_brings_back_the_earlier_version(make_env: Any) -> None:
    """In a versioned bucket only the corrupt version is deleted, so the earlier,
    good copy is current again (a plain delete would hide it behind a marker)."""
    env = make_env()
    s3: Any = env.s3
    s3.put_bucket_versioning(Bucket=env.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=env.bucket, Key="k.json", Body=b'{"good": 1}')
    message = _corrupt_put_then(env, lambda: None)
    assert s3_objects(env) == {"k.json": b'{"good": 1}'}
    assert "the corrupt object was removed" in message
    versions = s3.list_object_versions(Bucket=env.bucket)
    assert len(versions.get("Versions", [])) == 1 and not versions.get("DeleteMarkers")


@pytest.mark.parametrize("stamp", [True, False], ids=["stamped", "stamp_metadata-off"])
def test_round_trips_do_not_accumulate_metadata(make_env: Any, stamp: bool) -> None:
    """Azure → S3 → Azure (cutover, then rollback), twice. crosswind's own entries
    are documented, never multiply, and with ``stamp_metadata = false`` the
    originals come back exactly as they were."""
    env = make_env(extra=f"stamp_metadata = {str(stamp).lower()}\n")  # lands in [sync]
    assert env.config.sync.stamp_metadata is stamp
    s3: Any = env.s3
    original = {"FlightNo": "BA0117", "origin": "LHR"}
    put_blob(env, "k.json", b'{"a": 1}', metadata=original,
             content_settings=ContentSettings(content_type="application/json"))
    first_mtime = env.container.get_blob_client("k.json").get_blob_properties().last_modified

    seen_s3, seen_azure = [], []
    for _ in range(2):
        s3.delete_object(Bucket=env.bucket, Key="k.json")
        assert sync(env, A2W)["copied"]["count"] == 1
        seen_s3.append(s3.head_object(Bucket=env.bucket, Key="k.json")["Metadata"])
        env.container.delete_blob("k.json")
        assert sync(env, W2A)["copied"]["count"] == 1
        seen_azure.append(dict(
            env.container.get_blob_client("k.json").get_blob_properties().metadata))
    assert seen_s3[0] == seen_s3[1] and seen_azure[0] == seen_azure[1]
    md5 = hashlib.md5(b'{"a": 1}').hexdigest()
    if stamp:
        assert seen_s3[0] == {"flightno": "BA0117", "origin": "LHR",
                              "crosswind-keymap": '{"flightno": "FlightNo"}',
                              "crosswind-md5": md5,
                              "crosswind-mtime": first_mtime.isoformat()}
        # Back on Azure: the original names, plus crosswind's two entries; the
        # mtime is still the first origin's.
        assert seen_azure[0] == {**original, "crosswind_md5": md5,
                                 "crosswind_mtime": first_mtime.isoformat()}
    else:
        assert seen_s3[0] == {"flightno": "BA0117", "origin": "LHR",
                              "crosswind-keymap": '{"flightno": "FlightNo"}'}
        assert seen_azure[0] == original
