"""Bank account numbers, reported only with an account word nearby.

Any run of 7-19 digits is too common to report alone, so the score
only passes the threshold with an account word nearby. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE, DIGIT_END, DIGIT_START


class BankAccountRecognizer(PatternRecognizer):
    """BANK_ACCOUNT: 7-19 digits, optionally grouped, reported when context confirms it."""

    PATTERNS = [Pattern("account digits", DIGIT_START + r"\d{7,19}" + DIGIT_END, 0.1)]
    CONTEXT = ["account", "acct", "a/c", "acc"]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity="BANK_ACCOUNT",
            name=f"BankAccountRecognizer_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=CASE_SENSITIVE,
        )
