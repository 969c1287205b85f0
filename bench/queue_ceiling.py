"""The event queues' ceilings on the rig, to read ``replicate.py``'s figures by:
how fast can the service's own queue source take messages off each queue, with
nothing else to do, and what does one receive cost the emulator as the queue
grows?

* ``source``: ``crosswind.live.queue_source.QueueSource`` (the service's code: its
  receive loop and its acknowledger) on the Azurite Storage Queue and on moto's
  SQS, with the real scheduler and 32 workers whose apply does nothing: messages
  received and acknowledged per second for ``--messages`` queued Event Grid / S3
  notification bodies, at each ``--rtt-ms`` of added round trip (the rig's fault
  proxy between the service's queue client and the emulator: a queue in another
  region, e.g. the service in AWS reading an Azure queue, is 20-100 ms away);
* ``receive_vs_depth``: one receive (32 messages from Azure, 10 from SQS) timed on
  queues ``--depths`` deep, with the emulators' own SDKs.

moto's SQS ReceiveMessage walks the whole queue, so its cost grows with the
depth; once a backlog forms on moto, a consumer falls further behind however
fast it is (real SQS does not behave so). Results: ``.bench/queue_ceiling.json``.

    python bench/queue_ceiling.py [--messages 1000] [--depths 10,100,1000,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from azure.storage.queue import QueueClient
from benchlib import load_now, machine, table, write_json

from crosswind.config import Config, load_config
from crosswind.live.changes import ParsedMessage
from crosswind.live.events import (
    PoisonMessage,
    azure_queue_body,
    blob_event,
    parse_azure_message,
    parse_s3_message,
    s3_queue_body,
)
from crosswind.live.queue_source import QueueSource
from crosswind.live.scheduler import KeyScheduler
from crosswind.rig.emulators import AZURITE_ACCOUNT, Rig, running_rig
from crosswind.rig.proxy import FaultProxy, Faults
from crosswind.stores.factory import open_event_queue

CONTAINER, BUCKET = "ceiling", "ceiling"


def config(rig: Rig, sqs_url: str, queue: str, workdir: Path, *, queue_url: str | None = None,
           aws_url: str | None = None) -> Config:
    """The service's config; ``queue_url``/``aws_url``: reach the Azure queue / moto
    through these (the latency proxies) instead."""
    conn = rig.azurite.connection_string
    if queue_url is not None:
        conn = conn.replace(f"QueueEndpoint={rig.azurite.queue_url};",
                            f"QueueEndpoint={queue_url};")
    path = workdir / "ceiling.toml"
    path.write_text(textwrap.dedent(f"""\
        [azure]
        connection_string = "{conn}"
        container = "{CONTAINER}"
        queue = "{queue}"
        emulator = true

        [aws]
        bucket = "{BUCKET}"
        endpoint_url = "{aws_url or rig.moto.endpoint}"
        access_key_id = "test"
        secret_access_key = "test"
        sqs_queue_url = "{sqs_url}"
        emulator = true

        [state]
        dir = "{workdir / 'state'}"
        """))
    return load_config(path)


class Queues:
    def __init__(self, rig: Rig, workdir: Path) -> None:
        self.azure = QueueClient.from_connection_string(rig.azurite.connection_string,
                                                        "ceiling-events")
        self.azure.create_queue()
        self.sqs = boto3.client("sqs", endpoint_url=rig.moto.endpoint, region_name="us-east-1",
                                aws_access_key_id="test", aws_secret_access_key="test")
        self.rig, self.workdir = rig, workdir
        self._n = 0
        self.via: tuple[str | None, str | None] = (None, None)
        self.purge("aws")

    def through(self, queue_url: str | None, aws_url: str | None) -> None:
        self.via = (queue_url, aws_url)
        self.cfg = config(self.rig, self.sqs_url, "ceiling-events", self.workdir,
                          queue_url=queue_url, aws_url=aws_url)

    def fill(self, side: str, n: int, start: int = 0) -> None:
        now = datetime.now(UTC)
        if side == "azure":
            for i in range(start, start + n):
                self.azure.send_message(azure_queue_body(blob_event(
                    "upsert", CONTAINER, f"events/{i:07d}.json", event_time=now)))
            return
        for j in range(start, start + n, 10):
            self.sqs.send_message_batch(QueueUrl=self.sqs_url, Entries=[
                {"Id": str(i), "MessageBody": s3_queue_body(
                    "upsert", BUCKET, f"events/{i:07d}.json", event_time=now)}
                for i in range(j, min(start + n, j + 10))])

    def purge(self, side: str) -> None:
        if side == "azure":
            self.azure.clear_messages()
            return
        # a fresh queue (moto allows one PurgeQueue a minute, as SQS does)
        self._n += 1
        self.sqs_url = self.sqs.create_queue(QueueName=f"ceiling-s3-{self._n}")["QueueUrl"]
        self.through(*self.via)


async def source_throughput(q: Queues, side: str, n: int) -> dict[str, Any]:
    """The service's queue source with a no-op apply: n queued messages, until all
    are acknowledged."""
    queue = await open_event_queue(q.cfg, side)  # type: ignore[arg-type]
    sched = KeyScheduler()
    parse: Callable[[str], ParsedMessage]
    if side == "azure":
        account = getattr(queue, "account_name", None)

        def parse(body: str) -> ParsedMessage:
            return parse_azure_message(body, container=CONTAINER, account=account)
    else:
        def parse(body: str) -> ParsedMessage:
            return parse_s3_message(body, bucket=BUCKET)
    src = QueueSource("ceiling", queue, parse, PoisonMessage, sched, lambda m, r: None,
                      batch=int(getattr(queue, "max_per_receive", 10)),
                      visibility_timeout_s=120, wait_s=1)
    stop = asyncio.Event()

    async def worker() -> None:
        while (w := await sched.take()) is not None:
            sched.done(w)

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(src.run(stop)), asyncio.create_task(src.acker(stop)),
             *(asyncio.create_task(worker()) for _ in range(32))]
    received_at = None
    while src.counters.acked < n and time.perf_counter() - t0 < 600:
        if received_at is None and src.counters.events >= n:
            received_at = time.perf_counter() - t0
        await asyncio.sleep(0.02)
    acked_at = time.perf_counter() - t0
    stop.set()
    sched.close()
    for t in tasks:
        t.cancel()
        with contextlib.suppress(BaseException):
            await t
    await queue.close()
    c = src.counters
    received_at = received_at or acked_at
    return {"messages": n, "received": c.received, "acked": c.acked,
            "received_per_s": round(n / received_at, 1),
            "acked_per_s": round(c.acked / acked_at, 1), "seconds": round(acked_at, 2)}


def receive_cost(q: Queues, side: str, depths: Sequence[int]) -> list[dict[str, Any]]:
    q.purge(side)
    have, out = 0, []
    for depth in depths:
        q.fill(side, depth - have, have)
        have = depth
        times = []
        for _ in range(5):
            t = time.perf_counter()
            if side == "azure":
                got = len(list(q.azure.receive_messages(messages_per_page=32, max_messages=32,
                                                        visibility_timeout=1)))
            else:
                got = len(q.sqs.receive_message(QueueUrl=q.sqs_url, MaxNumberOfMessages=10,
                                                VisibilityTimeout=0, WaitTimeSeconds=0).get(
                    "Messages", []))
            times.append(time.perf_counter() - t)
        out.append({"depth": depth, "messages_per_receive": got,
                    "receive_ms_median": round(1000 * statistics.median(times), 1)})
    q.purge(side)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--depths", default="10,100,1000,2000")
    p.add_argument("--rtt-ms", default="0,50", help="added round trips to try, ms")
    p.add_argument("--out", default="queue_ceiling.json")
    args = p.parse_args(argv)
    depths = [int(d) for d in args.depths.split(",")]
    rtts = [float(r) for r in args.rtt_ms.split(",")]
    result: dict[str, Any] = {"benchmark": "queue_ceiling", "machine": machine(),
                              "load_start": load_now(), "source": {}, "receive_vs_depth": {}}
    with tempfile.TemporaryDirectory(prefix="crosswind-bench-queues-") as tmp, \
            running_rig(Path(tmp) / "rig", mongo=False) as rig:
        q = Queues(rig, Path(tmp))
        for rtt in rtts:
            proxies = [] if not rtt else [
                FaultProxy(f"http://127.0.0.1:{rig.azurite.queue_port}",
                           Faults(rtt_s=rtt / 1000)).start(),
                FaultProxy(rig.moto.endpoint, Faults(rtt_s=rtt / 1000)).start()]
            try:
                q.through(f"{proxies[0].url}/{AZURITE_ACCOUNT}" if proxies else None,
                          proxies[1].url if proxies else None)
                for side in ("azure", "aws"):
                    q.purge(side)
                    q.fill(side, args.messages)
                    r = asyncio.run(source_throughput(q, side, args.messages))
                    result["source"][f"{side} +{rtt:g} ms"] = {**r, "side": side,
                                                               "rtt_ms": rtt}
                    print(f"{side} +{rtt:g} ms: {r}", file=sys.stderr, flush=True)
            finally:
                for px in proxies:
                    px.stop()
        for side in ("azure", "aws"):
            result["receive_vs_depth"][side] = receive_cost(q, side, depths)
    result["load_end"] = load_now()
    path = write_json(args.out, result)
    print(f"\n== the service's queue source, no-op apply, {args.messages} queued messages ==")
    print(table(["queue", "added RTT ms", "received/s", "acked/s", "seconds"],
                [[("Azurite Storage Queue" if r["side"] == "azure" else "moto SQS"),
                  r["rtt_ms"], r["received_per_s"], r["acked_per_s"], r["seconds"]]
                 for r in result["source"].values()]))
    print("\n== one receive against the queue's depth (ms, median of 5) ==")
    print(table(["depth", "Azurite (32 msgs)", "moto SQS (10 msgs)"],
                [[a["depth"], a["receive_ms_median"], s["receive_ms_median"]]
                 for a, s in zip(result["receive_vs_depth"]["azure"],
                                 result["receive_vs_depth"]["aws"], strict=True)]))
    print(f"\nload average at start {result['load_start']}, at end {result['load_end']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
