"""Run a control command here, or in the running replication service.

The state directory has one engine writer at a time. A command that needs it
(``dlq replay``, the cutover and rollback runbooks) takes the lock and works
here when no service runs; when the service holds the lock, the command leaves
a request (``crosswind.control``) and prints the service's progress lines and
result as they come. Another crosswind command holding the lock is still an
error (exit 5): only the service takes requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from crosswind.config import Config
from crosswind.control import ControlQueue
from crosswind.live.status import StatusStore, is_running
from crosswind.state import StateLocked, StateStore

Here = Callable[[StateStore], Coroutine[Any, Any, dict[str, Any]]]


def in_service_or_here(cfg: Config, kind: str, args: dict[str, Any], here: Here, *,
                       say: Callable[[str], None] = lambda line: None,
                       timeout_s: float = 900.0) -> dict[str, Any]:
    state = StateStore(cfg.state_dir)
    try:
        try:
            state.lock()
        except StateLocked:
            if not is_running(StatusStore(state).read()):
                raise
            say("the replication service holds the state: it runs this request")
            queue = ControlQueue(state)
            request_id = queue.submit(kind, args)
            status = StatusStore(state)
            return queue.wait(request_id, timeout_s=timeout_s, on_line=say,
                              alive=lambda: is_running(status.read()))
        return asyncio.run(here(state))
    finally:
        state.close()
