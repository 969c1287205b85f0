"""The workers: take a key from the scheduler, apply it, and settle the outcome.

* applied → every change it covered counts as applied, with its lag; the key's
  DLQ entry (if any) is resolved; the changes' tickets are released;
* an endpoint failure (unreachable, throttled, credentials refused, breaker
  open) → the key waits and is tried again; it never counts as an attempt and
  never reaches the DLQ, so an outage loses nothing and acknowledges nothing;
* a failure of the change itself (bytes that fail verification, a source that
  keeps changing, a bug) → tried again with backoff, up to ``attempts``, then
  the DLQ;
* a key the replica cannot hold, or a delete the guard refuses → the DLQ at once.

A DLQ entry is written (durably) before the tickets are released, so a message
is never acknowledged for a change that is neither applied nor kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from crosswind.errors import (
    AuthError,
    CrosswindError,
    EndpointUnreachable,
    InvalidKey,
    MetadataMappingError,
    TransientError,
)
from crosswind.governance.gate import SchemaRejected, rejection_payload
from crosswind.live.breakers import BreakerOpen, Breakers
from crosswind.live.changes import Change
from crosswind.live.objects import ApplyOutcome, DeleteHeld, ObjectApplier, ReplicaConflict
from crosswind.live.reconcile import STREAM as RECONCILE_STREAM
from crosswind.live.scheduler import KeyScheduler, Work
from crosswind.live.streams import StreamState
from crosswind.metasync.ledger import Ledger
from crosswind.secrets import redact

log = logging.getLogger("crosswind.live")

ENDPOINT_FAILURES = (BreakerOpen, EndpointUnreachable, TransientError, AuthError)
UNTRUSTED_STREAMS = (RECONCILE_STREAM, "dlq-replay")


class ApplyWorkers:
    def __init__(self, scheduler: KeyScheduler, applier: ObjectApplier, ledger: Ledger,
                 direction: str, streams: dict[str, StreamState], *, attempts: int,
                 run_id: int | None = None, gate: Callable[[], float] | None = None,
                 on_applied: Callable[[Change], None] | None = None,
                 on_outcome: Callable[[ApplyOutcome], None] | None = None,
                 breakers: Breakers | None = None,
                 probe: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.scheduler = scheduler
        self.applier = applier
        self.ledger = ledger
        self.direction = direction
        self.streams = streams
        self.attempts = attempts
        self.run_id = run_id
        self.gate = gate
        self.on_applied = on_applied
        self.on_outcome = on_outcome
        self.breakers = breakers
        #: a cheap call to an endpoint (its store's check), to tell a refused key
        #: from a refusing endpoint when nothing else called it meanwhile
        self.probe = probe
        self.last_activity = time.monotonic()
        self._dlq_open = ledger.dlq_open_count(direction) > 0

    async def worker(self) -> None:
        while (work := await self.scheduler.take(self.gate)) is not None:
            await self.apply(work)

    async def apply(self, work: Work) -> None:
        # What a reconcile or a DLQ replay asks for was compared with, or failed on,
        # the replica itself: a recorded copy proves nothing about it.
        trust = all(c.stream not in UNTRUSTED_STREAMS for c in work.covers)
        # An operator's replay settles a conflict in the primary's favour.
        replay = any(c.stream == "dlq-replay" for c in work.covers)
        try:
            outcome = await self.applier.apply(work.key, trust_record=trust, overwrite=replay)
        except asyncio.CancelledError:
            self.scheduler.retry(work, count_attempt=False, delay=0)
            raise
        except ENDPOINT_FAILURES as exc:
            if await self._refused_key(work, exc):
                # The endpoint answers, but keeps refusing this key (a bucket policy
                # denying a prefix, a name it cannot address): the key's own failure,
                # or it would hold the endpoint's breaker open for everyone.
                self.dead(work, "refused", f"{getattr(exc, 'endpoint', 'the endpoint')} "
                          f"answers other requests but refused this key "
                          f"{work.endpoint_failures + 1} times: {exc}")
                return
            # The endpoint, not the change: wait (the breaker gates the workers).
            self.scheduler.retry(work, count_attempt=False,
                                 delay=min(30.0, self.scheduler.backoff(
                                     work.endpoint_failures + 1)))
            log.info("waiting to apply %s: %s", work.key, redact(str(exc)))
            return
        except DeleteHeld as exc:
            self.dead(work, "delete-held", str(exc), held=True)
            return
        except ReplicaConflict as exc:
            self.dead(work, "conflict", str(exc), payload=json.dumps(exc.evidence, default=str))
            return
        except (InvalidKey, MetadataMappingError) as exc:
            self.dead(work, "cannot-write", str(exc))
            return
        except SchemaRejected as exc:  # validation before write: no retry will pass it
            self.dead(work, "schema", str(exc), payload=rejection_payload(exc))
            return
        except CrosswindError as exc:
            self._failed_try(work, type(exc).__name__, str(exc))
            return
        except Exception as exc:
            log.error("internal error applying %s", work.key, exc_info=exc)
            self._failed_try(work, "internal-error", f"{type(exc).__name__}: {exc}")
            return
        self.applied(work, outcome)

    async def _refused_key(self, work: Work, exc: BaseException) -> bool:
        """After ``attempts`` endpoint failures of one key: does the endpoint serve
        other calls (seen since, or a probe now)? Then the key is the problem."""
        endpoint = getattr(exc, "endpoint", None)
        if (self.breakers is None or endpoint is None or work.failing_since is None
                or work.endpoint_failures + 1 < self.attempts):
            return False
        if self.breakers.served_since(endpoint, work.failing_since):
            return True
        if self.probe is None:
            return False
        try:
            await self.probe(endpoint)
        except Exception:
            return False  # the endpoint itself is unwell: wait
        return True

    def applied(self, work: Work, outcome: ApplyOutcome) -> None:
        now = time.time()
        wrote = outcome.result in ("copied", "deleted")
        for c in work.covers:
            st = self.streams.get(c.stream)
            if st is not None:
                st.applied += 1
                st.in_step += 0 if wrote else 1
                st.last_applied_at = now
                if c.event_time is not None:
                    st.lag.record_event(c.event_time.timestamp(), now)
            if self.on_applied is not None:
                self.on_applied(c)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        # (a replay's entry may have been filed by another process since we looked)
        if self._dlq_open or any(c.stream == "dlq-replay" for c in work.covers):
            self.ledger.dlq_resolve(self.direction, "object-key", [work.key],
                                    note="replicated")
        self.last_activity = time.monotonic()
        self.scheduler.done(work)

    def _failed_try(self, work: Work, kind: str, reason: str) -> None:
        if work.attempt >= self.attempts:
            self.dead(work, kind, reason)
        else:
            self.scheduler.retry(work)

    def dead(self, work: Work, kind: str, reason: str, *, held: bool = False,
             payload: str | None = None) -> None:
        """Into the DLQ (durably), then the change's tickets are released."""
        reason = redact(reason)
        self.ledger.dlq_put(self.direction, "object-key", work.key, pk=None, rk=None,
                            kind=kind, reason=reason, payload=payload, run_id=self.run_id)
        self._dlq_open = True
        for c in work.covers:
            st = self.streams.get(c.stream)
            if st is not None:
                if held:
                    st.held += 1
                else:
                    st.failed += 1
        log.warning("%s %s: %s", "held" if held else "failed", work.key, reason)
        self.last_activity = time.monotonic()
        self.scheduler.done(work)
