"""Phone numbers in the local formats of each language's countries.

Via Google's libphonenumber (Presidio's PhoneRecognizer), with context words in the message's language.
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import PhoneRecognizer as PresidioPhoneRecognizer

from commsrisk.nlp.recognizers.generic.ip_recognizer import OCTET

DOTTED_IPV4 = re.compile(OCTET + r"(?:\." + OCTET + r"){3}")
"""libphonenumber reads 99.239.174.89 as a phone number; a valid dotted IPv4 is an address instead."""
MIN_DIGITS = 7
"""Fewer digits are amounts, extensions and short codes (Luxembourg's four-digit numbers read
"4412", "75 000" and "30/11" in French messages as phones: precision 0.30 on the PII set)."""
YEAR_FIRST = re.compile(r"(?:19|20)\d{2}[-/.]")
"""2024-1187, 2024-11-0457: references and dates that start with a year."""

REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB", "CA", "AU", "SG", "HK", "IE", "IN", "DE", "IL", "BR"),
    "es": ("ES", "MX", "AR", "CO", "CL", "US"),
    "de": ("DE", "AT", "CH"),
    "fr": ("FR", "BE", "CH", "CA", "LU"),
    "ja": ("JP",),
    "zh": ("CN", "HK", "TW"),
}


class RegionalPhoneRecognizer(PresidioPhoneRecognizer):
    """PHONE_NUMBER for the regions where a language is spoken in our users' firms."""

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            context=context,
            supported_language=supported_language,
            supported_regions=REGIONS.get(supported_language, REGIONS["en"]),
            name=f"PhoneRecognizer_{supported_language}",
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Presidio's phone matches, less IPv4 addresses, short numbers and year-first references."""
        found = super().analyze(text, entities, nlp_artifacts)  # type: ignore[arg-type]
        return [r for r in found if is_phone_shaped(text[r.start : r.end].strip())]


def is_phone_shaped(value: str) -> bool:
    """Enough digits, not a dotted IPv4 address, not starting with a year."""
    return (
        sum(ch.isdigit() for ch in value) >= MIN_DIGITS
        and not DOTTED_IPV4.fullmatch(value)
        and not YEAR_FIRST.match(value)
    )
