"""Presidio's own country recognizers (US routing and ITIN, UK NHS and NINO, Spanish NIF/NIE, ...), context-gated.

Presidio validates their check digits and then reports a match at full score, but a check digit
passes one random number in ten or eleven: on our messages, phones and account numbers would
come back as NHS numbers and tax ids. Here a finding keeps Presidio's pattern and its check
(a failed check still drops it) and needs a context word of the id nearby, like our passports.
"""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from commsrisk.nlp.recognizers.generic.passport_recognizer import GATED


def context_gated(cls: type[PatternRecognizer]) -> type[PatternRecognizer]:
    """A subclass of a Presidio pattern recognizer whose findings need a context word."""

    class ContextGated(cls):  # type: ignore[valid-type,misc]
        def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
            super().__init__(supported_language=supported_language, context=context)
            self.patterns = [Pattern(p.name, p.regex, GATED) for p in self.patterns]
            self.name = f"{cls.__name__}_{supported_language}"

        def validate_result(self, pattern_text: str) -> bool | None:
            """A failed check drops the match; a passed one leaves it gated (None keeps the pattern's score)."""
            return False if super().validate_result(pattern_text) is False else None

    ContextGated.__name__ = ContextGated.__qualname__ = f"ContextGated{cls.__name__}"
    return ContextGated
