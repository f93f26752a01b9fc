"""The HTTP service (BentoML): a thin shell that maps requests to `Scorer` calls.

Two services: `RiskClassifierService` holds the transformer and batches concurrent calls
(adaptive batching); `CommsriskService` holds the NLP pipelines, the combiner and the thresholds,
and serves the public API. `bentoml serve commsrisk.service:CommsriskService` starts both.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
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
    EvidenceSpan,
    Message,
    ScoreResult,
    describe_validation_error,
)
from commsrisk.service_middleware import ApiKeyMiddleware, BodySizeLimitMiddleware
from commsrisk.settings import Settings

logger = logging.getLogger("commsrisk.service")

EXAMPLE_MESSAGE = Message(
    text="Let's move this to my personal WhatsApp, the desk line is recorded.",
    message_id="example-1",
    business_unit="equities-trading",
    channel="teams",
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


@bentoml.service(name="commsrisk-classifier", workers=1, traffic={"timeout": 120})
class RiskClassifierService:
    """The fine-tuned transformer, loaded once; concurrent calls are batched together."""

    def __init__(self) -> None:
        from commsrisk.classifier.model import load_classifier
        from commsrisk.scoring import resolve_classifier_location

        settings = Settings.load()
        self.location = resolve_classifier_location(settings)
        self.classifier = load_classifier(
            self.location, max_length=settings.model.max_length, batch_size=settings.model.batch_size
        )

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=200)
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(risk) per text (adaptive batching merges concurrent calls)."""
        return self.classifier.predict_proba(texts)

    @bentoml.api
    def explain(self, text: str, risks: list[str]) -> dict[str, list[EvidenceSpan]]:
        """Phrases behind each named risk for one text."""
        return self.classifier.explain(text, risks)

    @bentoml.api
    def info(self) -> dict[str, Any]:
        """Version and metadata of the loaded classifier."""
        return {
            "version": self.classifier.version,
            "location": self.location,
            "local_dir": str(self.classifier.local_dir) if self.classifier.local_dir else None,
            "metadata": {k: v for k, v in self.classifier.metadata.items() if isinstance(v, (str, int, float))},
        }


class RemoteClassifier:
    """The Scorer's classifier, served by RiskClassifierService (so its calls batch)."""

    def __init__(self, client: Any, version: str) -> None:
        self.client = client
        self.version = version

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(risk) for the texts, from the classifier service."""
        if not texts:
            return np.zeros((0, len(RISKS)))
        return np.asarray(self.client.predict_proba(list(texts)), dtype=np.float64)

    def explain(self, text: str, risks: Sequence[str]) -> dict[str, list[EvidenceSpan]]:
        """Phrases behind each risk, from the classifier service."""
        if not risks:
            return {}
        spans = self.client.explain(text=text, risks=list(risks))
        return {risk: [EvidenceSpan.model_validate(s) for s in items] for risk, items in spans.items()}


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
    envs=[{"name": "COMMSRISK_API_KEY"}, {"name": "MLFLOW_TRACKING_URI"}, {"name": "COMMSRISK_CONFIG"}],
)
class CommsriskService:
    """Score messages for leakage, misconduct and off-channel risk, with evidence."""

    classifier_service = bentoml.depends(RiskClassifierService)

    def __init__(self) -> None:
        from commsrisk.combiner import RiskCombiner
        from commsrisk.nlp.text_analyzer import build_text_analyzer
        from commsrisk.scoring import Scorer
        from commsrisk.thresholds_store import PolicyWatcher

        self.settings = Settings.load()
        info = self.classifier_service.info()
        self.model_info = info
        if not info.get("local_dir"):
            raise CommsriskError(f"classifier at {info['location']} has no local folder with a combiner")
        self.policy = PolicyWatcher(self.settings.thresholds)
        self.scorer = Scorer(
            analyzer=build_text_analyzer(self.settings.nlp),
            classifier=RemoteClassifier(self.classifier_service, info["version"]),
            combiner=RiskCombiner.load(Path(info["local_dir"])),
            policy=self.policy.current,
            model_version=info["version"],
        )
        logger.info("commsrisk service ready: model=%s", info["version"])

    def _score(self, messages: list[Message], show_values: bool, request_id: str) -> list[ScoreResult]:
        started = time.perf_counter()
        try:
            results = self.scorer.score_batch(messages, show_values=show_values)
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
        show_pii_values: bool = False,
        ctx: bentoml.Context | None = None,
    ) -> ScoreResult:
        """Score one message: per-risk score, flag, threshold and evidence."""
        self._check_length(message)
        return self._score([message], show_pii_values, _request_id(ctx))[0]

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
        show_pii_values: bool = False,
        ctx: bentoml.Context | None = None,
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
        results = self._score([m for _, m in valid], show_pii_values, _request_id(ctx)) if valid else []
        items += [BatchItemResult(index=i, result=r) for (i, _), r in zip(valid, results, strict=True)]
        return sorted(items, key=lambda item: item.index)

    def thresholds_info(self) -> ThresholdsInfo:
        """The thresholds policy in force (reloaded when the policy file changes)."""
        policy = self.policy.current()
        return ThresholdsInfo(version=policy.version, defaults=policy.defaults, business_units=policy.business_units)

    def model_info_response(self) -> ModelInfo:
        """The classifier version in use."""
        metadata = self.model_info.get("metadata", {})
        return ModelInfo(
            model_version=self.model_info["version"],
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


CommsriskService.add_asgi_middleware(BodySizeLimitMiddleware)
CommsriskService.add_asgi_middleware(ApiKeyMiddleware)
