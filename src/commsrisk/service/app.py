"""The HTTP service (BentoML): a thin shell that maps requests to `Scorer` calls.

`bentoml serve commsrisk.service.app:CommsriskService` (or `commsrisk serve`) loads the Scorer once
per worker: NLP pipelines, classifier, combiner, and the thresholds policy (re-read when its file
changes). Batches go through `Scorer.score_batch`: one code path for one message and many.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any

import bentoml
from bentoml.exceptions import BentoMLException, InvalidArgument
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from commsrisk.errors import CommsriskError
from commsrisk.schema import (
    DEFAULT_LIMITS,
    RISKS,
    Explain,
    Message,
    ScoreResult,
    describe_validation_error,
)
from commsrisk.service.middleware import (
    ApiKeyMiddleware,
    BodySizeLimitMiddleware,
    JsonOnlyMiddleware,
    ValidationErrorShapeMiddleware,
    install_log_redaction,
)
from commsrisk.settings import Settings

logger = logging.getLogger("commsrisk.service")

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
flag_counter = bentoml.metrics.Counter(
    name="commsrisk_flags_total", documentation="Messages flagged, per risk.", labelnames=["risk"]
)
message_counter = bentoml.metrics.Counter(
    name="commsrisk_messages_total", documentation="Messages scored or rejected.", labelnames=["outcome"]
)


class ServiceError(BentoMLException):
    """A commsrisk error mapped to its HTTP status (never 401/403/5xx-reserved codes)."""


def to_http_error(error: CommsriskError) -> BentoMLException:
    """The one place where commsrisk errors become HTTP errors."""
    from http import HTTPStatus

    status = error.http_status if error.http_status < 500 else 503
    return ServiceError(str(error), error_code=HTTPStatus(status))


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


class ThresholdsInfo(BaseModel):
    """The thresholds policy in force."""

    version: str
    defaults: dict[str, float]
    business_units: dict[str, dict[str, float]]


async def _get_thresholds(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().thresholds_info().model_dump())


async def _get_model(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().model_info_response().model_dump())


info_app = Starlette(routes=[Route("/thresholds", _get_thresholds), Route("/model", _get_model)])
"""GET /thresholds and GET /model (BentoML API methods are POST only)."""


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    name="commsrisk",
    workers=1,
    traffic={"timeout": 120, "max_concurrency": 64},
)
class CommsriskService:
    """Score messages for leakage, misconduct and off-channel risk, with evidence."""

    def __init__(self) -> None:
        from commsrisk.scoring import build_scorer
        from commsrisk.thresholds.store import PolicyWatcher

        install_log_redaction()
        self.settings = Settings.load()
        self.policy = PolicyWatcher(self.settings.thresholds)
        self.scorer = build_scorer(self.settings, policy=self.policy.current)
        self.model_metadata = dict(getattr(self.scorer.classifier, "metadata", {}))
        logger.info("commsrisk service ready: model=%s", self.scorer.model_version)

    def _score(
        self, messages: list[Message], show_values: bool, explain: Explain | None, request_id: str
    ) -> list[ScoreResult]:
        started = time.perf_counter()
        try:
            results = self.scorer.score_batch(
                messages, show_values=show_values, explain=explain or self.settings.service.explain
            )
        except CommsriskError as error:
            raise to_http_error(error) from error
        for result in results:
            for risk, decision in result.risks.items():
                if decision.flagged:
                    flag_counter.labels(risk=risk).inc()
        message_counter.labels(outcome="scored").inc(len(results))
        logger.info(
            "request=%s messages=%d ids=%s latency_ms=%.1f flags=%s",
            request_id,
            len(results),
            ",".join(r.message_id or "-" for r in results[:20]),
            (time.perf_counter() - started) * 1000,
            {risk: sum(r.risks[risk].flagged for r in results) for risk in RISKS},
        )
        return results

    @bentoml.api(route="/score")
    def score(
        self,
        message: Annotated[Message, Field(examples=[EXAMPLE_MESSAGE.model_dump(exclude_none=True)])],
        ctx: bentoml.Context,
        show_pii_values: bool = False,
        explain: Annotated[Explain | None, Field(description=EXPLAIN_HELP)] = None,
    ) -> ScoreResult:
        """Score one message: per-risk score, flag, threshold and evidence."""
        self._check_length(message)
        result = self._score([message], show_pii_values, explain, _request_id(ctx))[0]
        return JSONResponse(result.model_dump(mode="json", exclude_none=True))  # type: ignore[return-value]

    @bentoml.api(route="/score_batch")
    def score_batch(
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
        limit = self.settings.limits.max_batch_size
        if len(messages) > limit:
            raise InvalidArgument(f"messages: {len(messages)} messages, over the batch limit of {limit}")
        items: list[BatchItemResult] = []
        valid: list[tuple[int, Message]] = []
        for index, raw in enumerate(messages):
            try:
                valid.append((index, Message.model_validate(raw, context={"limits": self.settings.limits})))
            except ValidationError as error:
                items.append(BatchItemResult(index=index, error=describe_validation_error(error)))
        if len(items):
            message_counter.labels(outcome="rejected").inc(len(items))
        results = self._score([m for _, m in valid], show_pii_values, explain, _request_id(ctx)) if valid else []
        items += [BatchItemResult(index=i, result=r) for (i, _), r in zip(valid, results, strict=True)]
        ordered = sorted(items, key=lambda item: item.index)
        return JSONResponse([item.model_dump(mode="json", exclude_none=True) for item in ordered])  # type: ignore[return-value]

    def thresholds_info(self) -> ThresholdsInfo:
        """The thresholds policy in force (reloaded when the policy file changes)."""
        policy = self.policy.current()
        return ThresholdsInfo(version=policy.version, defaults=policy.defaults, business_units=policy.business_units)

    def model_info_response(self) -> ModelInfo:
        """The classifier version in use."""
        metadata = self.model_metadata
        return ModelInfo(
            model_version=self.scorer.model_version,
            base_model=metadata.get("base_model"),
            trained_on=metadata.get("data_digest"),
            risks=list(RISKS),
        )

    def _check_length(self, message: Message) -> None:
        limit = self.settings.limits.max_text_chars
        if len(message.text) > limit:
            raise InvalidArgument(f"message.text: {len(message.text)} characters, over the limit of {limit}")


def _request_id(ctx: bentoml.Context | None) -> str:
    if ctx is not None:
        header = ctx.request.headers.get("x-request-id")
        if header:
            return header[:64]
    return uuid.uuid4().hex[:16]


CommsriskService.add_asgi_middleware(ValidationErrorShapeMiddleware)
CommsriskService.add_asgi_middleware(JsonOnlyMiddleware)
CommsriskService.add_asgi_middleware(BodySizeLimitMiddleware)
CommsriskService.add_asgi_middleware(ApiKeyMiddleware)
