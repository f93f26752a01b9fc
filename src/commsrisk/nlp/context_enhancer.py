"""Context words near a finding: Presidio's score boost, matched the way our languages are written.

Presidio's `LemmaContextAwareEnhancer` compares context words with the lemmas of the words
around a finding, as substrings. Three things go wrong on our messages, and this enhancer
changes only those:

* **Substrings in spaced scripts.** "call" is found in "recall", "tel" in "hotel", "acc" in
  "accept". Here a context word must start a word or a part of a hyphenated one ("konto" still
  finds "kontonummer", "appel" finds "contre-appel"); words of three letters or fewer must be
  the whole word ("tel", "tel.").
* **Chinese and Japanese.** jieba's dictionary is simplified Chinese: it cuts 護照號碼 into four
  characters, so no context word is ever found; kanji-only Japanese goes the same way. For
  these languages the context words are also looked up in the characters around the finding.
* **Which word is whose.** Chat puts a phone and an account in one line ("margin call on the
  account 2785886145"); both recognizers see a context word, and the larger score wins. The
  enhancer records how far the nearest context word is (`context_distance`, in characters), so
  that `pii_engine.resolve_overlaps` prefers the finding whose own word stands beside it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts

CONTEXT_DISTANCE = "context_distance"
"""recognition_metadata key: characters between a finding and its nearest context word."""
NOT_CONTEXT = re.compile(
    r"\b(?:margin|capital|cash) calls?\b|\bcall options?\b|\bappels? de (?:fonds|marge|marges|offres)\b"
    r"|\bllamadas? de (?:margen|capital)\b|\bnachschuss\w*",
    re.IGNORECASE,
)
"""Desk words that hold a context word but name no phone: a margin call is not a call."""
AFTER = 1_000
"""Added to the distance of a context word that follows the finding (see `after_distance`)."""
SHORT_WORD = 3
"""Context words this short match whole words only: "sin" is not "since", "fin" not "final"."""
CHARACTER_WINDOW_LANGUAGES = frozenset({"zh", "ja"})
CHARACTERS_BEFORE = 20
CHARACTERS_AFTER = 10
"""The character window for Chinese and Japanese: about as far as 8 words before and 2 after."""


class NearestContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's context boost with word-start matching, CJK character windows and distances."""

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """Boost each finding that has one of its recognizer's context words nearby."""
        results = copy.deepcopy(raw_results)
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        masked = [m.span() for m in NOT_CONTEXT.finditer(text)]
        for result in results:
            metadata = result.recognition_metadata or {}
            recognizer = by_id.get(metadata.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            if recognizer is None or not recognizer.context:
                continue
            if metadata.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            words = [word.lower() for word in recognizer.context]
            found = self.nearest_context_word(text, result, nlp_artifacts, words, recognizer.supported_language, masked)
            if found is None:
                continue
            word, distance = found
            result.score = min(
                max(result.score + self.context_similarity_factor, self.min_score_with_context_similarity),
                ContextAwareEnhancer.MAX_SCORE,
            )
            metadata[CONTEXT_DISTANCE] = distance
            result.recognition_metadata = metadata
            if result.analysis_explanation is not None:
                result.analysis_explanation.set_supportive_context_word(word)
                result.analysis_explanation.set_improved_score(result.score)
        return results

    def nearest_context_word(
        self,
        text: str,
        result: RecognizerResult,
        nlp_artifacts: NlpArtifacts | None,
        words: Sequence[str],
        language: str,
        masked: Sequence[tuple[int, int]] = (),
    ) -> tuple[str, int] | None:
        """The closest context word (and its distance in characters), or None.

        Words inside a `masked` span (a margin call) do not count.
        """
        candidates: list[tuple[int, str, int]] = []
        if nlp_artifacts is not None and nlp_artifacts.tokens:
            candidates += self._in_tokens(text, result, nlp_artifacts, words)
        lowered = text.lower()
        for word in words:
            if " " in word or language in CHARACTER_WINDOW_LANGUAGES:
                candidates += _in_characters(lowered, result, word)
        candidates = [c for c in candidates if not any(start <= c[2] < end for start, end in masked)]
        if not candidates:
            return None
        distance, word, _ = min(candidates)
        return word, distance

    def _in_tokens(
        self, text: str, result: RecognizerResult, nlp_artifacts: NlpArtifacts, words: Sequence[str]
    ) -> list[tuple[int, str, int]]:
        """(distance, word, position) of context words opening a keyword in Presidio's window (8 before, 2 after)."""
        tokens = nlp_artifacts.tokens
        index = self._find_index_of_match_token(
            text[result.start : result.end], result.start, tokens, nlp_artifacts.tokens_indices
        )
        last = index
        while last + 1 < len(tokens) and nlp_artifacts.tokens_indices[last + 1] < result.end:
            last += 1  # the window after starts after the finding, not inside it (+1-593-811-2172)
        keywords = set(nlp_artifacts.keywords)
        found: list[tuple[int, str, int]] = []
        for step, first, count in ((-1, index, self.context_prefix_count), (1, last, self.context_suffix_count)):
            i, remaining = first, count + 1  # the finding's own token counts (glued words), as in Presidio
            while 0 <= i < len(tokens) and remaining > 0:
                lemma = nlp_artifacts.lemmas[i].lower()
                if lemma in keywords:
                    remaining -= 1
                    parts = [lemma, *re.split(r"[-/']", tokens[i].text.lower())]
                    start = nlp_artifacts.tokens_indices[i]
                    end = start + len(tokens[i].text)
                    distance = max(result.start - end, 0) if step < 0 else after_distance(start - result.end)
                    own = start <= result.start < end
                    found += [
                        (distance, word, start)
                        for word in words
                        if any(starts_word(part, word, glued=own) for part in parts)
                    ]
                i += step
        return found


def after_distance(characters: int) -> int:
    """A word after the finding counts as farther than any word before it.

    Labels precede values: "account number is 81055775, mobile ..." names an account.
    """
    return AFTER + max(characters, 0)


def starts_word(part: str, word: str, glued: bool = False) -> bool:
    """Whether a context word opens this word: short ones (tel, sin, nie) only whole, as in "tel." or "tel:".

    `glued`: the finding's own token, where the word is glued to the value (IBANDE89..., IP10.0.0.1).
    """
    if len(word) > SHORT_WORD or glued:
        return part.startswith(word)
    return part.rstrip(".:#") == word


def _in_characters(lowered: str, result: RecognizerResult, word: str) -> list[tuple[int, str, int]]:
    """(distance, word, position) of a context word in the characters just before or after the finding."""
    found = []
    before = lowered.rfind(word, max(0, result.start - CHARACTERS_BEFORE - len(word)), result.start)
    if before != -1:
        found.append((result.start - before - len(word), word, before))
    following = lowered.find(word, result.end, result.end + CHARACTERS_AFTER + len(word))
    if following != -1:
        found.append((after_distance(following - result.end), word, following))
    return found
