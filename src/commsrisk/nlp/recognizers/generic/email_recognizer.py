"""E-mail addresses, boundary-free (work when glued to Chinese or Japanese text).

Replaces Presidio's EmailRecognizer, whose TLD check calls tldextract (a network fetch of the
public suffix list on first use). Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer


class BoundaryFreeEmailRecognizer(CommsriskPatternRecognizer):
    """EMAIL_ADDRESS: local part @ domain with a letter TLD; ASCII only."""

    ENTITY = "EMAIL_ADDRESS"
    PATTERNS = [
        Pattern(
            "email",
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![A-Za-z])",
            0.85,
        )
    ]
    CONTEXT = ["email", "mail", "e-mail"]
