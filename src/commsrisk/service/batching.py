"""Adaptive batching of single-message /score calls: concurrent requests share one Scorer pass.

The classifier's forward pass costs about the same for 1 message as for 8 short ones on a CPU, so
eight clients each sending one message are served far faster scored together. BentoML's own
adaptive batching (its CORK dispatcher, the one behind `@bentoml.api(batchable=True)`) decides
when to release a batch: it learns the pass's cost from the traffic and waits only while waiting
pays. It is used in-process here rather than through a batchable API on a second service, so the
request's admission, deadline and disconnect cancellation (`RequestBudget`) stay with the request.

Requests in one pass must agree on what they ask for (PII values shown, explanation level); a
released batch is split into groups that do. A group stops early only when every request in it
has been abandoned or has passed its deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import NoReturn

import anyio
from bentoml._internal.marshal.dispatcher import CorkDispatcher

from commsrisk.errors import CommsriskError, ServiceBusyError, WorkStoppedError
from commsrisk.schema import Explain, Message, ScoreResult
from commsrisk.service.budget import RequestBudget

Scored = tuple[ScoreResult, int]
"""A job's result and how many messages its pass scored."""
ScoreMessages = Callable[[list[Message], bool, Explain, Callable[[], None]], list[ScoreResult]]
"""Scores messages alike in what they ask for: (messages, show_values, explain, stop) -> results."""


@dataclass(frozen=True)
class ScoreJob:
    """One /score request waiting for a pass."""

    message: Message
    show_values: bool
    explain: Explain
    budget: RequestBudget

    def options(self) -> tuple[bool, str]:
        """What the request asks for beyond its message: jobs in one pass must agree on it."""
        return self.show_values, self.explain


def _refused() -> NoReturn:
    raise ServiceBusyError(
        "busy: the requests queued for batched scoring would not be scored within the deadline "
        "(service.request_deadline_s); retry in a second"
    )


def _live(budget: RequestBudget) -> bool:
    try:
        budget.check()
    except WorkStoppedError:
        return False
    return True


class ScoreBatcher:
    """Collects concurrent /score jobs into passes of at most `max_batch_size` messages."""

    def __init__(
        self,
        score: ScoreMessages,
        max_batch_size: int,
        max_latency_s: float,
        on_pass: Callable[[int], None] | None = None,
    ) -> None:
        self._score = score
        self._on_pass = on_pass
        self._dispatcher: CorkDispatcher[ScoreJob, Scored | Exception] = CorkDispatcher(
            max_latency_in_ms=int(max_latency_s * 1000),
            max_batch_size=max_batch_size,
            fallback=_refused,
            get_batch_size=lambda _job: 1,  # each job is one message
        )
        self._dispatch = self._dispatcher(self._score_jobs)

    async def score(self, job: ScoreJob) -> Scored:
        """Score one job in the next pass that takes it; its result and the pass's size.

        Raises:
            ServiceBusyError: the queue would not reach this job before the deadline.
            WorkStoppedError: every request of its pass was abandoned or ran out of time.
        """
        result = await self._dispatch(job)
        assert result is not None  # the fallback raises rather than returning
        return result  # type: ignore[return-value]

    def shutdown(self) -> None:
        """Stop the dispatcher; queued jobs are cancelled."""
        self._dispatcher.shutdown()

    async def _score_jobs(self, jobs: Sequence[ScoreJob]) -> list[Scored | Exception]:
        """One released batch: a Scorer pass per group of jobs that ask for the same things."""
        results: list[Scored | Exception] = [WorkStoppedError("not scored")] * len(jobs)
        order = sorted(range(len(jobs)), key=lambda i: jobs[i].options())
        for _, members in groupby(order, key=lambda i: jobs[i].options()):
            indexes = list(members)
            group = [jobs[i] for i in indexes]
            for i, outcome in zip(indexes, await anyio.to_thread.run_sync(self._score_group, group), strict=True):
                results[i] = outcome
        return results

    def _score_group(self, group: list[ScoreJob]) -> list[Scored | Exception]:
        budgets = [job.budget for job in group]

        def stop() -> None:
            if not any(_live(budget) for budget in budgets):
                budgets[0].check()  # raises with the first request's reason

        first = group[0]
        try:
            scored = self._score([job.message for job in group], first.show_values, first.explain, stop)
            if self._on_pass is not None:
                self._on_pass(len(group))
            return [(result, len(group)) for result in scored]
        except CommsriskError as error:
            return [error] * len(group)
