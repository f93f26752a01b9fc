"""Chinese resident identity card numbers (居民身份证号码), GB 11643-1999 check digit validated.

An 18-character id: 6-digit area code, birth date YYYYMMDD, 3-digit sequence, check digit (0-9
or X). Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.checksums import cn_resident_id_is_valid
from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import DIGIT_START


class CnResidentIdRecognizer(CommsriskPatternRecognizer):
    """CN_RESIDENT_ID: found anywhere (glued to Chinese text too), kept only with a valid check digit."""

    COUNTRY_CODE = "cn"
    ENTITY = "CN_RESIDENT_ID"
    PATTERNS = [
        Pattern(
            "CN resident id",
            DIGIT_START
            + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])",
            0.7,
        )
    ]
    CONTEXT = ["身份证", "身份证号", "身份证号码", "证件号", "id", "identity"]

    def validate_result(self, pattern_text: str) -> bool:
        """Keep only ids whose check digit is right."""
        return cn_resident_id_is_valid(pattern_text)
