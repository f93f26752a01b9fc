"""ISIN and CUSIP security identifiers, validated by their check digits. Budget: < 1 ms per message."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from commsrisk.nlp.checksums import cusip_is_valid, isin_is_valid
from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE, END, START


class IsinRecognizer(PatternRecognizer):
    """ISIN: country (2 letters), 9 alphanumerics, check digit."""

    PATTERNS = [Pattern("ISIN", START + r"[A-Z]{2}[A-Z0-9]{9}\d" + END, 0.6)]
    CONTEXT = ["isin", "security", "bond", "note"]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity="ISIN",
            name=f"IsinRecognizer_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=CASE_SENSITIVE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only ids with a right check digit."""
        return isin_is_valid(pattern_text)


class CusipRecognizer(PatternRecognizer):
    """CUSIP: 9 characters with a check digit; weak alone, raised by the word CUSIP nearby."""

    PATTERNS = [Pattern("CUSIP", START + r"\d{3}[0-9A-Z]{5}\d" + END, 0.3)]
    CONTEXT = ["cusip"]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity="CUSIP",
            name=f"CusipRecognizer_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=CASE_SENSITIVE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only ids with a right check digit."""
        return cusip_is_valid(pattern_text)
