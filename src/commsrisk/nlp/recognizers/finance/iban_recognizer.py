"""IBAN, boundary-free, validated by its mod-97 check digits. Budget: < 1 ms per message."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from commsrisk.nlp.checksums import iban_is_valid
from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE, END, START


class IbanRecognizer(PatternRecognizer):
    """IBAN_CODE: compact (DE89370400440532013000) or grouped by four (DE89 3704 0044 ...)."""

    PATTERNS = [
        Pattern("IBAN (compact)", START + r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}" + END, 0.5),
        Pattern("IBAN (grouped)", START + r"[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?" + END, 0.5),
    ]
    CONTEXT = ["iban", "account", "wire", "transfer"]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity="IBAN_CODE",
            name=f"IbanRecognizer_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=CASE_SENSITIVE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only numbers whose check digits are right."""
        return iban_is_valid(pattern_text)
