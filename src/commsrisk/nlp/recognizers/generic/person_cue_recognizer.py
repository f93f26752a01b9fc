"""English full names after the words that introduce a person, where the small English NER misses.

`en_core_web_sm` misses names in exactly the places where a reviewer would read one: "travel
booking for Yvonne Lewis", "disputed by Jade Edwards", "Dear Alex Smith", "full name Stephanie
Bean". A first and last name (two capitalised words) right after such a cue is reported, unless
the NER read the same words as an organisation or a place ("for Goldman Sachs", "to New York").
Budget: < 1 ms per message.
"""

from __future__ import annotations

import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from commsrisk.nlp.recognizers.base import CommsriskEntityRecognizer
from commsrisk.nlp.recognizers.generic.ner_recognizer import NOT_NAME_WORDS

SCORE = 0.5
CUES = (
    "for", "by", "from", "to", "with", "and", "dear", "hi", "hello", "thanks", "cc", "name", "named", "client",
    "customer", "employee", "colleague", "candidate", "beneficiary", "holder", "mr", "mrs", "ms", "dr", "@",
)  # fmt: skip
_WORD = r"[A-Z][a-z]+(?:[-'’][A-Z][a-z]+)?"
NAME_AFTER_CUE = regex.compile(
    r"(?i:(?<![A-Za-z])(?:" + "|".join(regex.escape(c) for c in CUES) + r")\.?[:,]?)\s+"
    r"(?P<name>" + _WORD + r"\s" + _WORD + r")(?![A-Za-z0-9])"
)
NOT_PEOPLE = frozenset({"ORG", "GPE", "NORP", "PRODUCT"})
"""What the NER read that vetoes a name (it calls names FAC or LOC too often for those to count)."""


class PersonCueRecognizer(CommsriskEntityRecognizer):
    """PERSON: a first and last name right after a word that introduces a person."""

    ENTITIES = ["PERSON"]

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Names after cues, less those the NER took for organisations, places or products."""
        if "PERSON" not in entities:
            return []
        taken = [
            (ent.start_char, ent.end_char)
            for ent in (nlp_artifacts.tokens.ents if nlp_artifacts and nlp_artifacts.tokens is not None else ())
            if ent.label_ in NOT_PEOPLE
        ]
        results = []
        for match in NAME_AFTER_CUE.finditer(text):
            start, end = match.span("name")
            if any(w.lower() in NOT_NAME_WORDS for w in match.group("name").split()):
                continue
            if any(s < end and start < e for s, e in taken):
                continue
            results.append(RecognizerResult("PERSON", start, end, SCORE))
        return results
