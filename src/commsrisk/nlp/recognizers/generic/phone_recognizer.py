"""Phone numbers in the local formats of each language's countries, and phone-shaped numbers beside a phone word.

Valid numbers via Google's libphonenumber (Presidio's PhoneRecognizer), with context words in the
message's language; numbers the numbering plans refuse only in a phone's shape and with a phone word.
"""

from __future__ import annotations

import re

from presidio_analyzer import Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import PhoneRecognizer as PresidioPhoneRecognizer

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE, DIGIT_END, DIGIT_START, END, START
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


MAX_DIGITS = 15
"""E.164's limit; an extension after "x" or "ext" does not count."""
THOUSANDS = re.compile(r"\d{1,3}(?:[ .,]\d{3})+")
"""1 250 000, 2.500.000: amounts, not phones (when no + or parentheses mark them as one)."""
DAY_FIRST_DATE = re.compile(r"\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d{2}")
EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$", re.IGNORECASE)
SHAPE_START = START + r"(?<![0-9][.-])"
SHAPE_END = r"(?![A-Za-z0-9]|[.-][0-9])"
"""Never a piece of a longer dotted or dashed number (211.84.172 of the address 211.84.172.4)."""
SHAPE_GATED = 0.05
"""Below the 0.4 threshold: only a phone word nearby lifts a shape to a finding."""


class PhoneShapeRecognizer(CommsriskPatternRecognizer):
    """PHONE_NUMBER in a phone's shape with a phone word nearby, where libphonenumber says no.

    People write numbers the numbering plans do not allow (typos, a foreign number in a local
    format, new or test ranges, "x1234" extensions), and a number the reviewer sees beside
    "call me on" is a phone to them. Grouped digits, a + or a parenthesised area code, or a
    trunk 0, with 7 to 15 digits; never without a phone word in the message's language nearby.
    """

    ENTITY = "PHONE_NUMBER"
    PATTERNS = [
        Pattern(
            "grouped digits",
            SHAPE_START
            + r"(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]\d{2,8}){1,4}"
            + r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"
            + SHAPE_END,
            SHAPE_GATED,
        ),
        Pattern(
            "international or area code, then digits",
            START + r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?|\(\d{2,5}\)[ .-]?)\d{6,12}" + END,
            SHAPE_GATED,
        ),
        Pattern("trunk 0, then digits", DIGIT_START + r"0\d{9,10}" + DIGIT_END, SHAPE_GATED),
    ]
    CONTEXT = ["phone", "mobile", "cell", "call", "tel"]
    REGEX_FLAGS = CASE_SENSITIVE | re.IGNORECASE

    def invalidate_result(self, pattern_text: str) -> bool:
        """Amounts, dates, IPv4 addresses, year-first references, too few or too many digits."""
        value = EXTENSION.sub("", pattern_text.strip())
        digits = sum(ch.isdigit() for ch in value)
        marked = value.startswith(("+", "(", "00"))
        return (
            not is_phone_shaped(value)
            or digits > MAX_DIGITS
            or (not marked and THOUSANDS.fullmatch(value) is not None)
            or DAY_FIRST_DATE.fullmatch(value) is not None
        )
