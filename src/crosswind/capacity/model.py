"""The throughput model behind ``crosswind inventory --plan``. Pure: measured
request classes and a workload in, durations, the bottleneck and the
resources out.

A copy is a closed system (asymptotic bounds, as in operational analysis):
``N = workers × concurrency`` copies are in flight, each costs its latency
``L`` (the source GET plus the destination PUT, each a round trip plus the
server's time, plus the bytes over one connection), so the latency bound is
``N / L`` objects/s. Every shared resource caps it independently: the
source's GET rate, the destination's PUT rate, each side's bytes/s, the
client's CPU (one event loop, so one core, per worker) and the listing that
feeds the copies. For one size class that is::

    objects/s = min(N / L, get ceiling, put ceiling, bandwidth / size, workers / cpu, listing)

The endpoints' ceilings are measured one request class at a time; a burst
of whole copies (GET → PUT) measures the ceiling of the pair, which is lower
wherever the two share something, and caps the small objects too.

For a mix of sizes the work of every class is added per resource and the
duration is the largest total (the resource the mix saturates first), which
is the one-class formula when there is one class and never less than any
class alone needs. Ceilings measured below saturation (the burst did not
slow the endpoint down) are lower bounds; the plan says so and the model
then does not cap that resource at all (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

MiB = 1024 * 1024
INF = math.inf

#: objects below this are read whole, at or above it streamed (sync.transfer)
STREAM_THRESHOLD = 1 * MiB
#: names per listing page: Azure List Blobs takes 5,000, S3 ListObjectsV2 1,000
PAGE_SIZE = {"azure": 5000, "aws": 1000}
#: a streamed copy holds about three chunks of 1 MiB (bench/objects.py, 5 × 50 MiB:
#: five streams added ~15 MB to the process's RSS)
STREAM_HELD_BYTES = 3 * MiB
#: a whole read holds the bytes read and the request's copy of them
WHOLE_HELD_FACTOR = 2


@dataclass(frozen=True)
class RequestClass:
    """One kind of request at one endpoint, as measured."""

    #: one request alone (median): the round trip plus the server's time
    latency_s: float
    #: requests/s the endpoint sustained when the burst saturated it; None:
    #: the burst did not saturate it (``burst_rate`` is then a lower bound)
    ceiling: float | None = None
    #: requests/s reached in the burst, at ``burst_concurrency`` in flight
    burst_rate: float = 0.0
    burst_concurrency: int = 0
    #: the client's CPU seconds per request (this process, during the burst)
    cpu_s: float = 0.0

    def rate(self, in_flight: float) -> float:
        """Requests/s with ``in_flight`` requests outstanding: min(N / L, ceiling)."""
        cap = INF if self.ceiling is None else self.ceiling
        return min(in_flight / max(self.latency_s, 1e-9), cap)


@dataclass(frozen=True)
class Endpoint:
    """One side's measured figures (``kind``: ``azure`` or ``aws``)."""

    name: str
    kind: Literal["azure", "aws"]
    #: an empty listing request: the per-page cost without names in it
    list_page: RequestClass
    #: the cost of one more name in a listing (measured over the inventory's listing)
    list_per_key_s: float
    head: RequestClass
    get: RequestClass
    put: RequestClass | None = None
    #: bytes/s the endpoint sustained in the large-object burst (None: not saturated
    #: or not measured: no cap)
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None
    #: bytes/s of one connection alone (one large request)
    stream_read_bytes_per_s: float = INF
    stream_write_bytes_per_s: float = INF

    @property
    def page_size(self) -> int:
        return PAGE_SIZE[self.kind]


@dataclass(frozen=True)
class SizeClass:
    count: int
    bytes: int

    @property
    def mean(self) -> float:
        return self.bytes / self.count if self.count else 0.0


@dataclass(frozen=True)
class Workload:
    """What the inventory counted, by size class (its histogram)."""

    classes: tuple[SizeClass, ...]

    @property
    def objects(self) -> int:
        return sum(c.count for c in self.classes)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.classes)


@dataclass(frozen=True)
class Settings:
    workers: int = 1
    #: copies (or closer looks) in flight per worker
    concurrency: int = 32
    #: listing streams feeding the copies (the coordinator lists: 1)
    listing_streams: int = 1
    #: objects looked at closely by a sampled validation
    sample: int = 1000
    multipart_threshold: int = 512 * MiB
    part_size: int = 8 * MiB
    part_concurrency: int = 4
    #: [sync] memory_budget: the cap on object bytes held across transfers (per worker)
    memory_budget: int = 512 * MiB

    @property
    def in_flight(self) -> int:
        return self.workers * self.concurrency


@dataclass(frozen=True)
class Estimate:
    """A duration, what bounds it, and each resource's share."""

    seconds: float
    objects_per_s: float
    bytes_per_s: float
    bottleneck: str
    #: resource → the seconds it alone needs (the duration is the largest)
    terms: dict[str, float] = field(default_factory=dict)


def _estimate(terms: dict[str, float], objects: int, nbytes: int) -> Estimate:
    finite = {k: v for k, v in terms.items() if v > 0}
    if not finite:
        return Estimate(0.0, 0.0, 0.0, "nothing to do", terms)
    bottleneck = max(finite, key=lambda k: finite[k])
    secs = finite[bottleneck]
    return Estimate(secs, objects / secs, nbytes / secs, bottleneck, terms)


def listing_seconds(ep: Endpoint, keys: int, streams: int = 1) -> float:
    """Pages one after another (each page's token comes from the one before),
    ``streams`` listings side by side over disjoint key ranges."""
    pages = max(1, math.ceil(keys / ep.page_size))
    return (pages * ep.list_page.latency_s + keys * ep.list_per_key_s) / max(streams, 1)


def _parts(size: float, s: Settings) -> int:
    return max(1, math.ceil(size / s.part_size)) if size >= s.multipart_threshold else 0


def copy_latency(src: Endpoint, dst: Endpoint, size: float, s: Settings) -> float:
    """Seconds one copy of an object of ``size`` bytes takes alone."""
    assert dst.put is not None
    if size < STREAM_THRESHOLD:  # read whole, then one PUT
        return (src.get.latency_s + size / src.stream_read_bytes_per_s
                + dst.put.latency_s + size / dst.stream_write_bytes_per_s)
    parts = _parts(size, s)
    if not parts:  # one streamed GET piped into one streamed PUT
        return (src.get.latency_s + dst.put.latency_s
                + size / min(src.stream_read_bytes_per_s, dst.stream_write_bytes_per_s))
    # parts: create, rounds of part_concurrency ranged GET → PUT part, complete
    per_part = (src.get.latency_s + dst.put.latency_s
                + s.part_size / min(src.stream_read_bytes_per_s, dst.stream_write_bytes_per_s))
    rounds = math.ceil(parts / s.part_concurrency)
    return 2 * dst.put.latency_s + rounds * per_part


def copy_estimate(src: Endpoint, dst: Endpoint, work: Workload, s: Settings,
                  pair: RequestClass | None = None) -> Estimate:
    """The full copy into an empty destination (every object copied once).
    ``pair``: the measured end-to-end copy of small objects (GET → PUT at
    once), whose ceiling caps the objects read whole: what the two endpoints
    share (the client, its network; on one host, its cores) only shows there."""
    assert dst.put is not None
    latency_work = get_requests = put_requests = cpu = whole = 0.0
    for c in work.classes:
        if not c.count:
            continue
        if c.mean < STREAM_THRESHOLD:
            whole += c.count
        parts = _parts(c.mean, s)
        latency_work += c.count * copy_latency(src, dst, c.mean, s)
        get_requests += c.count * max(parts, 1)
        put_requests += c.count * (parts + 2 if parts else 1)
        cpu += c.count * (src.get.cpu_s * max(parts, 1)
                          + dst.put.cpu_s * (parts + 2 if parts else 1))
    n, nbytes = work.objects, work.bytes
    terms = {
        f"latency ({s.in_flight} copies in flight)": latency_work / s.in_flight,
        "source GET rate": _demand(get_requests, src.get.ceiling),
        "destination PUT rate": _demand(put_requests, dst.put.ceiling),
        "source bytes/s": _demand(nbytes, src.read_bytes_per_s),
        "destination bytes/s": _demand(nbytes, dst.write_bytes_per_s),
        f"client CPU ({s.workers} worker{'s' if s.workers != 1 else ''})": cpu / s.workers,
        "source listing": listing_seconds(src, n, s.listing_streams) if n else 0.0,
    }
    if pair is not None:
        terms["copy rate (GET → PUT burst)"] = _demand(whole, pair.ceiling)
    return _estimate(terms, n, nbytes)


ValidationMode = Literal["sampled", "full", "deep"]


def validation_estimate(src: Endpoint, dst: Endpoint, work: Workload, s: Settings,
                        mode: ValidationMode) -> Estimate:
    """``crosswind validate`` after the copy: both listings (n names each),
    then the closer looks — a HEAD at the destination of ``sample`` objects
    (one process), of every object (``full``, spread over the workers), or
    both sides' bytes read and hashed (``deep``)."""
    n, nbytes = work.objects, work.bytes
    terms: dict[str, float] = {
        "source listing": listing_seconds(src, n, s.listing_streams) if n else 0.0,
        "destination listing": listing_seconds(dst, n, s.listing_streams) if n else 0.0,
    }
    if mode == "sampled":
        # The sample is drawn while the listings run and looked at after them.
        m = min(s.sample, n)
        looks_s = m / dst.head.rate(min(s.concurrency, m)) if m else 0.0
        terms[f"closer looks ({m} HEADs, after the listings)"] = looks_s
        listed = max(terms["source listing"], terms["destination listing"])
        est = _estimate(terms, n, nbytes)
        secs = listed + looks_s
        if secs <= 0:
            return est
        return Estimate(secs, n / secs, nbytes / secs, est.bottleneck, terms)
    looks = n
    if mode == "full":
        terms[f"latency ({s.in_flight} HEADs in flight)"] = looks * dst.head.latency_s / s.in_flight
        terms["destination HEAD rate"] = _demand(looks, dst.head.ceiling)
        terms["client CPU"] = looks * dst.head.cpu_s / s.workers
        return _estimate(terms, n, nbytes)
    latency_work = sum(
        c.count * (src.get.latency_s + dst.get.latency_s
                   + c.mean / min(src.stream_read_bytes_per_s, dst.stream_read_bytes_per_s))
        for c in work.classes)
    terms[f"latency ({s.in_flight} reads in flight)"] = latency_work / s.in_flight
    terms["source GET rate"] = _demand(looks, src.get.ceiling)
    terms["destination GET rate"] = _demand(looks, dst.get.ceiling)
    terms["source bytes/s"] = _demand(nbytes, src.read_bytes_per_s)
    terms["destination bytes/s"] = _demand(nbytes, dst.read_bytes_per_s)
    terms["client CPU"] = looks * (src.get.cpu_s + dst.get.cpu_s) / s.workers
    return _estimate(terms, n, nbytes)


def _demand(amount: float, ceiling: float | None) -> float:
    return 0.0 if ceiling is None or ceiling <= 0 else amount / ceiling


# -- resources -----------------------------------------------------------------------
@dataclass(frozen=True)
class Resources:
    #: connections each endpoint sees at once, all workers together
    connections_per_endpoint: int
    #: per worker: the SDK pool it needs
    connections_per_worker: int
    #: bytes of objects held at once per worker (after the memory budget)
    held_bytes_per_worker: int
    rss_per_worker_mb: float
    rss_total_mb: float
    #: Lambda invocations running at once for the metadata handler at the copy
    #: rate (None: not asked for)
    lambda_concurrency: int | None = None


def held_bytes(work: Workload, s: Settings) -> int:
    """The most object bytes one worker holds at once: ``concurrency`` copies of
    the class that holds the most (whole reads hold the object, streams a few
    chunks, parts ``part_concurrency`` parts), capped by the memory budget."""
    per_copy = 0.0
    for c in work.classes:
        if not c.count:
            continue
        if c.mean < STREAM_THRESHOLD:
            held = c.mean * WHOLE_HELD_FACTOR
        elif _parts(c.mean, s):
            held = s.part_size * s.part_concurrency
        else:
            held = STREAM_HELD_BYTES
        per_copy = max(per_copy, held)
    return int(min(per_copy * s.concurrency, s.memory_budget))


def resources(work: Workload, s: Settings, *, base_rss_mb: float,
              copy_objects_per_s: float | None = None,
              record_seconds: float | None = None) -> Resources:
    """What the plan needs. ``base_rss_mb``: a worker's RSS with nothing in
    flight (measured); ``record_seconds``: the metadata handler's time per
    record (its row read and document write), for the Lambda concurrency by
    Little's law: invocations at once = arrival rate × time in the handler
    (records of a batch are handled one after another, so the batch size
    cancels out). The event source mapping's minimum is 2."""
    multipart = any(c.count and _parts(c.mean, s) for c in work.classes)
    per_copy_conns = s.part_concurrency if multipart else 1
    per_worker = s.concurrency * per_copy_conns
    held = held_bytes(work, s)
    rss = base_rss_mb + held / MiB
    lam = None
    if copy_objects_per_s is not None and record_seconds is not None:
        lam = max(2, math.ceil(copy_objects_per_s * record_seconds))
    return Resources(
        connections_per_endpoint=per_worker * s.workers + s.listing_streams,
        connections_per_worker=per_worker + 1, held_bytes_per_worker=held,
        rss_per_worker_mb=round(rss, 1), rss_total_mb=round(rss * s.workers, 1),
        lambda_concurrency=lam)


def workload_from_histogram(rows: Sequence[tuple[int, int]]) -> Workload:
    """(count, bytes) pairs, e.g. ``Inventory.histogram``."""
    return Workload(tuple(SizeClass(c, b) for c, b in rows if c))
