"""Messages from files and stdin for the CLI: each line validated, bad lines reported, never dropped.

Every reader here rejects a line holding invalid Unicode (a lone surrogate, bytes that are not
UTF-8) with its reason, instead of repairing it; the policy and why are in `ingest.encoding`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from commsrisk.ingest.encoding import invalid_unicode
from commsrisk.ingest.tabular import read_rows
from commsrisk.schema import DEFAULT_LIMITS, MESSAGE_FIELDS, Limits, Message, describe_validation_error


@dataclass(frozen=True)
class MessageLine:
    """One input line: a valid message, or the reason it is not one."""

    line: int
    message: Message | None
    error: str | None


def parse_message(row: dict[str, Any], limits: Limits) -> Message:
    """Validate one row as a Message; columns that are not message fields are ignored.

    Raises:
        ValidationError: a field breaks its rule.
    """
    fields = {k: v for k, v in row.items() if k in MESSAGE_FIELDS and v is not None and v == v and v != ""}
    if "text" not in fields and "text" in row:
        fields["text"] = row["text"] if row["text"] is not None else ""
    return Message.model_validate(fields, context={"limits": limits})


def _validated(line: int, row: dict[str, Any] | None, error: str | None, limits: Limits) -> MessageLine:
    if row is None:
        return MessageLine(line, None, error or "unreadable line")
    try:
        return MessageLine(line, parse_message(row, limits), None)
    except ValidationError as err:
        return MessageLine(line, None, describe_validation_error(err))


def read_message_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> Iterator[MessageLine]:
    """Messages of a CSV, JSONL or Parquet file with their line numbers.

    The file is read when this is called (not when the first line is asked for), so that a
    missing or unreadable file fails before any model is loaded.

    Raises:
        InvalidInputError: the file is missing, of an unsupported type, or unreadable as a whole.
    """
    rows, _ = read_rows(path)
    return (_validated(line, row, error, limits) for line, row, error in rows)


def read_message_stream(lines: Iterator[bytes], limits: Limits = DEFAULT_LIMITS) -> Iterator[MessageLine]:
    """Messages from a stream: a JSON object per line, or a line of plain text per message."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            decoded = raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as err:
            yield MessageLine(number, None, f"invalid UTF-8 at byte {err.start}")
            continue
        row: dict[str, Any] = {"text": decoded}
        if decoded.lstrip().startswith("{"):
            try:
                parsed = json.loads(decoded)
            except json.JSONDecodeError as err:
                yield MessageLine(number, None, f"invalid JSON ({err.msg} at column {err.colno})")
                continue
            row = parsed if isinstance(parsed, dict) else row
        problem = invalid_unicode(row)
        yield MessageLine(number, None, problem) if problem else _validated(number, row, None, limits)
