"""IBAN, boundary-free, validated by its mod-97 check digits. Budget: < 1 ms per message."""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.checksums import iban_is_valid
from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import END, after_label

_START = after_label("IBAN")


class BoundaryFreeIbanRecognizer(CommsriskPatternRecognizer):
    """IBAN_CODE: compact (DE89370400440532013000) or grouped by four (DE89 3704 0044 ...)."""

    ENTITY = "IBAN_CODE"
    PATTERNS = [
        Pattern("IBAN (compact)", _START + r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}" + END, 0.5),
        Pattern("IBAN (grouped)", _START + r"[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?" + END, 0.5),
    ]
    CONTEXT = ["iban", "account", "wire", "transfer"]

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only numbers whose check digits are right."""
        return iban_is_valid(pattern_text)
