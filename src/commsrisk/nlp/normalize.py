"""Undo the usual tricks that hide PII from pattern recognizers, keeping a map back to the original.

A sender can split an IBAN with zero-width spaces, wrap a number in bidi controls, or type it in
full-width digits: the message looks the same to a reader, but no regex and no checksum sees the
value. `normalize_for_detection` removes invisible format characters and maps compatibility
digits and letters to ASCII; recognizers run on the result, and `NormalizedText.to_original_span`
maps every finding back, so evidence spans index the message as it was sent.

Most messages need none of this: they are checked with one regex search and returned unchanged,
without a per-character map.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u061c"  # Arabic letter mark
    "\u200b-\u200f"  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufeff"  # zero-width no-break space (BOM)
)
"""Format characters that render as nothing: removed."""
CJK_PUNCTUATION = frozenset("！（），：；？")
"""Full-width punctuation that Chinese and Japanese text uses as its own: kept as typed (mapping it
would change the text every pipeline was trained on and take most CJK messages off the fast path)."""
FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F) if chr(c) not in CJK_PUNCTUATION)
"""Full-width ASCII (U+FF01..U+FF5E) but CJK_PUNCTUATION."""
COMPATIBLE = re.escape(FULL_WIDTH) + (
    "\u00b2\u00b3\u00b9\u2070-\u2079\u2080-\u2089"  # superscript and subscript digits
    "\u2460-\u2473\u24ea-\u24ff"  # circled digits
    "\U0001d400-\U0001d7ff"  # mathematical letters and digits
)
"""Characters whose NFKC form is plain ASCII: mapped to it."""
NEEDS_CHANGE = re.compile(f"[{INVISIBLE}]|[{COMPATIBLE}]|[^\\D0-9]")
"""Any character that `normalize_for_detection` changes (`[^\\D0-9]`: a decimal digit outside ASCII)."""
_INVISIBLE = re.compile(f"[{INVISIBLE}]")


def _replacement(ch: str) -> str:
    """What one character matched by NEEDS_CHANGE becomes ('' for invisible ones, itself if kept)."""
    if _INVISIBLE.match(ch):
        return ""
    if ch.isdecimal():  # any script's decimal digit, e.g. Arabic-Indic, Devanagari, full-width
        return str(unicodedata.decimal(ch))
    mapped = unicodedata.normalize("NFKC", ch)
    if mapped.isascii() and (mapped.isalnum() or (len(mapped) == 1 and mapped.isprintable() and mapped != " ")):
        return mapped
    return ch


@dataclass(frozen=True)
class NormalizedText:
    """Text for the recognizers and the way back to the original.

    `to_original[i]` is the index in `original` of the character that `text[i]` came from; it is
    None when nothing changed (then `text is original`).
    """

    text: str
    original: str
    to_original: tuple[int, ...] | None = None

    @property
    def changed(self) -> bool:
        """Whether normalisation changed anything."""
        return self.to_original is not None

    def to_original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map `text[start:end]` to the span of `original` it came from.

        The start is the original index of the first character; the end is the index just after
        the original of the last one, so invisible characters inside the span are covered and those
        at its edges are not. An empty span maps to an empty span.
        """
        if self.to_original is None:
            return start, end
        index = self.to_original
        size = len(index)
        start = min(max(start, 0), size)
        end = min(max(end, start), size)
        orig_start = index[start] if start < size else len(self.original)
        if end == start:
            return orig_start, orig_start
        return orig_start, index[end - 1] + 1


def normalize_for_detection(text: str) -> NormalizedText:
    """Remove invisible format characters and map compatibility digits and letters to ASCII.

    Zero-width characters, the soft hyphen and bidi controls are dropped; full-width ASCII (but
    CJK_PUNCTUATION), decimal digits of any script, super- and subscript, circled and mathematical
    digits and letters become ASCII. Everything else, CJK included, is left as it is.
    """
    if text.isascii() or NEEDS_CHANGE.search(text) is None:
        return NormalizedText(text, text)
    parts: list[str] = []
    index: list[int] = []
    done = 0
    for match in NEEDS_CHANGE.finditer(text):
        at = match.start()
        if at > done:
            parts.append(text[done:at])
            index.extend(range(done, at))
        replacement = _replacement(match.group())
        parts.append(replacement)
        index.extend([at] * len(replacement))
        done = at + 1
    parts.append(text[done:])
    index.extend(range(done, len(text)))
    normalized = "".join(parts)
    if normalized == text:
        return NormalizedText(text, text)
    return NormalizedText(normalized, text, tuple(index))
