"""The messages of an archive's inputs, in one fixed order, each scored or rejected with its place.

An input is a tabular file (JSON Lines, CSV, Parquet, read with a column mapping), an export
that `ingest.archive` reads (e-mail, WhatsApp, Slack, Teams), or a folder of either, walked in
name order. The order is the same on every read of the same inputs, which is what lets a
checkpoint say "the first N items are done" and a rerun skip exactly those.

Every item has a key: the input's `message_id`, else a stable hash of the record (the archive
readers' `record_id`, or the hash of a tabular row's validated fields), so results can be
joined back to the archive and a rerun produces the same keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from commsrisk.errors import InvalidInputError
from commsrisk.ingest.archive import ReadOptions, read_archive
from commsrisk.ingest.columns import ColumnMap
from commsrisk.ingest.messages import parse_message
from commsrisk.ingest.records import ArchiveCounts, ArchiveMessage
from commsrisk.ingest.slack import looks_like_slack_export
from commsrisk.ingest.tabular import stream_rows
from commsrisk.schema import DEFAULT_LIMITS, MESSAGE_FIELDS, Limits, Message, describe_validation_error

TABULAR_SUFFIXES: tuple[str, ...] = (".jsonl", ".csv", ".parquet")
"""Files read as tables of messages; everything else goes to the archive readers (.json is Slack or Teams)."""


@dataclass(frozen=True)
class InputItem:
    """One record of the inputs: a message to score, or the reason it cannot be (never its text)."""

    source: str
    position: int
    message: Message | None
    reason: str | None = None


@dataclass(frozen=True)
class InputOptions:
    """How to read the inputs: what the files do not say themselves."""

    column_map: ColumnMap = field(default_factory=ColumnMap)
    limits: Limits = DEFAULT_LIMITS
    read: ReadOptions = field(default_factory=ReadOptions)
    business_unit: str | None = None
    """The business unit of every message that does not name its own."""


def input_files(paths: Sequence[Path]) -> list[Path]:
    """The files (and Slack export folders) the inputs stand for, in the order they are read.

    Raises:
        InvalidInputError: an input that does not exist.
    """
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InvalidInputError(f"{path}: no such file or folder")
        found.extend(_walk(path))
    return found


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file() or looks_like_slack_export(path):
        yield path
        return
    for child in sorted(path.iterdir()):
        if not child.name.startswith("."):
            yield from _walk(child)


def read_inputs(
    files: Sequence[Path], options: InputOptions, counts: ArchiveCounts | None = None
) -> Iterator[InputItem]:
    """Every record of `files` (from `input_files`) in order, as a message or a rejection.

    Raises:
        InvalidInputError: a tabular file that cannot be read at all, or a column mapping that
            names a column the file does not have.
    """
    tally = counts if counts is not None else ArchiveCounts()
    for path in files:
        if path.is_file() and path.suffix.lower() in TABULAR_SUFFIXES:
            yield from _tabular(path, options, tally)
        else:
            yield from _archive(path, options, tally)


def _tabular(path: Path, options: InputOptions, counts: ArchiveCounts) -> Iterator[InputItem]:
    rows, columns = stream_rows(path)
    if columns is not None:
        options.column_map.check(MESSAGE_FIELDS, columns, path.name)
    for line, row, error in rows:
        item = tabular_item(path.name, line, row, error, options)
        if item.message is None:
            counts.rejected += 1
        else:
            counts.messages += 1
        yield item


def tabular_item(
    source: str, line: int, row: dict[str, Any] | None, error: str | None, options: InputOptions
) -> InputItem:
    """One tabular row as a message (mapped, validated, keyed) or its rejection; shared with the Spark job."""
    if row is None:
        return InputItem(source, line, None, error or "unreadable line")
    fields = options.column_map.apply(row)
    if options.business_unit and not fields.get("business_unit"):
        fields["business_unit"] = options.business_unit
    try:
        message = parse_message(fields, options.limits)
    except ValidationError as err:
        return InputItem(source, line, None, describe_validation_error(err))
    if message.message_id is None:
        message = message.model_copy(update={"message_id": stable_message_id(message)})
    return InputItem(source, line, message)


def stable_message_id(message: Message) -> str:
    """The id of a message whose record has none: a hash of its validated fields, the same on every read."""
    digest = hashlib.sha256(message.model_dump_json(exclude={"message_id"}).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:32]}"


def _archive(path: Path, options: InputOptions, counts: ArchiveCounts) -> Iterator[InputItem]:
    for record in read_archive(path, counts=counts, options=options.read):
        if not isinstance(record, ArchiveMessage):
            yield InputItem(record.source, record.position, None, record.reason)
            continue
        try:
            message = record.to_message(options.limits)
        except ValidationError as err:
            counts.messages -= 1  # read as a message, but it cannot be scored: a rejection
            counts.rejected += 1
            yield InputItem(record.source, record.position, None, describe_validation_error(err))
            continue
        if options.business_unit and not message.business_unit:
            message = message.model_copy(update={"business_unit": options.business_unit})
        yield InputItem(record.source, record.position, message)
