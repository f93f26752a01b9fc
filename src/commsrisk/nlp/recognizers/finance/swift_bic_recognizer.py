"""SWIFT/BIC codes, reported only with a context word nearby.

Eight capital letters are common words, so a bare match stays below the
reporting threshold until a context word (SWIFT, BIC, ...) raises it. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import END, START


class SwiftBicRecognizer(CommsriskPatternRecognizer):
    """SWIFT_BIC: bank (4 letters), country (2), location (2), optional branch (3)."""

    ENTITY = "SWIFT_BIC"
    PATTERNS = [Pattern("SWIFT/BIC", START + r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?" + END, 0.2)]
    CONTEXT = ["swift", "bic", "bank", "wire"]

    def validate_result(self, pattern_text: str) -> bool | None:
        """No check digit: keep the pattern score (None) so only context can raise it; refuse test BICs."""
        return False if pattern_text[6:8] == "00" else None
