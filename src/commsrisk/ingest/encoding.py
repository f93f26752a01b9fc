r"""Invalid Unicode in input records, found where records come in so that no reader passes it on.

The policy, one for every reader (JSON Lines, CSV, Parquet, stdin, the text argument): a record
with a lone surrogate (a JSON escape such as "\ud800") or with bytes that are not UTF-8 in any of
its values or field names is rejected, reported with its line and the field, and the rest of the
input is read. It is never repaired with U+FFFD: that would change the text a reviewer sees as
evidence, and a compliance score must be of the message as sent. It is never passed on either:
the language detector, the NLP pipeline and the JSON writer all fail on text that cannot be
encoded as UTF-8, and one such line would stop a whole run.

Readers that decode bytes themselves (CSV, Parquet binary columns, command-line arguments) use
the "surrogateescape" error handler, so an undecodable byte becomes U+DC80-U+DCFF and is caught
here and named as the byte it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

DECODE_ERRORS = "surrogateescape"
"""Error handler for readers that decode bytes: bad bytes survive as surrogates, found below."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def decode_bytes(value: bytes) -> str:
    """UTF-8 text of `value`; undecodable bytes are kept as surrogates for `invalid_unicode` to report."""
    return value.decode("utf-8", DECODE_ERRORS)


def invalid_unicode(row: Mapping[str, Any], *, from_bytes: bool = False) -> str | None:
    """The reason `row` must be rejected for invalid Unicode, or None when every string in it is valid.

    Values inside lists and mappings are checked too. The reason names the field, the code point
    or byte and its position, never the text. `from_bytes` says the reader decoded bytes with
    `decode_bytes`, so that U+DC80-U+DCFF are reported as the undecodable bytes they stand for.
    """
    for where, text in _strings(row, ""):
        found = _SURROGATE.search(text)
        if found is None:
            continue
        code = ord(found.group())
        subject = f"field '{where}'" if where is not None else "a field name"
        if from_bytes and code in _ESCAPED_BYTES:
            return (
                f"{subject} holds invalid UTF-8 (byte 0x{code - 0xDC00:02X} at character {found.start()}); "
                "save the file as UTF-8"
            )
        return (
            f"{subject} holds invalid Unicode (lone surrogate U+{code:04X} at character {found.start()}); "
            "the exporter wrote half of a UTF-16 pair"
        )
    return None


def _strings(value: Any, where: str) -> Iterator[tuple[str | None, str]]:
    """(field path or None for a field name, string) for every string in a JSON-like value."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key)
            if _SURROGATE.search(name):
                yield None, name
                continue
            yield from _strings(item, f"{where}.{name}" if where else name)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}")
