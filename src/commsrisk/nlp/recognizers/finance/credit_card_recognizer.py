"""Payment card numbers, boundary-free, validated by Luhn. Budget: < 1 ms per message."""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.checksums import luhn_is_valid
from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import DIGIT_END, DIGIT_START


class BoundaryFreeCreditCardRecognizer(CommsriskPatternRecognizer):
    """CREDIT_CARD: 13-19 digits starting 2-6, optionally grouped by spaces or dashes."""

    ENTITY = "CREDIT_CARD"
    PATTERNS = [
        Pattern("card (grouped)", DIGIT_START + r"[2-6]\d{3}(?:[ -]\d{4}){2}[ -]\d{1,7}" + DIGIT_END, 0.5),
        Pattern("card (amex grouped)", DIGIT_START + r"3[47]\d{2}[ -]\d{6}[ -]\d{5}" + DIGIT_END, 0.5),
        Pattern("card (compact)", DIGIT_START + r"[2-6]\d{12,18}" + DIGIT_END, 0.4),
    ]
    CONTEXT = ["card", "credit", "visa", "mastercard", "amex", "cc"]

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only Luhn-valid numbers."""
        return luhn_is_valid(pattern_text)
