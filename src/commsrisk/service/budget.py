"""Bounded work per request: a deadline, cancellation when the client leaves, and overload.

Scoring runs in a worker thread that Python cannot kill, so it stops itself: the Scorer calls
`RequestBudget.check` between pieces of work, which raises once the deadline has passed or the
request was cancelled (its client disconnected). `InFlight` lets `max_in_flight` requests score at
once; the next ones wait their turn, first come first served, for `queue_wait_s` at most, then get
a 429; /readyz says the worker is overloaded meanwhile, so a balancer sends traffic elsewhere.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from commsrisk.errors import ServiceBusyError, WorkStoppedError

ADMIT_POLL_S = 0.02
"""How often a waiting request looks for a free slot."""
STUCK_AFTER_S = 10.0
"""A request still scoring this long after its deadline is stuck in a step that cannot stop."""


class RequestBudget:
    """One request's deadline and cancel flag, checked by the Scorer between pieces of work."""

    def __init__(self, deadline_s: float, request_id: str) -> None:
        self.request_id = request_id
        self.deadline_s = deadline_s
        self.started = time.monotonic()
        self.cancelled: str | None = None

    def cancel(self, reason: str) -> None:
        """Ask the work to stop at its next check."""
        self.cancelled = reason

    def elapsed_s(self) -> float:
        """Seconds since the request started scoring."""
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise WorkStoppedError when cancelled or past the deadline; else return at once."""
        if self.cancelled:
            raise WorkStoppedError(f"request {self.request_id} stopped: {self.cancelled}")
        if self.elapsed_s() > self.deadline_s:
            raise WorkStoppedError(
                f"request {self.request_id} stopped: over the deadline of {self.deadline_s:g} s "
                "(service.request_deadline_s); send fewer or shorter messages per request"
            )


class InFlight:
    """The budgets of the requests scoring now."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._active: set[RequestBudget] = set()
        self._queue: deque[object] = deque()

    def _live(self) -> int:
        return sum(1 for b in self._active if not b.cancelled)  # a cancelled one stops at its next check

    @asynccontextmanager
    async def admitted(self, budget: RequestBudget, wait_s: float) -> AsyncIterator[RequestBudget]:
        """Count `budget` as in flight for the block, once a slot is free; first come, first served.

        A request waits up to `wait_s` for one of the `max_in_flight` slots, in arrival order, so no
        client is starved by luckier retries; then it is refused.

        Raises:
            ServiceBusyError: no slot was free within `wait_s`.
        """
        ticket = object()
        give_up = time.monotonic() + wait_s
        with self._lock:
            self._queue.append(ticket)
        try:
            while True:
                with self._lock:
                    if self._queue[0] is ticket and self._live() < self.max_in_flight:
                        self._queue.popleft()
                        self._active.add(budget)
                        break
                    if budget.cancelled:
                        raise WorkStoppedError(f"request {budget.request_id} stopped: {budget.cancelled}")
                    if time.monotonic() >= give_up:
                        raise ServiceBusyError(
                            f"busy: {self._live()} requests scoring, at the limit of {self.max_in_flight} "
                            f"(service.max_in_flight), and {len(self._queue) - 1} waiting for more than "
                            f"{wait_s:g} s (service.queue_wait_s); retry in a second"
                        )
                await asyncio.sleep(ADMIT_POLL_S)
        finally:
            with self._lock:
                if ticket in self._queue:
                    self._queue.remove(ticket)
        try:
            budget.started = time.monotonic()  # the deadline counts from admission, not from the wait
            yield budget
        finally:
            with self._lock:
                self._active.discard(budget)

    def overload(self) -> str | None:
        """Why the worker should take no more traffic now, or None when it can."""
        with self._lock:
            active = list(self._active)
            waiting = len(self._queue)
        if waiting:
            return f"{waiting} request(s) waiting for one of {self.max_in_flight} slots (service.max_in_flight)"
        if len(active) >= self.max_in_flight:
            return f"{len(active)} requests scoring, at the limit of {self.max_in_flight} (service.max_in_flight)"
        stuck = [b for b in active if b.elapsed_s() > b.deadline_s + STUCK_AFTER_S]
        if stuck:
            return f"{len(stuck)} request(s) running past their deadline"
        return None
