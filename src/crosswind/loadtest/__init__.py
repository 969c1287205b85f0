"""Load testing before cutover (Property 31): ``crosswind loadtest``.

A synthetic flight-event load is written into the primary of a non-production
estate while a ``crosswind replicate`` service runs, then the run is judged:
achieved rate, lag per stream, errors, DLQ growth, pool use, and whether every
change reached the replica.

* ``schedule``: pure: the mix, the size histogram, the schedule of operations;
* ``flights``: pure: flight-event names, bodies, metadata and rows;
* ``pacing``: the open-loop executor of a schedule (generic: the benchmark
  ``bench/replicate.py`` drives its own writes with it);
* ``primary``: the writes, through the store interfaces; ``watch``: samples
  of the service's published status; ``verify``: the touched keys on the
  replica; ``report``: pure: figures and verdicts; ``run``: one load test.

May import config, stores, live (status, events) and the pure core; never
``crosswind.rig`` or ``bench/``.
"""
