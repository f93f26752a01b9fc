"""Read tabular input (CSV, JSON Lines, Parquet) row by row, with line numbers and per-line errors.

Used by training (labeled files) and scoring (message files) alike, so both report a bad line
the same way and read the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from commsrisk.errors import InvalidInputError

SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".jsonl", ".json", ".parquet")

Row = tuple[int, dict[str, Any] | None, str | None]


def _read_jsonl(path: Path) -> Iterator[Row]:
    """Yield (line number, row or None, error) per non-blank line; bad lines never stop the read."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                decoded = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield number, None, f"invalid UTF-8 at byte {err.start}"
                continue
            try:
                row = json.loads(decoded)
            except json.JSONDecodeError as err:
                yield number, None, f"invalid JSON ({err.msg} at column {err.colno})"
                continue
            if not isinstance(row, dict):
                yield number, None, "line is not a JSON object"
                continue
            yield number, row, None


def read_rows(path: Path) -> tuple[list[Row], list[str]]:
    """Read a CSV, JSONL or Parquet file into (line, row, error) triples and the column names.

    A bad line (invalid UTF-8 or JSON in JSON Lines) becomes (line, None, reason); the rest is read.

    Raises:
        InvalidInputError: the file is missing, of an unsupported type, or unreadable as a whole.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInputError(f"{path.name}: unsupported file type '{suffix}'; use one of {list(SUPPORTED_SUFFIXES)}")
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    if suffix in (".jsonl", ".json"):
        rows = list(_read_jsonl(path))
        columns = sorted({key for _, row, _ in rows if row for key in row})
        return rows, columns
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        first_line = 1
    else:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", on_bad_lines="error")
        except UnicodeDecodeError as err:
            raise InvalidInputError(f"{path.name}: not UTF-8 (byte {err.start}); save the CSV as UTF-8") from err
        except pd.errors.ParserError as err:
            raise InvalidInputError(f"{path.name}: malformed CSV ({err})") from err
        first_line = 2  # line 1 is the header
    records = frame.to_dict(orient="records")
    return [(index + first_line, row, None) for index, row in enumerate(records)], [str(c) for c in frame.columns]
