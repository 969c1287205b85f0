"""The capacity model (capacity/model.py): properties that must hold for any
measured figures, and the one-class formula it reduces to."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.capacity.model import (
    STREAM_THRESHOLD,
    Endpoint,
    MiB,
    RequestClass,
    Settings,
    SizeClass,
    Workload,
    copy_estimate,
    copy_latency,
    held_bytes,
    resources,
    validation_estimate,
)

BOUNDED = settings(max_examples=60, deadline=None)

latency = st.floats(min_value=1e-4, max_value=2.0)
ceiling = st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e5))
cpu = st.floats(min_value=0.0, max_value=0.01)


@st.composite
def request_class(draw: st.DrawFn) -> RequestClass:
    return RequestClass(draw(latency), draw(ceiling), cpu_s=draw(cpu))


@st.composite
def endpoint(draw: st.DrawFn, kind: str = "azure") -> Endpoint:
    bw = st.one_of(st.none(), st.floats(min_value=1e5, max_value=1e10))
    return Endpoint(
        name=kind, kind=kind,  # type: ignore[arg-type]
        list_page=RequestClass(draw(latency)),
        list_per_key_s=draw(st.floats(min_value=0.0, max_value=1e-4)),
        head=draw(request_class()), get=draw(request_class()), put=draw(request_class()),
        read_bytes_per_s=draw(bw), write_bytes_per_s=draw(bw),
        stream_read_bytes_per_s=draw(st.floats(min_value=1e5, max_value=1e10)),
        stream_write_bytes_per_s=draw(st.floats(min_value=1e5, max_value=1e10)),
    )


@st.composite
def workload(draw: st.DrawFn) -> Workload:
    classes = draw(st.lists(
        st.tuples(st.integers(1, 10**7), st.floats(min_value=0, max_value=2e9)),
        min_size=1, max_size=5))
    return Workload(tuple(SizeClass(n, int(n * mean)) for n, mean in classes))


small_ints = st.integers(min_value=1, max_value=512)


@BOUNDED
@given(endpoint("azure"), endpoint("aws"), workload(), small_ints, small_ints, small_ints,
       small_ints)
def test_more_workers_or_concurrency_never_slows_a_copy(
        src: Endpoint, dst: Endpoint, work: Workload, w: int, c: int, dw: int, dc: int) -> None:
    base = copy_estimate(src, dst, work, Settings(workers=w, concurrency=c)).seconds
    more_c = copy_estimate(src, dst, work, Settings(workers=w, concurrency=c + dc)).seconds
    more_w = copy_estimate(src, dst, work, Settings(workers=w + dw, concurrency=c)).seconds
    assert more_c <= base * (1 + 1e-9)
    assert more_w <= base * (1 + 1e-9)
    for mode in ("sampled", "full", "deep"):
        a = validation_estimate(src, dst, work, Settings(workers=w, concurrency=c), mode)
        b = validation_estimate(src, dst, work, Settings(workers=w + dw, concurrency=c + dc),
                                mode)
        assert b.seconds <= a.seconds * (1 + 1e-9)


@BOUNDED
@given(endpoint("azure"), endpoint("aws"), workload(), small_ints, small_ints,
       st.one_of(st.none(), request_class()))
def test_a_copy_never_beats_any_resource(src: Endpoint, dst: Endpoint, work: Workload,
                                         w: int, c: int, pair: RequestClass | None) -> None:
    est = copy_estimate(src, dst, work, Settings(workers=w, concurrency=c), pair)
    assert dst.put is not None
    rate = est.objects_per_s
    if pair is not None and pair.ceiling is not None and all(
            k.mean < STREAM_THRESHOLD for k in work.classes):
        assert rate <= pair.ceiling * (1 + 1e-9)
    for ceil in (src.get.ceiling, dst.put.ceiling):
        if ceil is not None:
            assert rate <= ceil * (1 + 1e-9)
    for bw in (src.read_bytes_per_s, dst.write_bytes_per_s):
        if bw is not None:
            assert est.bytes_per_s <= bw * (1 + 1e-9)
    # never faster than every copy in flight at once at the fastest class's latency
    fastest = min(copy_latency(src, dst, k.mean, Settings()) for k in work.classes)
    assert rate <= w * c / fastest * (1 + 1e-9)
    assert est.seconds == max(est.terms.values())


@BOUNDED
@given(endpoint("azure"), endpoint("aws"), workload(), small_ints, small_ints)
def test_a_mix_takes_at_least_as_long_as_any_class_alone(
        src: Endpoint, dst: Endpoint, work: Workload, w: int, c: int) -> None:
    s = Settings(workers=w, concurrency=c)
    whole = copy_estimate(src, dst, work, s).seconds
    for k in work.classes:
        assert copy_estimate(src, dst, Workload((k,)), s).seconds <= whole * (1 + 1e-9)


@BOUNDED
@given(latency, latency, st.floats(min_value=1, max_value=1e4),
       st.floats(min_value=1, max_value=1e4), st.floats(min_value=1e6, max_value=1e9),
       st.integers(1, 64), st.integers(1, 256), st.integers(1, 500_000))
def test_one_class_is_the_closed_form(get_l: float, put_l: float, get_cap: float,
                                      put_cap: float, bw: float, w: int, c: int,
                                      size: int) -> None:
    """objects/s = min(N / L, GET ceiling, PUT ceiling, bandwidth / size)."""
    src = Endpoint("src", "azure", RequestClass(1e-9), 0.0, RequestClass(0.01),
                   RequestClass(get_l, get_cap), read_bytes_per_s=bw)
    dst = Endpoint("dst", "aws", RequestClass(1e-9), 0.0, RequestClass(0.01),
                   RequestClass(0.01), put=RequestClass(put_l, put_cap))
    n = 10_000
    est = copy_estimate(src, dst, Workload((SizeClass(n, n * size),)),
                        Settings(workers=w, concurrency=c))
    expect = min(w * c / (get_l + put_l), get_cap, put_cap, bw / size)
    assert math.isclose(est.objects_per_s, expect, rel_tol=1e-6)


def test_latency_bound_scales_linearly_until_a_ceiling() -> None:
    """40 ms per request each side, the destination takes 400 PUTs/s: 4 → 16
    copies in flight is 4× faster; past 400/s nothing more."""
    src = Endpoint("src", "azure", RequestClass(0.04), 0.0, RequestClass(0.04),
                   RequestClass(0.04))
    dst = Endpoint("dst", "aws", RequestClass(0.04), 0.0, RequestClass(0.04),
                   RequestClass(0.04), put=RequestClass(0.04, ceiling=400.0))
    work = Workload((SizeClass(100_000, 100_000 * 4096),))
    rate = {c: copy_estimate(src, dst, work, Settings(concurrency=c)).objects_per_s
            for c in (4, 16, 64, 256)}
    assert math.isclose(rate[4], 4 / 0.08, rel_tol=1e-6)
    assert math.isclose(rate[16], 4 * rate[4], rel_tol=1e-6)
    assert rate[64] == rate[256] == 400.0
    assert copy_estimate(src, dst, work, Settings(concurrency=64)).bottleneck \
        == "destination PUT rate"


@BOUNDED
@given(workload(), small_ints, small_ints, st.floats(min_value=10, max_value=500))
def test_memory_and_connections(work: Workload, w: int, c: int, base: float) -> None:
    s = Settings(workers=w, concurrency=c)
    r = resources(work, s, base_rss_mb=base)
    assert held_bytes(work, s) <= s.memory_budget
    # (rounded to 0.1 MB in the report)
    assert base - 0.1 <= r.rss_per_worker_mb <= base + s.memory_budget / MiB + 0.1
    # each figure is rounded to 0.1 MB on its own: the total may differ by w × 0.05
    assert abs(r.rss_total_mb - r.rss_per_worker_mb * w) <= 0.05 * w + 0.1
    # every copy in flight holds a connection at each endpoint (parts: several)
    assert r.connections_per_endpoint >= w * c + 1
    assert r.connections_per_endpoint <= w * c * s.part_concurrency + 1
    assert r.lambda_concurrency is None


def test_lambda_concurrency_is_littles_law() -> None:
    work = Workload((SizeClass(1000, 4096_000),))
    r = resources(work, Settings(), base_rss_mb=90, copy_objects_per_s=500,
                  record_seconds=0.03)
    assert r.lambda_concurrency == 15
    low = resources(work, Settings(), base_rss_mb=90, copy_objects_per_s=1,
                    record_seconds=0.03)
    assert low.lambda_concurrency == 2  # the event source mapping's minimum
