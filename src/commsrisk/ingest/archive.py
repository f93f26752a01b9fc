"""Read any archive a firm exports (e-mail, WhatsApp, Slack, Teams): one entry point, format detected.

`read_archive` takes a file or a folder and yields, in the source's order, an `ArchiveMessage`
per message and a `RejectedRecord` per record that could not be read, streaming: one reader
per format (`mail`, `whatsapp`, `slack`, `teams`), each reading one record at a time where its
format allows (a JSON file is parsed whole: the stdlib has no streaming JSON parser).

The format of a file is its suffix's (.eml, .mbox, .msg, .txt for WhatsApp), for .json and
other files what its first bytes show (OLE header: .msg; "From ": mbox; mail headers: .eml; a
WhatsApp date line; Graph fields: Teams; "ts": Slack); `format` overrides it. A folder is walked
in name order, hidden files skipped; a folder that is a Slack export (channels.json, users.json,
or folders of YYYY-MM-DD.json days) is read as one. A file of no known format is reported, not
skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Literal, get_args

from commsrisk.errors import InvalidInputError
from commsrisk.ingest.mail import read_eml, read_mbox, read_msg
from commsrisk.ingest.records import ArchiveCounts, ArchiveItem, ArchiveMessage, RejectedRecord
from commsrisk.ingest.slack import looks_like_slack_export, read_slack_export, read_slack_file
from commsrisk.ingest.teams import read_teams_file
from commsrisk.ingest.whatsapp import is_whatsapp_line, read_whatsapp

ArchiveFormat = Literal["eml", "mbox", "msg", "whatsapp", "slack", "teams"]
ARCHIVE_FORMATS: tuple[str, ...] = get_args(ArchiveFormat)

SUFFIX_FORMATS: dict[str, ArchiveFormat] = {
    ".eml": "eml",
    ".mbox": "mbox",
    ".mbx": "mbox",
    ".msg": "msg",
    ".txt": "whatsapp",
}
"""Suffixes that name their format; .json and the rest are told by their content."""

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAIL_HEADER = re.compile(
    rb"(?im)^(?:From|Message-ID|Received|Return-Path|MIME-Version|Date|Subject|Delivered-To|X-[\w-]+)[ \t]*:"
)
_TEAMS_KEYS = (b'"createdDateTime"', b'"@odata.context"', b'"chatId"', b'"messageType"')
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class ReadOptions:
    """What a caller may tell the readers that the files do not say."""

    day_first: bool | None = None
    """WhatsApp: the date order, when detection from the dates is not wanted."""
    assume_tz: tzinfo = UTC
    """WhatsApp: the zone of the export's times (exports carry none)."""


def read_archive(
    path: Path,
    *,
    format: ArchiveFormat | None = None,
    counts: ArchiveCounts | None = None,
    options: ReadOptions | None = None,
) -> Iterator[ArchiveItem]:
    """Messages and rejected records of a file or folder, in order (see the module doc).

    The path is checked when this is called, so that a wrong path fails before any work;
    `counts`, when given, is filled in as the records are read (messages, rejections, and what
    was skipped on purpose: system lines, deleted messages, attachment-only messages).

    Raises:
        InvalidInputError: the path does not exist, or `format` is not one of ARCHIVE_FORMATS.
    """
    if format is not None and format not in ARCHIVE_FORMATS:
        raise InvalidInputError(f"format {format!r} is not known; use one of {list(ARCHIVE_FORMATS)}")
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    tally = counts if counts is not None else ArchiveCounts()
    read = _folder if path.is_dir() else _file
    return _counted(read(path, format, tally, options or ReadOptions()), tally)


def detect_format(path: Path) -> ArchiveFormat | None:
    """The format of a file from its suffix, else its first bytes; None when neither tells."""
    by_suffix = SUFFIX_FORMATS.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return None
    return _sniff(head, path)


def _sniff(head: bytes, path: Path) -> ArchiveFormat | None:
    """The format the first bytes of a file show."""
    if head.startswith(_OLE_MAGIC):
        return "msg"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"From "):
        return "mbox"
    if text[:1] in (b"[", b"{"):
        if any(key in head for key in _TEAMS_KEYS):
            return "teams"
        if b'"ts"' in head:
            return "slack"
    first_line = text.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
    if is_whatsapp_line(first_line):
        return "whatsapp"
    if _MAIL_HEADER.match(text) and len(_MAIL_HEADER.findall(head)) >= 2:
        return "eml"
    if path.suffix.lower() == ".json" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.stem):
        return "slack"  # an empty day of a Slack export ("[]")
    return None


def _folder(
    folder: Path, format: ArchiveFormat | None, counts: ArchiveCounts, options: ReadOptions
) -> Iterator[ArchiveItem]:
    """A folder's files in name order, a Slack export as one; hidden files and folders skipped."""
    if format == "slack" or (format is None and looks_like_slack_export(folder)):
        yield from read_slack_export(folder, counts)
        return
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _folder(child, format, counts, options)
        else:
            yield from _file(child, format, counts, options)


def _file(
    path: Path, format: ArchiveFormat | None, counts: ArchiveCounts, options: ReadOptions
) -> Iterator[ArchiveItem]:
    """One file through the reader of its format, or its rejection when the format is unknown."""
    kind = format or detect_format(path)
    reader = _READERS.get(kind) if kind is not None else None
    if reader is None:
        yield RejectedRecord(
            str(path),
            0,
            f"not a known archive format (suffix '{path.suffix}'); give format= one of {list(ARCHIVE_FORMATS)}",
        )
        return
    yield from reader(path, counts, options)


_READERS: dict[ArchiveFormat, Callable[[Path, ArchiveCounts, ReadOptions], Iterator[ArchiveItem]]] = {
    "eml": lambda path, counts, _: read_eml(path, counts),
    "mbox": lambda path, counts, _: read_mbox(path, counts),
    "msg": lambda path, counts, _: read_msg(path, counts),
    "whatsapp": lambda path, counts, options: read_whatsapp(
        path, counts, day_first=options.day_first, assume_tz=options.assume_tz
    ),
    "slack": lambda path, counts, _: read_slack_file(path, counts),
    "teams": lambda path, counts, _: read_teams_file(path, counts),
}
"""The reader of each format, all called the same way."""


def _counted(items: Iterator[ArchiveItem], counts: ArchiveCounts) -> Iterator[ArchiveItem]:
    for item in items:
        if isinstance(item, ArchiveMessage):
            counts.messages += 1
        else:
            counts.rejected += 1
        yield item
