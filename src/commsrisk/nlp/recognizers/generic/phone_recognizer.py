"""Phone numbers in the local formats of each language's countries.

Via Google's libphonenumber (Presidio's PhoneRecognizer), with context words in the message's language.
"""

from __future__ import annotations

from presidio_analyzer.predefined_recognizers import PhoneRecognizer as PresidioPhoneRecognizer

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
