"""The Scorer: language -> nlp (PII, entities) -> classify -> score -> decide -> explain.

One code path for one message and for a million: `score` is `score_batch` of one.
`build_scorer(settings)` is the only place that loads models.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from commsrisk.classifier.model import load_classifier
from commsrisk.classifier.ngram import CharNgramClassifier
from commsrisk.combiner import RiskCombiner
from commsrisk.errors import ModelNotAvailableError
from commsrisk.explain import explain_batch
from commsrisk.ingest.messages import MessageLine
from commsrisk.schema import (
    RISKS,
    EntityFinding,
    EvidenceSpan,
    Explain,
    Message,
    PiiFinding,
    RiskDecision,
    RiskExplanation,
    ScoreResult,
    Signal,
)
from commsrisk.settings import Settings
from commsrisk.signals import Evidence, pii_group
from commsrisk.thresholds.policy import Decision, ThresholdPolicy, decide, model_mismatch

logger = logging.getLogger(__name__)

MAX_SIGNALS = 5
SCORED_FIELDS: tuple[str, ...] = ("text", "lang", "business_unit", "channel", "external")
"""The Message fields a result depends on; the others (id, sender, time, ...) only travel with it.

Two messages equal in these fields get the same scores, decisions and evidence, which lets an
archive run score repeated messages once (`archives.runner`).
"""

_CLASSIFY_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="commsrisk-classify")
"""Runs a batch's classifier pass while the NLP step parses the same batch. The forward pass runs
in a worker process by default (model.worker_process), so the two overlap on two cores; in this
process they would mostly take turns on the GIL (benchmarks/run.py measures both)."""

WORK_UNIT_CHARS = 20_000
WORK_UNIT_MESSAGES = 64
"""The NLP step and the classifier take a batch in pieces of about this much text, so a stop check comes often."""


def _go_on() -> None:
    """The stop check of a call that nobody abandons."""


def _pieces(texts: Sequence[str], max_chars: int, max_items: int) -> Iterator[list[int]]:
    """Indices of `texts` in consecutive pieces of at most `max_items`, cut once `max_chars` is reached."""
    piece: list[int] = []
    chars = 0
    for index, text in enumerate(texts):
        piece.append(index)
        chars += len(text)
        if chars >= max_chars or len(piece) >= max_items:
            yield piece
            piece, chars = [], 0
    if piece:
        yield piece


class TextAnalyzerLike(Protocol):
    """The nlp step: one parse per message giving language, PII and entities."""

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str | None]) -> Sequence[Any]:
        """One analysis (language, languages, pii, entities) per text, in order."""
        ...


class ProbabilityModel(Protocol):
    """The classify step: P(risk) per text."""

    version: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), len(RISKS))."""
        ...


PolicySource = Callable[[], ThresholdPolicy]
PhraseExplainer = Callable[[Sequence[tuple[str, Sequence[str]]]], list[dict[str, list[EvidenceSpan]]]]
"""The explain step: (text, flagged risks) asks -> the phrases behind each risk's score, per ask."""


def mask_value(value: str) -> str:
    """Mask a PII value, keeping at most its last 4 characters (as card slips do)."""
    keep = 4 if len(value) >= 10 else 0
    return "*" * (len(value) - keep) + value[len(value) - keep :]


@dataclass
class Scorer:
    """Scores messages with the models and policy it was given."""

    analyzer: TextAnalyzerLike
    classifier: ProbabilityModel
    combiner: RiskCombiner
    policy: PolicySource
    model_version: str
    explainer: PhraseExplainer | None = None
    """Finds the phrases behind flagged risks; without one, explanations are signals only."""
    explain: Explain = "phrases"
    """The explanation a call gets unless it asks otherwise: 'signals', or 'phrases' too."""
    ngram: CharNgramClassifier | None = None
    """The character n-gram classifier of a stacked model (its log-odds are a combiner signal)."""

    _warned: set[tuple[str, str | None]] = field(default_factory=set, repr=False)

    def model_names(self) -> set[str]:
        """Every name this model goes by: the version results carry and the trained model's own."""
        metadata = getattr(self.classifier, "metadata", {}) or {}
        return {self.model_version, *([str(metadata["version"])] if "version" in metadata else [])}

    def score(self, message: Message, *, show_values: bool = False, explain: Explain | None = None) -> ScoreResult:
        """Score one message."""
        return self.score_batch([message], show_values=show_values, explain=explain)[0]

    def score_batch(
        self,
        messages: Sequence[Message],
        *,
        show_values: bool = False,
        explain: Explain | None = None,
        stop: Callable[[], None] | None = None,
    ) -> list[ScoreResult]:
        """Score messages in bulk: one spaCy pipe, batched Presidio, padded classifier batches.

        `explain` ('signals' or 'phrases', default the Scorer's own) decides whether flagged risks
        also get the phrases behind them (explain.explain_batch: a forward pass per batch of flagged messages).
        `stop`, when given, is called between pieces of work (about WORK_UNIT_CHARS of text through
        the NLP step, a classifier batch, a batch of phrase explanations) and raises to abandon the batch:
        the service's deadline and client disconnects end work nobody waits for.
        """
        if not messages:
            return []
        check = stop or _go_on
        texts = [m.text for m in messages]
        langs = [m.lang for m in messages]
        analyses: list[Any] = []
        abandoned = threading.Event()
        classified = _CLASSIFY_POOL.submit(self._classify, texts, check, abandoned)
        sharing = getattr(self.classifier, "sharing_cores", nullcontext)
        try:
            with sharing():
                for piece in _pieces(texts, WORK_UNIT_CHARS, WORK_UNIT_MESSAGES):
                    check()
                    analyses.extend(self.analyzer.analyze_batch([texts[i] for i in piece], [langs[i] for i in piece]))
        except BaseException:
            abandoned.set()  # the classifier stops after its current piece: no work outlives the call
            if not classified.cancel():  # not yet started: nothing to wait for
                wait([classified])
            raise
        probabilities = classified.result()
        check()
        ngram = self.ngram.predict_proba(texts) if self.ngram is not None else [None] * len(texts)
        evidence = [
            Evidence(
                message=m,
                probabilities=tuple(map(float, p)),
                pii=list(a.pii),
                language=a.language,
                ngram_probabilities=None if g is None else tuple(map(float, g)),
            )
            for m, p, g, a in zip(messages, probabilities, ngram, analyses, strict=True)
        ]
        contributions, features = self.combiner.contributions(evidence)
        scores = self.combiner.probabilities(contributions)
        baseline = self.combiner.baseline
        policy = self.policy()
        mismatch = model_mismatch(policy, self.model_names())
        if mismatch and (policy.version, policy.tuned_for) not in self._warned:
            self._warned.add((policy.version, policy.tuned_for))
            logger.warning("%s", mismatch)
        score_maps = [{risk: float(row[j]) for j, risk in enumerate(RISKS)} for row in scores]
        decisions = [decide(policy, m.business_unit, s) for m, s in zip(messages, score_maps, strict=True)]
        flagged = [[risk for risk in RISKS if d.flags[risk]] for d in decisions]
        phrases = self._phrases(texts, flagged, check) if (explain or self.explain) == "phrases" else {}
        results = [
            self._result(
                m,
                a,
                score_maps[i],
                decisions[i],
                contributions[i],
                features[i],
                baseline,
                policy,
                show_values,
                phrases.get(i, {}),
            )
            for i, (m, a) in enumerate(zip(messages, analyses, strict=True))
        ]
        if mismatch:
            for result in results:
                result.warnings.append(mismatch)
        logger.info(
            "scored %d messages, %d flagged, model=%s", len(results), sum(map(bool, flagged)), self.model_version
        )
        return results

    def _classify(self, texts: Sequence[str], check: Callable[[], None], abandoned: threading.Event) -> np.ndarray:
        """P(risk) per text, in pieces of similar length, between which `check` may stop the work.

        A piece holds at most two forward batches and WORK_UNIT_CHARS of text (long messages are
        scored as several windows), so a stopped call ends within a fraction of a second.
        """
        step = max(getattr(self.classifier, "batch_size", len(texts)), 1) * 2
        by_length = np.argsort([len(text) for text in texts], kind="stable")  # pieces pad like one call
        probabilities = np.zeros((len(texts), len(RISKS)))
        for piece in _pieces([texts[i] for i in by_length], WORK_UNIT_CHARS, step):
            if abandoned.is_set():
                break
            check()
            idx = by_length[piece]
            probabilities[idx] = self.classifier.predict_proba([texts[i] for i in idx])
        return probabilities

    def _phrases(
        self, texts: Sequence[str], flagged: Sequence[Sequence[str]], check: Callable[[], None]
    ) -> dict[int, dict[str, list[EvidenceSpan]]]:
        """The phrases behind each flagged message's flagged risks, by message index.

        Explained in pieces of the classifier's batch size, with a stop check before each, sorted
        by length as `_classify` does so each piece pads like one call.
        """
        if self.explainer is None:
            return {}
        asked = sorted((i for i, risks in enumerate(flagged) if risks), key=lambda i: len(texts[i]))
        step = max(getattr(self.classifier, "batch_size", len(asked)), 1)
        out: dict[int, dict[str, list[EvidenceSpan]]] = {}
        for piece in _pieces([texts[i] for i in asked], WORK_UNIT_CHARS, step):
            check()
            idx = [asked[k] for k in piece]
            out.update(zip(idx, self.explainer([(texts[i], flagged[i]) for i in idx]), strict=True))
        return out

    def _result(
        self,
        message: Message,
        analysis: Any,
        score_map: dict[str, float],
        decision: Decision,
        contributions: np.ndarray,
        features: np.ndarray,
        baseline: np.ndarray,
        policy: ThresholdPolicy,
        show_values: bool,
        phrases: dict[str, list[EvidenceSpan]],
    ) -> ScoreResult:
        pii = [self._pii(f, message.text, show_values) for f in analysis.pii]
        risks = {}
        for j, risk in enumerate(RISKS):
            signals = self._signals(contributions[j], features)
            spans = list(phrases.get(risk, []))
            if risk == "leakage":
                spans += [
                    EvidenceSpan(start=f.start, end=f.end, kind="pii", weight=round(f.score, 4), label=f.entity_type)
                    for f in analysis.pii
                    if pii_group(f.entity_type) not in (None, "person")
                ]
            risks[risk] = RiskDecision(
                score=score_map[risk],
                flagged=decision.flags[risk],
                threshold=decision.thresholds[risk],
                explanation=RiskExplanation(
                    summary=_summary(score_map[risk], decision.thresholds[risk], signals),
                    baseline=round(float(baseline[j]), 4),
                    signals=signals,
                    spans=spans,
                ),
            )
        return ScoreResult(
            message_id=message.message_id,
            language=analysis.language,
            languages=list(analysis.languages),
            business_unit=message.business_unit,
            thresholds_source="business_unit" if decision.unit_has_overrides else "default",
            risks=risks,
            pii=pii,
            entities=[_entity(e, message.text, show_values) for e in analysis.entities],
            model_version=self.model_version,
            thresholds_version=policy.version,
        )

    def _signals(self, contributions: np.ndarray, features: np.ndarray) -> list[Signal]:
        """The strongest signals behind one risk's score, largest |log-odds| first.

        An absent signal (value 0) adds nothing to the baseline, so it is never among them.
        """
        order = np.argsort(-np.abs(contributions))[:MAX_SIGNALS]
        names = self.combiner.feature_names
        return [
            Signal(name=names[k], value=round(float(features[k]), 4), contribution=round(float(contributions[k]), 4))
            for k in order
            if abs(contributions[k]) >= 0.05
        ]

    @staticmethod
    def _pii(finding: PiiFinding, text: str, show_values: bool) -> PiiFinding:
        value = text[finding.start : finding.end]
        return finding.model_copy(update={"value": value if show_values else mask_value(value)})


def _entity(entity: EntityFinding, text: str, show_values: bool) -> EntityFinding:
    return entity.model_copy(update={"text": text[entity.start : entity.end] if show_values else None})


def _summary(score: float, threshold: float, signals: list[Signal]) -> str:
    verdict = "flagged" if score >= threshold else "not flagged"
    drivers = ", ".join(f"{s.name} {s.contribution:+.2f}" for s in signals[:3]) or "no strong signal"
    return f"{verdict}: score {score:.2f} vs threshold {threshold:.2f}; main drivers (log-odds): {drivers}"


@dataclass(frozen=True)
class ScoredChunk:
    """One chunk of an input stream: results of its valid lines, in order, and its rejected lines."""

    results: list[ScoreResult]
    rejected: list[MessageLine]
    lines: int


def score_lines(
    scorer: Scorer,
    lines: Iterable[MessageLine],
    *,
    batch_size: int = 128,
    overrides: Mapping[str, str | None] | None = None,
    show_values: bool = False,
    explain: Explain | None = None,
) -> Iterator[ScoredChunk]:
    """Score a stream of input lines chunk by chunk; every line is scored or returned as rejected.

    `overrides` (e.g. a language or business unit given on the command line) replace those
    fields of every message; None values are ignored.
    """
    updates = {k: v for k, v in (overrides or {}).items() if v}
    iterator = iter(lines)
    while chunk := list(islice(iterator, batch_size)):
        rejected = [item for item in chunk if item.message is None]
        messages = [
            item.message.model_copy(update=updates) if updates else item.message
            for item in chunk
            if item.message is not None
        ]
        yield ScoredChunk(scorer.score_batch(messages, show_values=show_values, explain=explain), rejected, len(chunk))


def resolve_classifier_location(settings: Settings) -> str:
    """'auto' means the registry's production model if the local store has one, else models/default."""
    location = settings.model.classifier
    if location != "auto":
        return location
    uri = settings.tracking.resolved_uri()
    if uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).is_file():
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(uri)
        try:
            mlflow.MlflowClient().get_model_version_by_alias(settings.tracking.registered_model, "production")
            return f"models:/{settings.tracking.registered_model}@production"
        except MlflowException:
            pass
    return str(settings.model.default_dir)


def build_scorer(
    settings: Settings,
    *,
    policy: PolicySource | None = None,
    classifier_location: str | None = None,
    analyzer: TextAnalyzerLike | None = None,
    every_language: bool = False,
) -> Scorer:
    """Load every model named in `settings` and assemble the Scorer.

    A classifier worker process (model.worker_process) loads while this builds the NLP step, so
    the two start-ups overlap. `every_language` loads each language's spaCy pipeline now rather
    than with its first text (a server does, before it says it is ready).

    Raises:
        ModelNotAvailableError: the classifier, its combiner or the base model cannot be loaded.
    """
    from commsrisk.nlp.text_analyzer import build_text_analyzer
    from commsrisk.thresholds.store import policy_in_force

    if settings.model.onednn_primitive_cache is not None:  # read by oneDNN at its first kernel, so set it first
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(settings.model.onednn_primitive_cache))
    if settings.model.torch_threads:
        import torch

        torch.set_num_threads(settings.model.torch_threads)
    location = classifier_location or resolve_classifier_location(settings)
    classifier = load_classifier(
        location,
        base_model=settings.model.base_model,
        max_length=settings.model.max_length,
        batch_size=settings.model.batch_size,
        tail_tokens=settings.model.tail_tokens,
        window_tokens=settings.model.window_tokens,
        max_windows=settings.model.max_windows,
        tracking_uri=settings.tracking.resolved_uri(),
        registry_timeout_s=settings.tracking.registry_timeout_s,
        runtime=settings.model.runtime,
        onnx_cache_dir=settings.model.onnx_cache_dir,
        threads=settings.model.torch_threads,
        worker_process=settings.model.worker_process,
    )
    try:  # a worker process started by load_classifier ends with a failed build, not when collected
        if classifier.local_dir is None:
            raise ModelNotAvailableError(f"classifier at '{location}' is not a commsrisk model (no combiner.json)")
        try:
            combiner = RiskCombiner.load(classifier.local_dir)
            ngram = CharNgramClassifier.load(classifier.local_dir)
        except (ValueError, KeyError, TypeError, OSError) as err:  # json.JSONDecodeError is a ValueError
            raise ModelNotAvailableError(
                f"{classifier.local_dir}: cannot read the combiner or the n-gram model "
                f"({err.__class__.__name__}: {err})"
            ) from err
        if policy is None:
            fixed = policy_in_force(settings.thresholds)  # as the service has it, hand_edits="refuse" included
            policy = lambda: fixed  # noqa: E731
        if analyzer is None:
            built = build_text_analyzer(settings.nlp)
            if every_language:
                built.load_all()
            analyzer = built
        classifier.ready()  # a worker process has loaded beside the NLP step, or says why it could not
    except BaseException:
        classifier.close()
        raise
    return Scorer(
        analyzer=analyzer,
        classifier=classifier,
        combiner=combiner,
        policy=policy,
        model_version=classifier.version,
        explainer=partial(explain_batch, classifier),
        ngram=ngram,
    )
