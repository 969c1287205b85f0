"""Object sync scaled out on a Dask cluster (``--workers local:N | tcp://HOST:8786``).

The coordinator (``coordinator.py``) lists both sides once, in key order, and cuts
the merged listing into key-range shards (``shards.py``, pure), many more than
there are workers, so that fast workers take more (DistCp's dynamic chunks).
Each shard runs the ordinary engine (``crosswind.sync.engine``) on a Dask worker
(``task.py``) and sends back what it verified, what failed and what it would
delete; the coordinator stays the only writer of the state store. ``cluster.py``
opens the Dask client; ``spec.py`` parses the ``--workers`` value.

May import: sync, stores, state, governance, secrets, config, model, errors.
"""
