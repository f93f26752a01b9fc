"""SWIFT/BIC codes, reported only with a context word nearby.

Eight capital letters are common words, so a bare match stays below the
reporting threshold until a context word (SWIFT, BIC, ...) raises it. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE, END, START


class SwiftBicRecognizer(PatternRecognizer):
    """SWIFT_BIC: bank (4 letters), country (2), location (2), optional branch (3)."""

    PATTERNS = [Pattern("SWIFT/BIC", START + r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?" + END, 0.2)]
    CONTEXT = ["swift", "bic", "bank", "wire"]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity="SWIFT_BIC",
            name=f"SwiftBicRecognizer_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=CASE_SENSITIVE,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        """No check digit: keep the pattern score (None) so only context can raise it; refuse test BICs."""
        return False if pattern_text[6:8] == "00" else None
