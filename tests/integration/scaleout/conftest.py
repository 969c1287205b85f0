"""A Dask LocalCluster shared by the scale-out tests (2 worker processes), and
estates whose configs carry their secrets by reference only.

The cluster's workers get the secrets' environment variables, as a real
cluster's workers would have them set by whoever runs them; the coordinator
(this process) has them too. Start-up is paid once per module.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from distributed import Client, LocalCluster

from crosswind.config import load_config
from crosswind.rig.emulators import Azurite
from tests.integration.conftest import Env

#: a secret only these tests know: moto accepts any key, so it is the S3 secret
S3_SECRET = f"s3-secret-{uuid.uuid4().hex}"
AZ_VAR, S3_VAR = "CW_SCALEOUT_AZ_CS", "CW_SCALEOUT_S3_SECRET"


def gone(pids: list[int], within_s: float = 20.0) -> list[int]:
    """Those of ``pids`` still alive after ``within_s`` (zombies count as gone)."""
    deadline = time.monotonic() + within_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if alive:
            time.sleep(0.2)
    return alive


@pytest.fixture(scope="module")
def secret_vars(azurite: Azurite) -> Iterator[dict[str, str]]:
    values = {AZ_VAR: azurite.connection_string, S3_VAR: S3_SECRET}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def dask_cluster(secret_vars: dict[str, str]) -> Iterator[Client]:
    """Two single-threaded worker processes; a client to their scheduler."""
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           dashboard_address=None, silence_logs=logging.WARNING,
                           memory_limit=0, host="127.0.0.1", env=dict(secret_vars))
    client = Client(cluster)
    pids: set[int] = set()
    try:
        yield client
        pids = set(client.run(os.getpid).values())
    finally:
        client.close()
        cluster.close()
    # Nothing of the cluster is left running.
    assert not gone(sorted(pids)), "worker processes left behind"


@pytest.fixture
def scaled_env(make_env: Callable[..., Env], secret_vars: dict[str, str]) -> Callable[..., Env]:
    """``make_env`` whose config names its secrets by reference (env:), with a
    ``[scaleout]`` section of small shards (so a small estate makes many)."""

    def make(scaleout: str = "shard_objects = 8\n", **kw: Any) -> Env:
        env = make_env(**kw)
        text = env.config_path.read_text()
        cs = secret_vars[AZ_VAR]
        assert cs in text
        text = text.replace(f'connection_string = "{cs}"', f'connection_string = "env:{AZ_VAR}"')
        text = text.replace('secret_access_key = "test"', f'secret_access_key = "env:{S3_VAR}"')
        text += "\n[scaleout]\n" + scaleout
        env.config_path.write_text(text)
        env.config = load_config(env.config_path)
        return env

    return make
