"""E-mail addresses, boundary-free (work when glued to Chinese or Japanese text).

Replaces Presidio's EmailRecognizer, whose TLD check calls tldextract (a network fetch of the
public suffix list on first use). Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE


class EmailRecognizer(PatternRecognizer):
    """EMAIL_ADDRESS: local part @ domain with a letter TLD; ASCII only."""

    PATTERNS = [
        Pattern(
            "email",
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![A-Za-z])",
            0.85,
        )
    ]
    CONTEXT = ["email", "mail", "e-mail"]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity="EMAIL_ADDRESS",
            name=f"EmailRecognizer_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=CASE_SENSITIVE,
        )
