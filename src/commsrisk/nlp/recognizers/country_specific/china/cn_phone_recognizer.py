"""Chinese mobile (1[3-9]x, 11 digits, optional +86) and landline (0xx-xxxxxxxx) numbers.

Boundary-free. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import DIGIT_END, DIGIT_START


class CnPhoneRecognizer(CommsriskPatternRecognizer):
    """PHONE_NUMBER: mainland mobile and landline formats."""

    COUNTRY_CODE = "cn"
    ENTITY = "PHONE_NUMBER"
    PATTERNS = [
        Pattern("CN mobile", DIGIT_START + r"(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}" + DIGIT_END, 0.6),
        Pattern("CN landline", DIGIT_START + r"(?:\+?86[ -]?)?0\d{2,3}[ -]\d{7,8}" + DIGIT_END, 0.45),
    ]
    CONTEXT = ["手机", "手机号", "电话", "联系", "mobile", "phone", "tel", "微信"]
