"""Chinese person names from jieba's POS tags (nr), read from the shared parse.

A low-score signal (jieba's tagger is the only offline Chinese name source; it misses and over-tags).
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

SCORE = 0.45


class CnPersonRecognizer(EntityRecognizer):
    """PERSON for tokens that jieba tagged as person names (2-4 characters)."""

    COUNTRY_CODE = "cn"

    def __init__(self, supported_language: str = "zh", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entities=["PERSON"],
            name=f"CnPersonRecognizer_{supported_language}",
            supported_language=supported_language,
            context=context,
        )

    def load(self) -> None:
        """Nothing to load: the tags come with the parse."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """PERSON results from the doc's PERSON entities (jieba nr tags)."""
        if nlp_artifacts is None or nlp_artifacts.tokens is None or "PERSON" not in entities:
            return []
        return [
            RecognizerResult("PERSON", ent.start_char, ent.end_char, SCORE)
            for ent in nlp_artifacts.tokens.ents
            if ent.label_ == "PERSON" and 2 <= len(ent.text) <= 4
        ]
