"""Adaptive batching in-process: BentoML's dispatcher over the real Scorer, concurrent jobs, mixed asks."""

from __future__ import annotations

import asyncio

import pytest

from commsrisk.errors import WorkStoppedError
from commsrisk.schema import Message
from commsrisk.service.batching import ScoreBatcher, ScoreJob
from commsrisk.service.budget import RequestBudget

pytestmark = pytest.mark.slow

TEXTS = [
    "Let's move this to my personal WhatsApp, the desk line is recorded.",
    "Client list attached, send it to my gmail before I leave Friday.",
    "收到,明天上午十点开会。",
    "Delete this chat after you read it, compliance reads everything.",
    "¿Puedes mandarme el archivo de clientes a mi correo personal?",
    "Thanks, see you at lunch.",
]


def test_concurrent_jobs_share_passes_and_score_as_one_batch_does(scorer) -> None:  # type: ignore[no-untyped-def]
    """Jobs sent together come back in fewer passes than jobs, each with the result score_batch gives it."""
    passes: list[tuple[int, bool, str]] = []

    def score(messages, show_values, explain, stop):  # type: ignore[no-untyped-def]
        passes.append((len(messages), show_values, explain))
        return scorer.score_batch(messages, show_values=show_values, explain=explain, stop=stop)

    messages = [Message(text=text, message_id=f"m{i}") for i, text in enumerate(TEXTS)]
    asks = [(False, "signals"), (True, "signals"), (False, "phrases")]
    jobs = [
        ScoreJob(message, *asks[i // len(TEXTS) % len(asks)], RequestBudget(30, f"r{i}"))
        for i, message in enumerate(messages * 4)
    ]

    async def run() -> list[tuple[object, int]]:
        batcher = ScoreBatcher(score, max_batch_size=16, max_latency_s=30)
        try:
            return await asyncio.gather(*(batcher.score(job) for job in jobs))
        finally:
            batcher.shutdown()

    answers = asyncio.run(run())
    assert sum(size for size, _, _ in passes) == len(jobs), "every job scored once"
    assert len(passes) < len(jobs), f"no job shared a pass: {passes}"
    assert max(size for size, _, _ in passes) > 1
    for job, (result, pass_messages) in zip(jobs, answers, strict=True):
        alone = scorer.score_batch([job.message], show_values=job.show_values, explain=job.explain)[0]
        assert result.message_id == job.message.message_id and pass_messages >= 1  # type: ignore[attr-defined]
        for risk, decision in alone.risks.items():
            assert result.risks[risk].score == pytest.approx(decision.score, abs=1e-4)  # type: ignore[attr-defined]
            assert result.risks[risk].flagged == decision.flagged  # type: ignore[attr-defined]
            got = result.risks[risk].explanation.spans  # type: ignore[attr-defined]
            assert [(s.start, s.end, s.kind) for s in got] == [
                (s.start, s.end, s.kind) for s in decision.explanation.spans
            ]
        assert [p.value for p in result.pii] == [p.value for p in alone.pii]  # type: ignore[attr-defined]
    phrased = [r for (r, _), job in zip(answers, jobs, strict=True) if job.explain == "phrases"]
    assert any(s.kind == "phrase" for r in phrased for d in r.risks.values() for s in d.explanation.spans)  # type: ignore[attr-defined]


def test_a_pass_whose_requests_all_left_stops_and_says_why(scorer) -> None:  # type: ignore[no-untyped-def]
    """Every request of the pass cancelled: the pass stops at its first check, each gets the reason."""
    budget = RequestBudget(30, "gone")
    budget.cancel("the client disconnected")
    job = ScoreJob(Message(text=TEXTS[0]), False, "signals", budget)

    async def run() -> None:
        batcher = ScoreBatcher(lambda m, s, e, stop: scorer.score_batch(m, show_values=s, explain=e, stop=stop), 16, 30)
        try:
            await batcher.score(job)
        finally:
            batcher.shutdown()

    with pytest.raises(WorkStoppedError, match="the client disconnected"):
        asyncio.run(run())
