"""Bank account numbers, reported only with an account word nearby.

Any run of 7-19 digits is too common to report alone, so the score
only passes the threshold with an account word nearby. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import DIGIT_END, DIGIT_START


class BankAccountRecognizer(CommsriskPatternRecognizer):
    """BANK_ACCOUNT: 7-19 digits, optionally grouped, reported when context confirms it."""

    ENTITY = "BANK_ACCOUNT"
    PATTERNS = [Pattern("account digits", DIGIT_START + r"\d{7,19}" + DIGIT_END, 0.1)]
    CONTEXT = ["account", "acct", "a/c", "acc"]
