"""Read tabular input (CSV, JSON Lines, Parquet) row by row, with line numbers and per-line errors.

Used by training (labeled files) and scoring (message files) alike, so both report a bad line
the same way and read the rest. A row holding invalid Unicode (a lone surrogate, or bytes that
are not UTF-8) is rejected here, the same way for every format; see `ingest.encoding`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from commsrisk.errors import InvalidInputError
from commsrisk.ingest.encoding import DECODE_ERRORS, decode_bytes, invalid_unicode

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
            yield _checked(number, row, from_bytes=False)


def _checked(line: int, row: dict[str, Any], *, from_bytes: bool) -> Row:
    """The row, or its rejection when a value holds invalid Unicode (nothing downstream could encode it)."""
    problem = invalid_unicode(row, from_bytes=from_bytes)
    return (line, None, problem) if problem else (line, row, None)


def _read_frame(path: Path, suffix: str) -> pd.DataFrame:
    """The whole CSV or Parquet file as a frame of Python objects; bad bytes kept for `_checked`.

    Raises:
        InvalidInputError: the file cannot be read or parsed as a whole.
    """
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except OSError as err:
            raise InvalidInputError(f"{path.name}: cannot read the file ({err.__class__.__name__})") from err
        except Exception as err:  # pyarrow raises its own types (ArrowInvalid, ...) for a broken file
            raise InvalidInputError(f"{path.name}: not a readable Parquet file ({err.__class__.__name__})") from err
    try:
        return pd.read_csv(
            path,
            dtype=object,
            keep_default_na=False,
            encoding="utf-8",
            encoding_errors=DECODE_ERRORS,
            on_bad_lines="error",
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except UnicodeEncodeError as err:  # pandas keeps column names as Arrow strings, which refuse bad bytes
        raise InvalidInputError(f"{path.name}: the header holds invalid UTF-8; save the file as UTF-8") from err
    except pd.errors.ParserError as err:
        raise InvalidInputError(f"{path.name}: malformed CSV ({err})") from err
    except OSError as err:
        raise InvalidInputError(
            f"{path.name}: cannot read the file ({err.strerror or err.__class__.__name__})"
        ) from err


def _csv_record_lines(path: Path, count: int) -> list[int]:
    """The line each CSV record starts on, so a record with a quoted line break does not shift the rest.

    Falls back to one line per record after the header when the count disagrees with pandas'.
    """
    starts: list[int] = []
    try:
        with path.open(encoding="utf-8", errors=DECODE_ERRORS, newline="") as handle:
            reader = csv.reader(handle)
            previous = 0
            for record in reader:
                if record:  # pandas skips blank lines too
                    starts.append(previous + 1)
                previous = reader.line_num
    except (OSError, csv.Error):
        starts = []
    records = starts[1:]  # the first record is the header
    return records if len(records) == count else list(range(2, count + 2))


def stream_rows(path: Path, *, batch_rows: int = 4096) -> tuple[Iterator[Row], list[str] | None]:
    """The (line, row, error) triples of a CSV, JSONL or Parquet file, read as they are asked for.

    For archives too big for memory: Parquet is read by record batches, CSV and JSON Lines line
    by line. The column names come back at once for CSV and Parquet (None for JSON Lines, whose
    rows may differ). Bad rows are rejected as `read_rows` rejects them. A Parquet row's line is
    its row number; a CSV record's is the line it starts on.

    Raises:
        InvalidInputError: as `read_rows`, when the file or its header cannot be read.
    """
    suffix = _checked_suffix(path)
    if suffix in (".jsonl", ".json"):
        return _opened_jsonl(path), None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except OSError as err:
            raise InvalidInputError(f"{path.name}: cannot read the file ({err.__class__.__name__})") from err
        except Exception as err:  # pyarrow's own types (ArrowInvalid, ...) for a broken file
            raise InvalidInputError(f"{path.name}: not a readable Parquet file ({err.__class__.__name__})") from err
        columns = list(parquet.schema_arrow.names)
        _check_header(path, columns)
        return _parquet_rows(parquet, batch_rows), columns
    try:
        with path.open(encoding="utf-8", errors=DECODE_ERRORS, newline="") as handle:
            header = next(csv.reader(handle), [])
    except OSError as err:
        raise InvalidInputError(
            f"{path.name}: cannot read the file ({err.strerror or err.__class__.__name__})"
        ) from err
    _check_header(path, header)
    return _csv_rows(path), header


def _opened_jsonl(path: Path) -> Iterator[Row]:
    try:
        yield from _read_jsonl(path)
    except OSError as err:
        raise InvalidInputError(
            f"{path.name}: cannot read the file ({err.strerror or err.__class__.__name__})"
        ) from err


def _parquet_rows(parquet: Any, batch_rows: int) -> Iterator[Row]:
    line = 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            line += 1
            yield _checked(
                line, {k: decode_bytes(v) if isinstance(v, bytes) else v for k, v in row.items()}, from_bytes=True
            )


def _csv_rows(path: Path) -> Iterator[Row]:
    """CSV records as rows keyed by the header, each with the line it starts on; a short or long record rejected."""
    with path.open(encoding="utf-8", errors=DECODE_ERRORS, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        start = reader.line_num + 1
        try:
            for record in reader:
                line, start = start, reader.line_num + 1
                if not record:
                    continue
                if len(record) != len(header):
                    yield line, None, f"{len(record)} fields where the header has {len(header)}"
                    continue
                yield _checked(line, dict(zip(header, record, strict=True)), from_bytes=True)
        except csv.Error as err:
            yield start, None, f"malformed CSV ({err}); the rest of the file was not read"


def _check_header(path: Path, columns: list[str]) -> None:
    problem = invalid_unicode({f"header column {i + 1}": c for i, c in enumerate(columns)}, from_bytes=True)
    if problem:
        raise InvalidInputError(f"{path.name}: {problem}")


def _checked_suffix(path: Path) -> str:
    """The file's suffix, once the file is known to exist and be of a type we read.

    Raises:
        InvalidInputError: a folder, a missing file or an unsupported type.
    """
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a folder; give one file ({', '.join(SUPPORTED_SUFFIXES)})")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInputError(f"{path.name}: unsupported file type '{suffix}'; use one of {list(SUPPORTED_SUFFIXES)}")
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    return suffix


def read_rows(path: Path) -> tuple[list[Row], list[str]]:
    """Read a CSV, JSONL or Parquet file into (line, row, error) triples and the column names.

    A bad line (invalid UTF-8 or JSON in JSON Lines; invalid Unicode in any format) becomes
    (line, None, reason); the rest is read.

    Raises:
        InvalidInputError: the file is missing, of an unsupported type, or unreadable as a whole
            (including a CSV header that is not UTF-8).
    """
    suffix = _checked_suffix(path)
    if suffix in (".jsonl", ".json"):
        try:
            rows = list(_read_jsonl(path))
        except OSError as err:
            raise InvalidInputError(
                f"{path.name}: cannot read the file ({err.strerror or err.__class__.__name__})"
            ) from err
        columns = sorted({key for _, row, _ in rows if row for key in row})
        return rows, columns
    frame = _read_frame(path, suffix)
    columns = [str(c) for c in frame.columns]
    _check_header(path, columns)
    records = frame.to_dict(orient="records")
    lines = list(range(1, len(records) + 1)) if suffix == ".parquet" else _csv_record_lines(path, len(records))
    return [
        _checked(
            lines[index],
            {k: decode_bytes(v) if isinstance(v, bytes) else v for k, v in row.items()},
            from_bytes=True,
        )
        for index, row in enumerate(records)
    ], columns
