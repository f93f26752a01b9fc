"""The HTTP service (BentoML): a thin shell that maps requests to `Scorer` calls.

`bentoml serve commsrisk.service.app:CommsriskService` (or `commsrisk serve`) loads the Scorer once
per worker: NLP pipelines, classifier, combiner, and the thresholds policy (re-read when its file
changes). Batches go through `Scorer.score_batch`: one code path for one message and many.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import bentoml
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from commsrisk.errors import AccessDeniedError, CommsriskError, InvalidInputError, PayloadTooLargeError
from commsrisk.ingest.encoding import invalid_unicode
from commsrisk.reviews.store import AppendResult, ReviewStore
from commsrisk.schema import (
    DEFAULT_LIMITS,
    RISKS,
    Explain,
    Message,
    ReviewDecision,
    ScoreResult,
    describe_validation_error,
)
from commsrisk.service.access import ApiKey
from commsrisk.service.batching import ScoreBatcher, ScoreJob
from commsrisk.service.bento_models import (
    CLASSIFIER_MODEL,
    ENCODER_MODEL,
    missing_model_error,
    saved_model_tags,
    settings_for_bento,
)
from commsrisk.service.budget import InFlight, RequestBudget
from commsrisk.service.logs import install_json_logging
from commsrisk.service.middleware import (
    AccessMiddleware,
    BodySizeLimitMiddleware,
    JsonOnlyMiddleware,
    RequestMetricsMiddleware,
    SecurityHeadersMiddleware,
    ValidationErrorShapeMiddleware,
    install_log_redaction,
)
from commsrisk.service.pages import docs_page
from commsrisk.service.startup import limit_malloc_arenas, refuse_to_start
from commsrisk.settings import Settings
from commsrisk.thresholds.policy import ThresholdPolicy

logger = logging.getLogger("commsrisk.service")
T = TypeVar("T")
DISCONNECT_POLL_S = 0.25

EXAMPLE_MESSAGE = Message(
    text="Let's move this to my personal WhatsApp, the desk line is recorded.",
    message_id="example-1",
    business_unit="equities-trading",
    channel="teams",
)
EXPLAIN_HELP = (
    "'signals': the signals behind each score; 'phrases': also the phrases of the text behind each flagged "
    "risk (slower). Default: the service setting service.explain."
)
EXAMPLE_DECISION = {
    "message_id": "example-1",
    "text": EXAMPLE_MESSAGE.text,
    "labels": {"off_channel": 1, "leakage": 0},
    "reviewer": "a.reviewer",
    "reason": "asks to move to a personal account",
    "decided_at": "2026-05-04T09:30:00Z",
    "business_unit": "equities-trading",
    "seen": {"model_version": "7", "thresholds_version": "v0001-abc", "scores": {"off_channel": 0.91}},
}
BENTO_MODEL_TAGS = saved_model_tags()
flag_counter = bentoml.metrics.Counter(
    name="commsrisk_flags_total", documentation="Messages flagged, per risk.", labelnames=["risk"]
)
message_counter = bentoml.metrics.Counter(
    name="commsrisk_messages_total", documentation="Messages scored or rejected.", labelnames=["outcome"]
)
feedback_counter = bentoml.metrics.Counter(
    name="commsrisk_feedback_total",
    documentation="Reviewer decisions received: stored, or already stored (duplicate).",
    labelnames=["outcome"],
)
pass_histogram = bentoml.metrics.Histogram(
    name="commsrisk_score_pass_messages",
    documentation="Messages per Scorer pass of batched /score requests (service.batch_max_size).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
review_counter = bentoml.metrics.Counter(
    name="commsrisk_review_decisions_total",
    documentation="Stored reviewer decisions on flagged risks (the seen score at or over the unit's threshold in "
    "force when the decision arrives), per risk: confirmed (labeled 1) or rejected (labeled 0).",
    labelnames=["risk", "outcome"],
)


def count_reviewed_flags(decisions: list[ReviewDecision], result: AppendResult, policy: ThresholdPolicy) -> None:
    """Count the newly stored decisions on flagged risks; the labels stay bounded (RISKS x two outcomes)."""
    fresh = set(result.accepted_ids)
    for decision_id, decision in zip(result.decision_ids, decisions, strict=True):
        if decision_id not in fresh or decision.seen is None:
            continue
        fresh.discard(decision_id)  # the same decision twice in a batch is stored, and counted, once
        thresholds, _ = policy.for_unit(decision.business_unit)
        for risk, label in decision.labels.reviewed().items():
            score = decision.seen.scores.get(risk)  # type: ignore[call-overload]
            if score is not None and score >= thresholds[risk]:
                review_counter.labels(risk=risk, outcome="confirmed" if label else "rejected").inc()


def error_response(error: CommsriskError, ctx: bentoml.Context) -> JSONResponse:
    """The one place where commsrisk errors become HTTP answers: the status it maps to, its message.

    Returned rather than raised: BentoML replaces the message of a raised 403 or 5xx with a
    generic one, and a caller must learn which scope is missing or that the deadline passed.
    BentoML gives a returned response the context's status, so the status is set there.
    """
    status = error.http_status if error.http_status < 500 else 503
    ctx.response.status_code = status
    if status in (429, 503):
        ctx.response.headers["retry-after"] = "1" if status == 429 else "5"
    return JSONResponse({"error": str(error)}, status_code=status)


class BatchItemResult(BaseModel):
    """One message of a batch: its result, or why it was not scored."""

    index: int
    result: ScoreResult | None = None
    error: str | None = None


class ModelInfo(BaseModel):
    """The model in use."""

    model_version: str
    base_model: str | None
    trained_on: str | None
    risks: list[str]
    runtime: str = Field(..., description="The runtime that scores (torch-bf16 falls back to torch without bf16).")


class FeedbackReceipt(BaseModel):
    """What /feedback stored: committed before this answer, so a stored decision survives a crash."""

    accepted: int = Field(..., description="Decisions stored by this request.")
    duplicates: int = Field(..., description="Decisions the store already held (a retry): skipped.")
    decision_ids: list[str] = Field(..., description="The id of each decision sent, in order (given or derived).")


class ThresholdsInfo(BaseModel):
    """The thresholds policy in force."""

    version: str
    defaults: dict[str, float]
    business_units: dict[str, dict[str, float]]


async def _get_thresholds(request: Request) -> JSONResponse:
    key = getattr(request.state, "api_key", None)
    return JSONResponse(bentoml.get_current_service().thresholds_info(key).model_dump())


async def _get_model(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().model_info_response().model_dump())


async def _get_metrics(request: Request) -> Response:
    from bentoml._internal.configuration.containers import BentoMLContainer

    client = BentoMLContainer.metrics_client.get()
    content = await anyio.to_thread.run_sync(client.generate_latest)
    return Response(content, media_type=client.CONTENT_TYPE_LATEST)


info_app = Starlette(
    routes=[
        Route("/thresholds", _get_thresholds),
        Route("/model", _get_model),
        Route("/metrics", _get_metrics),
        Route("/", docs_page),
        Route("/docs", docs_page),
    ]
)
"""GET routes beside the API (BentoML API methods are POST only). /metrics is served here because
BentoML's own request metrics are off (their path labels grow with every random 404)."""


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    name="commsrisk",
    workers=1,
    traffic={"timeout": 120, "max_concurrency": 64},
    metrics={"enabled": False},
)
class CommsriskService:
    """Score messages for leakage, misconduct and off-channel risk, with evidence."""

    if BENTO_MODEL_TAGS:  # the models `bentoml build` packs; a served Bento loads them from its store, by tag
        encoder_model = bentoml.models.BentoModel(BENTO_MODEL_TAGS[0])
        classifier_model = bentoml.models.BentoModel(BENTO_MODEL_TAGS[1])

    def __init__(self) -> None:
        from commsrisk.scoring import build_scorer
        from commsrisk.thresholds.store import PolicyWatcher

        install_log_redaction()
        settings = Settings.load()
        install_json_logging(settings.log_level)
        if settings.service.malloc_arena_max:
            limit_malloc_arenas(settings.service.malloc_arena_max)
        try:
            self.settings = self._bento_settings(settings)
            self.reviews = ReviewStore.open(self.settings.reviews)
            self.policy = PolicyWatcher(self.settings.thresholds)
            # every language before the server is ready: no request waits for one to load
            self.scorer = build_scorer(self.settings, policy=self.policy.current, every_language=True)
        except CommsriskError as error:
            refuse_to_start(error)
        self.model_metadata = dict(getattr(self.scorer.classifier, "metadata", {}))
        self.in_flight = InFlight(self.settings.service.max_in_flight)
        service = self.settings.service
        self.batcher = (
            ScoreBatcher(
                self._score_alike, service.batch_max_size, service.request_deadline_s, on_pass=pass_histogram.observe
            )
            if service.batch_max_size > 1
            else None
        )
        self._overloaded = False
        logger.info(
            "service ready",
            extra={"model_version": self.scorer.model_version, "thresholds_version": self.policy.current().version},
        )

    def __is_ready__(self) -> bool:
        """Readiness (/readyz): not while overloaded, so a balancer sends traffic elsewhere."""
        reason = self.in_flight.overload()
        if (reason is not None) != self._overloaded:
            self._overloaded = reason is not None
            if reason:
                logger.warning("not ready: overloaded", extra={"reason": reason})
            else:
                logger.info("ready again")
        return reason is None

    def _bento_settings(self, settings: Settings) -> Settings:
        """Served from a Bento: the encoder and classifier of its model store; else the settings' own."""
        if CommsriskService.bento is None:
            return settings
        if not BENTO_MODEL_TAGS:
            raise missing_model_error(f"{ENCODER_MODEL} or {CLASSIFIER_MODEL}")
        encoder, classifier = self.encoder_model, self.classifier_model
        logger.info("models from the Bento's store: encoder=%s classifier=%s", encoder.tag, classifier.tag)
        return settings_for_bento(settings, Path(encoder.path), Path(classifier.path))

    def _score_alike(
        self, messages: list[Message], show_values: bool, explain: Explain, stop: Callable[[], None]
    ) -> list[ScoreResult]:
        """One Scorer pass over messages that ask for the same things (the batcher's and /score_batch's)."""
        return self.scorer.score_batch(messages, show_values=show_values, explain=explain, stop=stop)

    def _score(
        self,
        messages: list[Message],
        show_values: bool,
        explain: Explain | None,
        budget: RequestBudget,
        caller: ApiKey | None,
    ) -> list[ScoreResult]:
        started = time.perf_counter()
        try:
            results = self._score_alike(messages, show_values, explain or self.settings.service.explain, budget.check)
        except CommsriskError:
            self._log_not_scored(budget, len(messages))
            raise
        self._count_and_log(results, budget, caller, started)
        return results

    async def _score_one(
        self, message: Message, show_values: bool, explain: Explain | None, budget: RequestBudget, caller: ApiKey | None
    ) -> ScoreResult:
        """One message: in the batcher's next pass with concurrent requests, or on its own when batching is off."""
        if self.batcher is None:
            return (await anyio.to_thread.run_sync(self._score, [message], show_values, explain, budget, caller))[0]
        started = time.perf_counter()
        job = ScoreJob(message, show_values, explain or self.settings.service.explain, budget)
        try:
            result, pass_messages = await self.batcher.score(job)
        except CommsriskError:
            self._log_not_scored(budget, 1)
            raise
        self._count_and_log([result], budget, caller, started, pass_messages)
        return result

    def _log_not_scored(self, budget: RequestBudget, messages: int) -> None:
        logger.warning(
            "request not scored",
            extra={"request_id": budget.request_id, "messages": messages, "elapsed_s": budget.elapsed_s()},
            exc_info=False,
        )

    def _count_and_log(
        self,
        results: list[ScoreResult],
        budget: RequestBudget,
        caller: ApiKey | None,
        started: float,
        pass_messages: int | None = None,
    ) -> None:
        """Flag and message counters, and one log line per request: ids and counts, never text."""
        for result in results:
            for risk, decision in result.risks.items():
                if decision.flagged:
                    flag_counter.labels(risk=risk).inc()
        message_counter.labels(outcome="scored").inc(len(results))
        logger.info(
            "scored",
            extra={
                "request_id": budget.request_id,
                "caller": caller.name if caller else None,
                "messages": len(results),
                "pass_messages": pass_messages or len(results),
                "ids": [r.message_id for r in results[:20] if r.message_id],
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "flags": {risk: sum(r.risks[risk].flagged for r in results) for risk in RISKS},
                "model_version": self.scorer.model_version,
                "thresholds_version": results[0].thresholds_version if results else None,
            },
        )

    async def _admitted(self, ctx: bentoml.Context, work: Callable[[RequestBudget], Awaitable[T]]) -> T:
        """Run `work` once admitted, under the request's budget; a client that leaves cancels it."""
        budget = RequestBudget(self.settings.service.request_deadline_s, _request_id(ctx))
        watcher = asyncio.create_task(_cancel_on_disconnect(ctx.request, budget))
        try:
            async with self.in_flight.admitted(budget, self.settings.service.queue_wait_s):
                return await work(budget)
        finally:
            watcher.cancel()

    def _check_access(
        self, message: Message, show_pii_values: bool, caller: ApiKey | None, policy: ThresholdPolicy
    ) -> None:
        """Raise when the caller may not score `message` so (scope, business unit) or the policy refuses its unit."""
        if caller is not None and show_pii_values and not caller.allows("pii:reveal"):
            raise AccessDeniedError(f"show_pii_values: API key '{caller.name}' lacks the 'pii:reveal' scope")
        if caller is not None and not caller.allows_unit(message.business_unit):
            raise AccessDeniedError(
                f"message.business_unit: API key '{caller.name}' may not score for '{message.business_unit}'"
            )
        if not policy.accepts_unit(message.business_unit):
            raise InvalidInputError(
                f"message.business_unit: '{message.business_unit}' is not a business unit of thresholds version "
                f"{policy.version}, which rejects unknown units (unknown_business_units)"
            )

    @bentoml.api(route="/score")
    async def score(
        self,
        message: Annotated[Message, Field(examples=[EXAMPLE_MESSAGE.model_dump(exclude_none=True)])],
        ctx: bentoml.Context,
        show_pii_values: bool = False,
        explain: Annotated[Explain | None, Field(description=EXPLAIN_HELP)] = None,
    ) -> ScoreResult:
        """Score one message: per-risk score, flag, threshold and evidence."""
        caller = _caller(ctx)
        try:
            self._check_length(message)
            self._check_access(message, show_pii_values, caller, self.policy.current())
            result = await self._admitted(
                ctx, lambda budget: self._score_one(message, show_pii_values, explain, budget, caller)
            )
        except CommsriskError as error:
            return error_response(error, ctx)  # type: ignore[return-value]
        return JSONResponse(result.model_dump(mode="json", exclude_none=True))  # type: ignore[return-value]

    @bentoml.api(route="/score_batch")
    async def score_batch(
        self,
        messages: Annotated[
            list[dict[str, Any]],
            Field(
                min_length=1,
                max_length=DEFAULT_LIMITS.max_batch_size,
                description="Messages in the Message schema of /score; each is validated on its own.",
                examples=[[EXAMPLE_MESSAGE.model_dump(exclude_none=True)]],
            ),
        ],
        ctx: bentoml.Context,
        show_pii_values: bool = False,
        explain: Annotated[Explain | None, Field(description=EXPLAIN_HELP)] = None,
    ) -> list[BatchItemResult]:
        """Score up to the batch limit; an invalid message gets its own error, the others still score."""
        try:
            return await self._score_batch(messages, ctx, show_pii_values, explain)  # type: ignore[return-value]
        except CommsriskError as error:
            return error_response(error, ctx)  # type: ignore[return-value]

    async def _score_batch(
        self, messages: list[dict[str, Any]], ctx: bentoml.Context, show_pii_values: bool, explain: Explain | None
    ) -> JSONResponse:
        limits = self.settings.limits
        if len(messages) > limits.max_batch_size:
            raise InvalidInputError(
                f"messages: {len(messages)} messages, over the batch limit of {limits.max_batch_size}"
            )
        chars = sum(len(raw["text"]) for raw in messages if isinstance(raw, dict) and isinstance(raw.get("text"), str))
        if chars > limits.max_batch_chars:
            raise PayloadTooLargeError(
                f"messages: {chars} characters of text in all, over the limit of {limits.max_batch_chars} "
                "per request (limits.max_batch_chars); split the batch"
            )
        caller = _caller(ctx)
        if caller is not None and show_pii_values and not caller.allows("pii:reveal"):
            raise AccessDeniedError(f"show_pii_values: API key '{caller.name}' lacks the 'pii:reveal' scope")
        policy = self.policy.current()
        items: list[BatchItemResult] = []
        valid: list[tuple[int, Message]] = []
        for index, raw in enumerate(messages):
            try:
                message = Message.model_validate(raw, context={"limits": limits})
                self._check_access(message, show_pii_values, caller, policy)
                valid.append((index, message))
            except ValidationError as error:
                items.append(BatchItemResult(index=index, error=describe_validation_error(error)))
            except CommsriskError as error:
                items.append(BatchItemResult(index=index, error=str(error)))
        if len(items):
            message_counter.labels(outcome="rejected").inc(len(items))
        results = (
            await self._admitted(
                ctx,
                lambda budget: anyio.to_thread.run_sync(
                    self._score, [m for _, m in valid], show_pii_values, explain, budget, caller
                ),
            )
            if valid
            else []
        )
        items += [BatchItemResult(index=i, result=r) for (i, _), r in zip(valid, results, strict=True)]
        ordered = sorted(items, key=lambda item: item.index)
        return JSONResponse([item.model_dump(mode="json", exclude_none=True) for item in ordered])

    @bentoml.api(route="/feedback")
    async def feedback(
        self,
        decision: Annotated[ReviewDecision, Field(examples=[EXAMPLE_DECISION])],
        ctx: bentoml.Context,
    ) -> FeedbackReceipt:
        """Store one reviewer's decision on a message; committed before the answer. A decision sent again is skipped."""
        try:
            return await self._store_feedback([decision], ctx, single=True)  # type: ignore[return-value]
        except CommsriskError as error:
            return error_response(error, ctx)  # type: ignore[return-value]

    @bentoml.api(route="/feedback_batch")
    async def feedback_batch(
        self,
        decisions: Annotated[
            list[ReviewDecision],
            Field(
                min_length=1,
                max_length=DEFAULT_LIMITS.max_batch_size,
                description="Decisions in the schema of /feedback; one invalid decision rejects the batch.",
                examples=[[EXAMPLE_DECISION]],
            ),
        ],
        ctx: bentoml.Context,
    ) -> FeedbackReceipt:
        """Store a batch of decisions in one transaction: all of them, or none when any is refused."""
        try:
            return await self._store_feedback(decisions, ctx, single=False)  # type: ignore[return-value]
        except CommsriskError as error:
            return error_response(error, ctx)  # type: ignore[return-value]

    async def _store_feedback(
        self, decisions: list[ReviewDecision], ctx: bentoml.Context, single: bool
    ) -> JSONResponse:
        """Check the decisions against the limits and the caller's units, then store them in one transaction."""
        limits = self.settings.limits
        if len(decisions) > limits.max_batch_size:
            raise InvalidInputError(
                f"decisions: {len(decisions)} decisions, over the batch limit of {limits.max_batch_size}"
            )
        chars = sum(len(decision.text) for decision in decisions)
        if chars > limits.max_batch_chars:
            raise PayloadTooLargeError(
                f"decisions: {chars} characters of text in all, over the limit of {limits.max_batch_chars} "
                "per request (limits.max_batch_chars); split the batch"
            )
        caller = _caller(ctx)
        for index, decision in enumerate(decisions):
            where = "decision" if single else f"decisions.{index}"
            if len(decision.text) > limits.max_text_chars:
                raise InvalidInputError(
                    f"{where}.text: {len(decision.text)} characters, over the limit of {limits.max_text_chars}"
                )
            problem = invalid_unicode(decision.model_dump(include={"text", "reviewer", "reason"}))
            if problem:
                raise InvalidInputError(f"{where}: {problem}")
            if caller is not None and not caller.allows_unit(decision.business_unit):
                raise AccessDeniedError(
                    f"{where}.business_unit: API key '{caller.name}' may not send feedback for "
                    f"'{decision.business_unit}'"
                )
        source = f"api:{caller.name}" if caller else "api"
        result = await anyio.to_thread.run_sync(lambda: self.reviews.append(decisions, source=source))
        feedback_counter.labels(outcome="stored").inc(result.accepted)
        feedback_counter.labels(outcome="duplicate").inc(result.duplicates)
        count_reviewed_flags(decisions, result, self.policy.current())
        logger.info(
            "feedback stored",
            extra={
                "request_id": _request_id(ctx),
                "caller": caller.name if caller else None,
                "decisions": len(decisions),
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "ids": [decision.message_id for decision in decisions[:20]],
            },
        )
        receipt = FeedbackReceipt(
            accepted=result.accepted, duplicates=result.duplicates, decision_ids=result.decision_ids
        )
        return JSONResponse(receipt.model_dump())

    def thresholds_info(self, caller: ApiKey | None = None) -> ThresholdsInfo:
        """The thresholds policy in force (reloaded when its file changes), only the caller's units if restricted."""
        policy = self.policy.current()
        units = policy.business_units
        if caller is not None and caller.business_units is not None:
            units = {unit: values for unit, values in units.items() if unit in caller.business_units}
        return ThresholdsInfo(version=policy.version, defaults=policy.defaults, business_units=units)

    def model_info_response(self) -> ModelInfo:
        """The classifier version in use."""
        metadata = self.model_metadata
        return ModelInfo(
            model_version=self.scorer.model_version,
            base_model=metadata.get("base_model"),
            trained_on=metadata.get("data_digest"),
            risks=list(RISKS),
            runtime=self.scorer.classifier.runtime_name,
        )

    def _check_length(self, message: Message) -> None:
        limit = self.settings.limits.max_text_chars
        if len(message.text) > limit:
            raise InvalidInputError(f"message.text: {len(message.text)} characters, over the limit of {limit}")


def _caller(ctx: bentoml.Context) -> ApiKey | None:
    """The API key the access middleware matched for this request (None when keys are off)."""
    return getattr(ctx.request.state, "api_key", None)


async def _cancel_on_disconnect(request: Request, budget: RequestBudget) -> None:
    """Cancel the budget as soon as the client goes away (polled: ASGI has no disconnect callback)."""
    while True:
        if await request.is_disconnected():
            budget.cancel("the client disconnected")
            logger.info("client disconnected, scoring stopped", extra={"request_id": budget.request_id})
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


def _request_id(ctx: bentoml.Context | None) -> str:
    if ctx is not None:
        header = ctx.request.headers.get("x-request-id")
        if header:
            return header[:64]
    return uuid.uuid4().hex[:16]


CommsriskService.add_asgi_middleware(RequestMetricsMiddleware)  # the first added is the outermost
CommsriskService.add_asgi_middleware(SecurityHeadersMiddleware)
CommsriskService.add_asgi_middleware(ValidationErrorShapeMiddleware)
CommsriskService.add_asgi_middleware(JsonOnlyMiddleware)
CommsriskService.add_asgi_middleware(BodySizeLimitMiddleware)
CommsriskService.add_asgi_middleware(AccessMiddleware)
