"""Japanese individual numbers (マイナンバー, 個人番号): 12 digits, check digit validated, context-gated.

A random 12-digit order or account number passes the check digit one time in eleven, so a
finding also needs a My Number word nearby. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.checksums import jp_my_number_is_valid
from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import DIGIT_END, DIGIT_START
from commsrisk.nlp.recognizers.generic.passport_recognizer import GATED


class JpMyNumberRecognizer(CommsriskPatternRecognizer):
    """JP_MY_NUMBER: 12 digits (or 4-4-4), glued to Japanese text too, with its check digit and a context word."""

    COUNTRY_CODE = "jp"
    ENTITY = "JP_MY_NUMBER"
    PATTERNS = [Pattern("My Number", DIGIT_START + r"\d{4}[ -]?\d{4}[ -]?\d{4}" + DIGIT_END, GATED)]
    CONTEXT = ["マイナンバー", "個人番号", "my number", "mynumber"]

    def invalidate_result(self, pattern_text: str) -> bool:
        """A wrong check digit is no My Number (kept gated: a right one alone is one number in eleven)."""
        return not jp_my_number_is_valid(pattern_text)
