"""Bank account numbers, reported only with an account word nearby.

Any run of 7-19 digits is too common to report alone, so the score
only passes the threshold with an account word nearby. Budget: < 1 ms per message.
"""

from __future__ import annotations

from datetime import date

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import DIGIT_END, DIGIT_START, NOT_IN_PHONE


def is_calendar_date(digits: str) -> bool:
    """An eight-digit run that reads as a date (20261104): a booking or value date, not an account."""
    if len(digits) != 8 or digits[:2] not in ("19", "20"):
        return False
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return True


class BankAccountRecognizer(CommsriskPatternRecognizer):
    """BANK_ACCOUNT: 7-19 digits reported when context confirms it; UK sort code + account always."""

    ENTITY = "BANK_ACCOUNT"
    PATTERNS = [
        Pattern("account digits", DIGIT_START + NOT_IN_PHONE + r"\d{7,19}" + DIGIT_END, 0.1),
        Pattern(
            "UK sort code + account",
            DIGIT_START
            + r"\d{2}-\d{2}-\d{2}[ ,/:]{1,3}(?:(?:a/c|acct|account)(?: no\.?| number)?[ :]{1,2})?\d{8}"
            + DIGIT_END,
            0.5,
        ),
    ]
    CONTEXT = ["account", "acct", "a/c"]

    def invalidate_result(self, pattern_text: str) -> bool:
        """Dates written as eight digits are not accounts."""
        return is_calendar_date(pattern_text)
