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
        """Presidio's phone matches, less those that are dotted IPv4 addresses."""
        found = super().analyze(text, entities, nlp_artifacts)  # type: ignore[arg-type]
        return [r for r in found if not DOTTED_IPV4.fullmatch(text[r.start : r.end].strip())]
