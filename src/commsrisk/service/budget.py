"""Bounded work per request: a deadline, cancellation when the client leaves, and overload.

Scoring runs in a worker thread that Python cannot kill, so it stops itself: the Scorer calls
`RequestBudget.check` between pieces of work, which raises once the deadline has passed or the
request was cancelled (its client disconnected). `InFlight` counts the requests scoring now: one
over `max_in_flight` is refused at once with a 429 (queued behind the others it would only miss
its deadline), and /readyz says the worker is overloaded, so a balancer sends traffic elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from commsrisk.errors import ServiceBusyError, WorkStoppedError

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

    @contextmanager
    def track(self, budget: RequestBudget) -> Iterator[RequestBudget]:
        """Count `budget` as in flight for the block.

        Raises:
            ServiceBusyError: `max_in_flight` requests are scoring already.
        """
        with self._lock:
            live = sum(1 for b in self._active if not b.cancelled)  # a cancelled one stops at its next check
            if live >= self.max_in_flight:
                raise ServiceBusyError(
                    f"busy: {live} requests scoring, at the limit of {self.max_in_flight} "
                    "(service.max_in_flight); retry in a second"
                )
            self._active.add(budget)
        try:
            yield budget
        finally:
            with self._lock:
                self._active.discard(budget)

    def overload(self) -> str | None:
        """Why the worker should take no more traffic now, or None when it can."""
        with self._lock:
            active = list(self._active)
        if len(active) >= self.max_in_flight:
            return f"{len(active)} requests scoring, at the limit of {self.max_in_flight} (service.max_in_flight)"
        stuck = [b for b in active if b.elapsed_s() > b.deadline_s + STUCK_AFTER_S]
        if stuck:
            return f"{len(stuck)} request(s) running past their deadline"
        return None
