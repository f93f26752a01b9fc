"""Presidio on our spaCy pipelines: the engine, and the rules that settle overlapping findings."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
from spacy.language import Language

from commsrisk.nlp.context_enhancer import CONTEXT_DISTANCE, NearestContextEnhancer
from commsrisk.nlp.recognizers.registry import RecognizersConfig, build_recognizers

logger = logging.getLogger(__name__)

PRIORITY: dict[str, int] = {
    "CN_RESIDENT_ID": 4,
    "IBAN_CODE": 4,
    "CREDIT_CARD": 4,
    "ISIN": 4,
    "US_SSN": 3,
    "IP_ADDRESS": 3,
    # country ids, each gated by its own word and most with a check digit
    "JP_MY_NUMBER": 3,
    "ABA_ROUTING_NUMBER": 3,
    "US_ITIN": 3,
    "UK_NHS": 3,
    "UK_NINO": 3,
    "MEDICAL_LICENSE": 3,
    "SG_NRIC_FIN": 3,
    "CA_SIN": 3,
    "AU_TFN": 3,
    "ES_NIF": 3,
    "ES_NIE": 3,
    "DE_TAX_ID": 3,  # four octets in range: 211.84.172.4 is not the phone 211.84.172
    "EMAIL_ADDRESS": 3,
    "LOCATION": 3,  # a street word and a number: a postcode inside it is not a phone number
    "PHONE_NUMBER": 2,
    "SWIFT_BIC": 2,
    "CUSIP": 2,
    "PASSPORT": 3,  # context-gated: nine digits beside "pasaporte" are a passport, not a Spanish mobile
    "BANK_ACCOUNT": 2,  # context-gated: it only exists with an account word nearby, so it meets a phone on score
}
"""Which finding wins an overlap: checksum-validated ids, then specific formats, then the rest
(names from NER and other weak signals are 0 and never cover a stronger finding)."""
SPACY_LABELS_NOT_PII = [
    "ORG",
    "GPE",
    "LOC",
    "NORP",
    "FAC",
    "PRODUCT",
    "EVENT",
    "LAW",
    "DATE",
    "TIME",
    "PERCENT",
    "MONEY",
    "QUANTITY",
    "ORDINAL",
    "CARDINAL",
    "WORK_OF_ART",
    "LANGUAGE",
    "MISC",
    "ADDRESS",
]
"""Entity labels (pipelines.ENTITY_LABELS) that are not PII findings: only PERSON goes to Presidio.
Our NER learns ADDRESS so that it does not read street names as people; addresses themselves are
reported by the address patterns, which need a street word and a number (the NER's ADDRESS spans
swallowed phone numbers and house names: precision 0.60 on the German PII set)."""
CONTEXT_WORDS_BEFORE = 8
CONTEXT_WORDS_AFTER = 2
"""How far a context word may be from a finding (Presidio's default is 5 before, 0 after): chat
puts the account word a clause earlier ("la cuenta de ella? la que tengo es ...") or after it."""
STRONG = 2
"""Findings at this priority or above also remove spaCy entities they overlap (a card number
tagged DATE, an e-mail tagged ORG)."""


class PipelinesNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine on pipelines we built (blank ones included), never downloading."""

    def __init__(self, pipelines: Mapping[str, Language]) -> None:
        super().__init__(
            models=[{"lang_code": lang, "model_name": f"commsrisk-{lang}"} for lang in pipelines],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping={"PERSON": "PERSON"},
                labels_to_ignore=SPACY_LABELS_NOT_PII,
            ),
        )
        self._pipelines = pipelines
        self.nlp = pipelines  # a LanguagePipelines: each language loads on its first text

    def load(self) -> None:
        """Nothing to load here: the pipelines load themselves when first used."""
        self.nlp = self._pipelines


def build_analyzer(
    engine: PipelinesNlpEngine, languages: Sequence[str], min_score: float, config: RecognizersConfig
) -> AnalyzerEngine:
    """The Presidio analyzer with our recognizers (`load_recognizers_config`: the shipped recognizers.yaml)."""
    registry = RecognizerRegistry(supported_languages=list(languages))
    for recognizer in build_recognizers(config, languages):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        supported_languages=list(languages),
        default_score_threshold=min_score,
        context_aware_enhancer=NearestContextEnhancer(
            context_similarity_factor=0.35,
            min_score_with_context_similarity=0.45,
            context_prefix_count=CONTEXT_WORDS_BEFORE,
            context_suffix_count=CONTEXT_WORDS_AFTER,
        ),
    )


def keep_context_words(language: str, nlp: Language, config: RecognizersConfig) -> None:
    """Make sure no context word is a stop word of the pipeline of `language` (run as it loads).

    Presidio drops stop words from a message's keywords before matching context, and spaCy's
    stop lists hold context words of ours (Spanish "cuenta", English "call", German "tel", Chinese
    "联系"): without this, those words never raise a score.
    """
    for entry in config.recognizers:
        for word in entry.languages.get(language, ()):
            for part in word.lower().split():
                nlp.vocab[part].is_stop = False


def resolve_overlaps(results: Sequence[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the strongest of overlapping findings.

    Priority first; then a finding backed by a context word over one without; then the one
    whose context word is nearer ("margin call on the account 2785886145" is an account); then
    score and length.
    """
    ranked = sorted(results, key=_strength, reverse=True)
    kept: list[RecognizerResult] = []
    for result in ranked:
        if all(result.end <= k.start or result.start >= k.end for k in kept):
            kept.append(result)
    return sorted(kept, key=lambda r: (r.start, r.end))


def _strength(result: RecognizerResult) -> tuple[int, bool, int, float, int]:
    distance = (result.recognition_metadata or {}).get(CONTEXT_DISTANCE)
    return (
        PRIORITY.get(result.entity_type, 0),
        distance is not None,
        -distance if distance is not None else 0,
        result.score,
        result.end - result.start,
    )
