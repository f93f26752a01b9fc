"""Passport numbers of the main issuing countries, reported only with a passport word nearby.

The formats (US and UK nine digits, US next-generation, Chinese E/G + 8 digits, Japanese and
Italian two letters + 7 digits, French 2 digits + 2 letters + 5 digits, Spanish 3 letters + 6
digits, German 9 characters of its own alphabet) collide with order and account numbers, so the
base score is below the threshold and only a passport word in the message's language lifts it.
Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import END, NOT_IN_PHONE, START

GATED = 0.05
"""Base score: with the context boost (+0.35) a finding reaches the 0.4 threshold, without it never."""


class PassportRecognizer(CommsriskPatternRecognizer):
    """PASSPORT: the common national formats, context-gated."""

    ENTITY = "PASSPORT"
    PATTERNS = [
        Pattern("letters + digits (US, CN, JP, IT, AT)", START + r"[A-Z]{1,2}\d{7,8}" + END, GATED),
        Pattern("nine digits (US, UK)", START + NOT_IN_PHONE + r"\d{9}" + END, GATED),
        Pattern("France", START + r"\d{2}[A-Z]{2}\d{5}" + END, GATED),
        Pattern("Spain", START + r"[A-Z]{3}\d{6}" + END, GATED),
        Pattern("Germany", START + r"[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8}" + END, GATED),
    ]
    CONTEXT = ["passport", "passport number", "travel document"]
