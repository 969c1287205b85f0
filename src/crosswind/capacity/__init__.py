"""Capacity planning (``crosswind inventory --plan``): how long a full copy and
its validation will take with W workers × C copies in flight, and what that
needs (connections, Lambda concurrency, memory), from a short probe of the
real endpoints rather than an assumed rate.

* ``model``: the pure throughput model (no I/O, property-tested): measured
  request classes and a workload in, durations, bottlenecks and resources out.
* ``probe``: the measurements: request latencies alone, a short parallel
  burst per class for the request rate and bytes/s an endpoint sustains, with
  probe objects under ``.crosswind-probe/`` removed afterwards.
* ``planner``: ties the inventory's listing, the probe and the model together.

It may import ``inventory``, ``stores``, ``sync.filters`` and the pure core;
only the CLI imports it.
"""
