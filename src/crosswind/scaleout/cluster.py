"""The Dask client of a scale-out run: a LocalCluster this process starts
(``local:N``) or a running scheduler it joins (``tcp://…``)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator

from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from crosswind.errors import EndpointUnreachable
from crosswind.scaleout.spec import WorkersSpec

log = logging.getLogger("crosswind.scaleout")

#: distributed logs every worker start, stop and lost connection at INFO
_NOISY = ("distributed", "tornado", "bokeh")


def quiet_dask() -> None:
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)


class ParentWatch(WorkerPlugin):
    """A LocalCluster's workers end when their parent (the coordinator, whose
    nanny started them) is gone, even when it was SIGKILLed and could not tell
    them: nothing of a run outlives its coordinator."""

    name = "crosswind-parent-watch"

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s

    def setup(self, worker: object) -> None:
        parent = os.getppid()

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(self.interval_s)
            os._exit(1)  # no cleanup to wait for: the coordinator owns nothing here

        threading.Thread(target=watch, name="crosswind-parent-watch", daemon=True).start()


async def worker_count(client: Client) -> int:
    """Workers the scheduler has now (the client's cached scheduler info lags)."""
    nthreads: dict[str, int] = await client.nthreads()  # type: ignore[no-untyped-call]
    return len(nthreads)


@contextlib.asynccontextmanager
async def dask_client(spec: WorkersSpec, timeout_s: float = 30.0) -> AsyncIterator[Client]:
    """An asynchronous client on the event loop of the caller, closed (with the
    LocalCluster, if this started one) on the way out."""
    quiet_dask()
    if spec.local is not None:
        cluster = await LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=spec.local, processes=True, threads_per_worker=1,
            dashboard_address=None, silence_logs=logging.WARNING, asynchronous=True,
            # Each worker copies with [sync] concurrency of its own; Dask's memory
            # manager would only pause or restart it (the engine's byte budget bounds it)
            memory_limit=0, host="127.0.0.1",
        )
        try:
            client = await Client(cluster, asynchronous=True)  # type: ignore[no-untyped-call]
            try:
                await client.register_plugin(ParentWatch())
                await client.wait_for_workers(spec.local, timeout=timeout_s)
                yield client
            finally:
                await client.close()
        finally:
            await cluster.close()  # type: ignore[misc]
        return
    assert spec.address is not None
    try:
        client = await Client(  # type: ignore[no-untyped-call]
            spec.address, asynchronous=True, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise EndpointUnreachable(
            f"cannot reach the Dask scheduler at {spec.address}: {exc}") from None
    try:
        yield client
    finally:
        await client.close()
