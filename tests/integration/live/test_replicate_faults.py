"""The replication service under faults, on the rig: a source that dies for 20 s,
throttling (503/429) injected by a proxy, SIGKILL of the service at random
moments, and a thousand fuzzed queue messages. Nothing is lost, nothing is
applied wrongly, and the service never falls over."""

from __future__ import annotations

import base64
import random
import re
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from crosswind.entities import Edm, Entity, Prop
from crosswind.live.events import azure_queue_body, blob_event
from crosswind.metasync.context import scope_of
from crosswind.metasync.ledger import Ledger
from crosswind.rig.emulators import Azurite, Moto
from crosswind.rig.proxy import FaultProxy, Faults
from crosswind.state import StateStore
from tests.integration.conftest import unique
from tests.integration.live.conftest import LiveEnv, Service, stream
from tests.unit.test_live_events import _garbage_corpus

pytestmark = pytest.mark.integration


def dlq_items(live: LiveEnv, kind: str | None = None) -> list[Any]:
    state = StateStore(live.config.state_dir)
    try:
        return Ledger(state, scope_of(live.config)).dlq_list(kind=kind, limit=None)
    finally:
        state.close()


def test_a_source_that_dies_for_20_s_loses_nothing(
        tmp_path: Path, moto: Moto, s3_client: Any, services: Callable[..., Service]) -> None:
    # An Azurite of its own, so it can be stopped and started on the same ports.
    own = Azurite(tmp_path / "azurite").start()
    try:
        blobs = BlobServiceClient.from_connection_string(own.connection_string)
        queues = QueueServiceClient.from_connection_string(own.connection_string)
        name = unique("die")
        container = blobs.create_container(name)
        queue = queues.create_queue(name)
        s3_client.create_bucket(Bucket=name)
        path = tmp_path / "cw.toml"
        path.write_text(textwrap.dedent(f"""
            [azure]
            connection_string = "{own.connection_string}"
            container = "{name}"
            queue = "{name}"
            emulator = true
            [aws]
            bucket = "{name}"
            endpoint_url = "{moto.endpoint}"
            access_key_id = "test"
            secret_access_key = "test"
            emulator = true
            [state]
            dir = "state"
            [replicate]
            http = "127.0.0.1:0"
            status_interval_s = 0.2
            breaker_threshold = 3
            breaker_reset_s = 2
            visibility_timeout_s = 10
            """))
        live = LiveEnv(None, queue, None, "", path)  # type: ignore[arg-type]

        def put(key: str) -> None:
            r = container.get_blob_client(key).upload_blob(key.encode(), overwrite=True)
            queue.send_message(azure_queue_body(blob_event(
                "upsert", name, key, event_time=datetime.now(UTC),
                etag=str(r["etag"]).strip('"'))))

        svc = services(live)
        svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
        for i in range(10):
            put(f"before/{i}")
        svc.wait_until(lambda s: stream(s, "azure-blob-events")["applied"] >= 10,
                       what="first events")
        for i in range(10):
            put(f"during/{i}")
        own.stop()  # dies with changes on their way
        st = svc.wait_until(lambda s: "open" in s["breakers"].values(), timeout=40,
                            what="a breaker to open")
        time.sleep(20)
        assert svc.proc.poll() is None, svc.stderr()
        own = Azurite(own.location, own.blob_port, own.queue_port, own.table_port).start()
        want = {f"before/{i}" for i in range(10)} | {f"during/{i}" for i in range(10)}

        def replica() -> set[str]:
            return {o["Key"] for o in
                    s3_client.list_objects_v2(Bucket=name).get("Contents", [])}

        # Wait for the end state, not for a count of applied changes: Azurite, started
        # again from its files, may deliver messages the service had already deleted
        # (its database is saved on a timer), and their changes count as applied too.
        st = svc.wait_until(lambda s: set(s["breakers"].values()) <= {"closed"}
                            and replica() == want, timeout=90, what="recovery")
        assert replica() == want
        for k in want:
            assert s3_client.get_object(Bucket=name, Key=k)["Body"].read() == k.encode()
        assert stream(st, "azure-blob-events")["failed"] == 0
        assert st["dlq_open"] == 0
        assert svc.terminate() == 0
    finally:
        own.stop()


def test_throttling_is_backed_off_and_every_change_arrives(
        make_live_env: Callable[..., LiveEnv], moto: Moto,
        services: Callable[..., Service]) -> None:
    proxy = FaultProxy(moto.endpoint, Faults(rate=0.35, status=503)).start()
    try:
        live = make_live_env()
        live.path.write_text(live.path.read_text().replace(
            f'endpoint_url = "{moto.endpoint}"', f'endpoint_url = "{proxy.url}"'))
        svc = services(live)
        svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
        keys = [f"t/{i:03d}.json" for i in range(30)]
        for i, k in enumerate(keys):
            if i == 15:
                proxy.faults.status = 429
            live.put_blob(k, f"{i}".encode())
        st = svc.wait_until(lambda s: stream(s, "azure-blob-events")["applied"] >= len(keys),
                            timeout=120, what="every change despite throttling")
        assert proxy.faults.injected > 10
        assert stream(st, "azure-blob-events")["failed"] == 0 and st["dlq_open"] == 0
        proxy.faults.rate = 0
        assert live.s3_keys() == {k: f"{i}".encode() for i, k in enumerate(keys)}
        assert svc.terminate() == 0
    finally:
        proxy.stop()


def test_sigkill_at_random_moments_then_restart_converges(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env(rows=True, replicate="visibility_timeout_s = 10\n"
                         "reconcile_interval_s = 3600\nmax_delete_percent = 100")
    rnd = random.Random(31)
    expected: dict[str, bytes] = {}
    n = 0
    for round_ in range(4):
        svc = services(live)
        time.sleep(rnd.uniform(0.3, 1.5))
        for _ in range(rnd.randrange(10, 25)):
            n += 1
            key = f"k/{rnd.randrange(40):02d}"
            if key in expected and rnd.random() < 0.2:
                live.delete_blob(key)
                del expected[key]
            else:
                body = f"{key} v{n}".encode()
                live.put_blob(key, body)
                expected[key] = body
            live.put_rows(Entity("p", f"r{rnd.randrange(30)}",
                                 MappingProxyType({"v": Prop(Edm.INT64, n)})))
        time.sleep(rnd.uniform(0.0, 2.0))
        svc.kill()  # SIGKILL, mid-whatever
        assert svc.proc.returncode == -9, f"round {round_}"
    # Restart once more; the killed runs' unacknowledged messages come back.
    svc = services(live)
    svc.wait_until(lambda s: live.s3_keys() == expected and live.documents().keys()
                   == live.azure_rows().keys(), timeout=120, what="convergence")
    docs, rows = live.documents(), live.azure_rows()
    assert all(docs[k].same_content(rows[k]) for k in rows)
    assert svc.terminate() == 0
    assert dlq_items(live) == []


_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _queue_safe(body: str) -> str:
    """A body a queue message can hold. Storage Queue messages travel in XML, so
    Azure refuses text XML cannot carry (Azurite stores it, then fails every
    receive); a sender with such bytes base64-encodes them, as Event Grid does."""
    if _XML_BAD.search(body):
        return base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
    return body


def test_a_thousand_fuzzed_messages_never_stop_the_service(
        make_live_env: Callable[..., LiveEnv], services: Callable[..., Service]) -> None:
    live = make_live_env(container_name="events", replicate="max_pending = 500")
    try:
        svc = services(live)
        svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
        corpus = [_queue_safe(b) for b in _garbage_corpus(1000, seed=11)]
        for body in corpus:
            live.queue.send_message(body)
        real = [f"real/{i}.json" for i in range(20)]
        for k in real:
            live.put_blob(k, k.encode())
        st = svc.wait_until(
            lambda s: stream(s, "azure-blob-events").get("messages", {}).get("acked", 0)
            >= len(corpus) + len(real), timeout=240, what="every message handled")
        ev = stream(st, "azure-blob-events")
        assert st["service"]["running"]
        # each message was parsed, ignored with a counted reason, or dead-lettered
        assert ev["poison"] > 0 and sum(ev["ignored"].values()) > 0 and ev["events"] > 20
        assert len(dlq_items(live, "poison-message")) == ev["poison"]
        assert set(real) <= set(live.s3_keys())
        assert svc.terminate() == 0
    finally:
        live.container.delete_container()




def test_sigterm_abandons_slow_work_within_the_grace_and_loses_nothing(
        make_live_env: Callable[..., LiveEnv], moto: Moto,
        services: Callable[..., Service]) -> None:
    proxy = FaultProxy(moto.endpoint, Faults()).start()
    try:
        live = make_live_env(replicate="shutdown_grace_s = 2\nvisibility_timeout_s = 10")
        live.path.write_text(live.path.read_text().replace(
            f'endpoint_url = "{moto.endpoint}"', f'endpoint_url = "{proxy.url}"'))
        svc = services(live)
        svc.wait_until(lambda s: s["last_reconcile"] is not None, what="first reconcile")
        proxy.faults.rtt_s = 20.0  # every S3 request now hangs for 20 s
        live.put_blob("slow.json", b"slow bytes")
        svc.wait_until(lambda s: stream(s, "azure-blob-events").get("messages", {})
                       .get("outstanding", 0) >= 1, what="the change in flight")
        t0 = time.monotonic()
        assert svc.terminate(timeout=30) == 0
        took = time.monotonic() - t0
        assert took < 2 + 8, f"stopped after {took:.1f}s"
        proxy.faults.rtt_s = 0.0
        # The abandoned change was not acknowledged: it comes back and is applied.
        again = services(live)
        again.wait_until(lambda s: "slow.json" in live.s3_keys(), timeout=90,
                         what="the abandoned change")
        assert live.s3_keys()["slow.json"] == b"slow bytes"
        assert again.terminate() == 0
    finally:
        proxy.stop()
