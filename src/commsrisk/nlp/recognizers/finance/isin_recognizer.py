"""ISIN and CUSIP security identifiers, validated by their check digits. Budget: < 1 ms per message."""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.checksums import cusip_is_valid, isin_is_valid
from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import END, START


class IsinRecognizer(CommsriskPatternRecognizer):
    """ISIN: country (2 letters), 9 alphanumerics, check digit."""

    ENTITY = "ISIN"
    PATTERNS = [Pattern("ISIN", START + r"[A-Z]{2}[A-Z0-9]{9}\d" + END, 0.6)]
    CONTEXT = ["isin", "security", "bond", "note"]

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only ids with a right check digit."""
        return isin_is_valid(pattern_text)


class CusipRecognizer(CommsriskPatternRecognizer):
    """CUSIP: 9 characters with a check digit; weak alone, raised by the word CUSIP nearby."""

    ENTITY = "CUSIP"
    PATTERNS = [Pattern("CUSIP", START + r"\d{3}[0-9A-Z]{5}\d" + END, 0.3)]
    CONTEXT = ["cusip"]

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only ids with a right check digit."""
        return cusip_is_valid(pattern_text)
