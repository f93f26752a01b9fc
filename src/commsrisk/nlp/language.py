"""Language of a message, including mixed-language messages.

Script decides first (kana means Japanese; Han without kana means Chinese); lingua, restricted
to our Latin-script languages, decides between English, Spanish, German and French. A message
with enough of a second script or language reports both: the first is the pipeline it goes to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lingua import Language, LanguageDetectorBuilder

KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]{2,}")
ADDRESSES = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+|https?://\S+|www\.\S+")
"""E-mail addresses and URLs are not words of any language."""
LATIN_LANGUAGES = {Language.ENGLISH: "en", Language.SPANISH: "es", Language.GERMAN: "de", Language.FRENCH: "fr"}
FALLBACK = "en"
"""Language of text with no letters (digits, emoji only): the English pipeline has the most recognizers."""


CHAT_WORDS: dict[str, set[str]] = {
    "en": {"pls", "plz", "thx", "thanks", "ok", "lol", "asap", "fyi", "lmk", "btw", "send", "call", "deck", "hi"},
    "es": {"porfa", "vale", "gracias", "hola", "oye", "llámame"},
    "de": {"bitte", "danke", "hallo", "gerne", "tschüss"},
    "fr": {"merci", "bonjour", "salut", "stp", "svp"},
}
"""Chat words that are not in spaCy's stop-word lists but mark a language."""


def _stop_words(code: str) -> set[str]:
    from importlib import import_module

    return set(import_module(f"spacy.lang.{code}.stop_words").STOP_WORDS)


@dataclass(frozen=True)
class DetectedLanguage:
    """The pipeline language and every language seen in the text."""

    language: str
    languages: tuple[str, ...]


class LanguageDetector:
    """Detects the languages of short workplace messages, offline."""

    def __init__(self, supported: Sequence[str]) -> None:
        self.supported = tuple(supported)
        wanted = [lang for lang, code in LATIN_LANGUAGES.items() if code in self.supported]
        self._lingua = LanguageDetectorBuilder.from_languages(*wanted).build() if len(wanted) > 1 else None
        self._only_latin = LATIN_LANGUAGES[wanted[0]] if len(wanted) == 1 else None
        self._stop_words = {code: _stop_words(code) | CHAT_WORDS.get(code, set()) for code in LATIN_LANGUAGES.values()}

    def _latin(self, text: str) -> str:
        """Lingua's confidence plus the share of each language's stop words (spaCy's lists).

        lingua alone calls short English chat ("pls send deck", names of banks) German; function
        words settle most of those cases.
        """
        if self._lingua is None:
            return self._only_latin or FALLBACK
        words = [w.lower() for w in LATIN_WORD.findall(text)] or [text.lower()]
        best, best_score = FALLBACK, -1.0
        for value in self._lingua.compute_language_confidence_values(text):
            code = LATIN_LANGUAGES[value.language]
            stop_share = sum(w in self._stop_words[code] for w in words) / len(words)
            score = value.value + stop_share
            if score > best_score:
                best, best_score = code, score
        return best

    def detect(self, text: str) -> DetectedLanguage:
        """Main language and all languages present."""
        text = ADDRESSES.sub(" ", text)
        kana = len(KANA.findall(text))
        han = len(HAN.findall(text))
        latin_words = LATIN_WORD.findall(text)
        latin_chars = sum(len(w) for w in latin_words)
        languages: list[str] = []
        if kana and "ja" in self.supported:
            languages.append("ja")
        elif han and "zh" in self.supported:
            languages.append("zh")
        elif han and "ja" in self.supported:
            languages.append("ja")
        if latin_words and (not languages or latin_chars >= 6):
            latin_text = " ".join(latin_words) if languages else text
            latin = self._latin(latin_text) if (len(latin_words) >= 2 or not languages) else FALLBACK
            languages.append(latin)
        if not languages:
            languages.append(FALLBACK if FALLBACK in self.supported else self.supported[0])
        if languages[0] not in self.supported:
            languages[0] = FALLBACK
        return DetectedLanguage(languages[0], tuple(dict.fromkeys(languages)))

    def resolve(self, text: str, given: str | None) -> DetectedLanguage:
        """A given supported language skips detection; an unsupported one falls back to detection."""
        if given and given in self.supported:
            return DetectedLanguage(given, (given,))
        return self.detect(text)
