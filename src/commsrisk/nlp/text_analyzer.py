"""The nlp step of scoring: language, one spaCy parse, PII (Presidio) and entities from that parse.

`analyze_batch` groups texts by language and runs spaCy's `pipe` once per group; Presidio then
analyses each text on the artifacts of that parse, never parsing again. One message or a
million go the same way.

Detection runs on the text as `normalize_for_detection` leaves it (zero-width and bidi characters
removed, full-width digits as ASCII), so a value split or disguised by them is still found; every
span is mapped back, so PII and entity spans index the message as it was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from presidio_analyzer import AnalyzerEngine

from commsrisk.nlp.language import LanguageDetector
from commsrisk.nlp.normalize import normalize_for_detection
from commsrisk.nlp.pii_engine import (
    PRIORITY,
    STRONG,
    PipelinesNlpEngine,
    build_analyzer,
    keep_context_words,
    resolve_overlaps,
)
from commsrisk.nlp.pipelines import PARSES, LanguagePipelines, build_pipelines
from commsrisk.nlp.recognizers.registry import load_recognizers_config
from commsrisk.schema import EntityFinding, PiiFinding
from commsrisk.settings import NlpSettings

logger = logging.getLogger(__name__)

EVIDENCE_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "MONEY", "NORP", "FAC", "PRODUCT", "EVENT", "LAW", "DATE", "TIME", "PERCENT"}
)
"""spaCy labels kept as evidence (numbers without a unit are noise)."""


@dataclass(frozen=True)
class TextAnalysis:
    """What the nlp step found in one text."""

    language: str
    languages: tuple[str, ...]
    pii: list[PiiFinding]
    entities: list[EntityFinding]
    token_count: int


class TextAnalyzer:
    """Language detection, spaCy and Presidio, built once per process by `build_text_analyzer`."""

    def __init__(
        self,
        detector: LanguageDetector,
        engine: PipelinesNlpEngine,
        analyzer: AnalyzerEngine,
        settings: NlpSettings,
        pipelines: LanguagePipelines,
    ) -> None:
        self.detector = detector
        self.engine = engine
        self.analyzer = analyzer
        self.settings = settings
        self.pipelines = pipelines

    def load_all(self) -> None:
        """Load every language's pipeline now, not on its first text (a server does, before it is ready)."""
        self.pipelines.load_all()

    @property
    def parse_count(self) -> int:
        """SpaCy parses performed in this process (one per analysed text)."""
        return PARSES.count

    def analyze(self, text: str, language: str | None = None) -> TextAnalysis:
        """Analyse one text (the batch path with a batch of one)."""
        return self.analyze_batch([text], [language])[0]

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[TextAnalysis]:
        """Analyse texts in input order; `languages[i]` skips detection when given and supported."""
        normalized = [normalize_for_detection(text) for text in texts]
        detected = [self.detector.resolve(n.text, lang) for n, lang in zip(normalized, languages, strict=True)]
        groups: dict[str, list[int]] = {}
        for i, found in enumerate(detected):
            groups.setdefault(found.language, []).append(i)
        out: list[TextAnalysis | None] = [None] * len(texts)
        for lang, indices in groups.items():
            batch = [normalized[i].text for i in indices]
            artifacts = self.engine.process_batch(batch, lang, batch_size=self.settings.spacy_batch_size)
            for i, (_, arts) in zip(indices, artifacts, strict=True):
                norm = normalized[i]
                results = self.analyzer.analyze(
                    norm.text, lang, nlp_artifacts=arts, score_threshold=self.settings.pii_min_score
                )
                kept = resolve_overlaps(results)
                spans = [norm.to_original_span(r.start, r.end) for r in kept]
                pii = [
                    PiiFinding(
                        entity_type=r.entity_type,
                        start=start,
                        end=end,
                        score=round(min(max(r.score, 0.0), 1.0), 4),
                        recognizer=(r.recognition_metadata or {}).get("recognizer_name", "unknown"),
                    )
                    for r, (start, end) in zip(kept, spans, strict=True)
                ]
                strong = [span for r, span in zip(kept, spans, strict=True) if PRIORITY.get(r.entity_type, 0) >= STRONG]
                entities = [
                    EntityFinding(label=ent.label_, start=start, end=end)
                    for ent in arts.tokens.ents
                    if ent.label_ in EVIDENCE_LABELS
                    for start, end in [norm.to_original_span(ent.start_char, ent.end_char)]
                    if all(end <= s or start >= e for s, e in strong)
                ]
                out[i] = TextAnalysis(detected[i].language, detected[i].languages, pii, entities, len(arts.tokens))
        logger.debug("analysed %d texts in %d languages", len(texts), len(groups))
        return [analysis for analysis in out if analysis is not None]


def build_text_analyzer(settings: NlpSettings) -> TextAnalyzer:
    """Check every pipeline and load every recognizer named in settings (the only place the nlp step loads models).

    Each language's spaCy pipeline loads with its first text; `TextAnalyzer.load_all` loads them now.
    """
    # Presidio's DEBUG records carry matched values and context words: never let them through.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
    config = load_recognizers_config(settings.recognizers)
    pipelines = build_pipelines(settings, on_load=partial(keep_context_words, config=config))
    engine = PipelinesNlpEngine(pipelines)
    analyzer = build_analyzer(engine, list(pipelines), settings.pii_min_score, config)
    return TextAnalyzer(LanguageDetector(list(pipelines)), engine, analyzer, settings, pipelines)
