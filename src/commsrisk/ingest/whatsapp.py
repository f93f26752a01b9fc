"""WhatsApp "Export chat" text files, from Android and iOS, in the date formats of several locales.

No library reads these, so the line grammar here is hand-written. A message starts with a line
"<date>, <time> - <sender>: <text>" (Android) or "[<date>, <time>] <sender>: <text>" (iOS), for
example `12/31/23, 9:41 PM - Anna: hi` (US), `31/12/2023, 21:41 - Anna: hi` (UK/EU),
`[31.12.23, 21:41:05] Anna: hi` (iOS, German), `2023/12/31 21:41 - Anna: hi`; the space before
AM/PM may be the narrow no-break space (U+202F) of newer exports.

The rules:
- A line that does not start with a date and time continues the message before it (a message
  with line breaks). A line that does not parse and comes before any parsed line is reported as
  not parsable (its line number, never its text): there is nothing for it to continue.
- Day or month first: one order per file, found by a first pass over the dates (a 13 or more
  says which field is the day); when every date is ambiguous, day first, except for a file with
  AM/PM times, which is read month first (the US format). Year first when the first field has
  four digits. `day_first` overrides.
- A dated line without "sender: " is a system line (encryption notice, "X added Y", "X left");
  so is a line whose would-be sender holds a system phrase or a quotation mark (a subject change
  quoting a subject with a colon), and an iOS line whose text starts with U+200E, which iOS
  puts before system texts. System lines are skipped and counted, never scored.
- "<Media omitted>", "<Anhang fehlt>", "image omitted", "<attached: ...>" and the like are
  attachment lines: counted and taken out of the text; a message that is only an attachment is
  skipped (counted), one with a caption keeps the caption. "This message was deleted" and its
  translations are counted as deleted.
- Exports carry no time zone: times are read in `assume_tz`, UTC unless the caller says.
- A message holding bytes that are not UTF-8 is rejected with its line (`ingest.encoding`).
The conversation id is the export's file name (its folder's for iOS's `_chat.txt`); record ids
are stable hashes, with a suffix for repeats of one message in the same minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from commsrisk.ingest.encoding import decode_bytes, invalid_unicode
from commsrisk.ingest.records import ArchiveCounts, ArchiveItem, ArchiveMessage, RejectedRecord, stable_record_id

_SPACE = "[ \u00a0\u202f]"
_HEADER = re.compile(
    rf"[\u200e\u200f]?(?P<open>\[)?(?P<date>\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}),?{_SPACE}"
    rf"(?P<time>\d{{1,2}}[:.]\d{{2}}(?:[:.]\d{{2}})?)(?:{_SPACE}?(?P<ampm>[AaPp]\.?{_SPACE}?[Mm]\.?))?"
    rf"(?(open)\]{_SPACE}|{_SPACE}?[-–]{_SPACE})(?P<rest>.*)"
)
_DATE_PARTS = re.compile(r"[./-]")
_TIME_PARTS = re.compile(r"[:.]")

_LRM = "\u200e"
_SYSTEM_SENDER = re.compile(
    r"""["“”„«»「」]|\b(?:changed the (?:subject|group|group name|group description)|created group|added|removed"""
    r"""|hat (?:den Betreff|den Gruppennamen|die Gruppenbeschreibung|die Gruppe)|cambió (?:el asunto|el nombre"""
    r"""|la descripción)|creó el grupo|a (?:modifié|changé) (?:le sujet|le nom|la description)|a créé le groupe)\b"""
    r"""|更改了群|修改了群|创建了群|建立了群組|グループ名を|グループの説明を|件名を変更""",
    re.IGNORECASE,
)
"""Phrases of system lines that can hold ': ' (a quoted subject), found in the part before it."""

_ATTACHMENT = re.compile(
    r"<(?:Media omitted|Medien ausgeschlossen|Medien weggelassen|Anhang fehlt|Multimedia omitido|Archivo omitido"
    r"|Médias omis|Fichier omis|媒体已省略|省略媒体|メディアは含まれていません)>"
    r"|<(?:attached|Anhang|adjunto|pièce jointe|附件|添付ファイル)\s*:\s*[^<>]+>"
    r"|(?:.{1,200} • .{0,60})?(?:(?:image|video|audio|sticker|GIF|document|Contact card) omitted"
    r"|(?:Bild|Video|Audio|Sticker|GIF|Dokument|Kontaktkarte) weggelassen"
    r"|(?:imagen|video|audio|sticker|GIF|documento) omitid[oa]|(?:image|vidéo|audio|autocollant|GIF|document) omise?)"
    r"|\S+\.\w{2,5} \((?:file attached|Datei angehängt|archivo adjunto|fichier joint)\)",
    re.IGNORECASE,
)
"""Attachment lines, as a whole line: Android's "<Media omitted>", iOS's "image omitted" (a document's
name and page count before it, joined by " • "), "<attached: ...>", a media file "(file attached)"."""
_DELETED = re.compile(
    r"(?:This message was deleted|You deleted this message|Diese Nachricht wurde gelöscht|Du hast diese Nachricht"
    r" gelöscht|Se eliminó este mensaje|Eliminaste este mensaje|Ce message a été supprimé|Vous avez supprimé ce"
    r" message|此消息已删除|你删除了此消息|此訊息已刪除|このメッセージは削除されました|メッセージを削除しました)\.?",
    re.IGNORECASE,
)


@dataclass
class _Pending:
    """The message being read: its first line and what the lines after it add."""

    line: int
    sender: str
    sent_at: datetime | None
    lines: list[str] = field(default_factory=list)
    reason: str | None = None
    system: bool = False
    """A system line: its continuation lines are absorbed with it, and it is skipped and counted."""


@dataclass
class _Repeats:
    """How often each record id was seen in the current minute, so that repeats get distinct ids."""

    at: datetime | None = None
    seen: dict[str, int] = field(default_factory=dict)

    def distinct(self, record_id: str, at: datetime | None) -> str:
        if at != self.at:
            self.at, self.seen = at, {}
        count = self.seen.get(record_id, 0) + 1
        self.seen[record_id] = count
        return record_id if count == 1 else f"{record_id}-{count}"


def is_whatsapp_line(line: str) -> bool:
    """Whether a line starts a WhatsApp message or system line (for telling a file's format)."""
    return _HEADER.fullmatch(line.removeprefix("\ufeff")) is not None


def read_whatsapp(
    path: Path, counts: ArchiveCounts, *, day_first: bool | None = None, assume_tz: tzinfo = UTC
) -> Iterator[ArchiveItem]:
    """Every message of a WhatsApp export in order; position is the line the message starts on.

    The file is read twice, line by line (once to settle the date order, unless `day_first` is
    given), so memory stays constant however long the chat.
    """
    source = str(path)
    try:
        order = day_first if day_first is not None else _day_first(path)
        handle = path.open("rb")
    except OSError as err:
        yield RejectedRecord(source, 0, f"cannot read the file ({err.strerror or type(err).__name__})")
        return
    conversation = path.parent.name if path.stem == "_chat" and path.parent.name else path.stem
    repeats = _Repeats()
    pending: _Pending | None = None
    with handle:
        for number, raw in enumerate(handle, start=1):
            line = decode_bytes(raw).rstrip("\r\n")
            if number == 1:
                line = line.removeprefix("\ufeff")
            header = _HEADER.fullmatch(line)
            if header is None:
                if pending is not None:
                    pending.lines.append(line)
                elif line.strip():
                    yield RejectedRecord(
                        source, number, "not a WhatsApp message line (no date and time at its start, nothing before it)"
                    )
                continue
            if pending is not None:
                yield from _finish(pending, source, path.name, conversation, repeats, counts)
            pending = _start(header, number, order, assume_tz)
    if pending is not None:
        yield from _finish(pending, source, path.name, conversation, repeats, counts)


def _day_first(path: Path) -> bool:
    """The file's date order: a day over 12 in the first or second field decides; else the locale default."""
    ampm = dotted = False
    with path.open("rb") as handle:
        for raw in handle:
            header = _HEADER.match(decode_bytes(raw))
            if header is None:
                continue
            first, second, _ = _DATE_PARTS.split(header["date"])
            if len(first) == 4:
                continue
            if int(first) > 12:
                return True
            if int(second) > 12:
                return False
            ampm = ampm or header["ampm"] is not None
            dotted = dotted or "." in header["date"]
    return dotted or not ampm


def _start(header: re.Match[str], number: int, day_first: bool, tz: tzinfo) -> _Pending:
    """The message (or system line) that a dated line starts."""
    sender, separator, text = header["rest"].partition(": ")
    sender = sender.strip(_LRM).strip()
    if not separator or not sender or _SYSTEM_SENDER.search(sender) or text.startswith(_LRM) and _is_system(text):
        return _Pending(number, sender, None, system=True)
    try:
        sent_at: datetime | None = _timestamp(header, day_first, tz)
        reason = None
    except ValueError as err:
        sent_at, reason = None, f"the date or time is not valid ({err})"
    return _Pending(number, sender, sent_at, [text], reason)


def _is_system(text: str) -> bool:
    """An iOS text marked with U+200E that is neither an attachment nor a deleted message."""
    stripped = text.strip(_LRM).strip()
    return not (_ATTACHMENT.fullmatch(stripped) or _DELETED.fullmatch(stripped))


def _timestamp(header: re.Match[str], day_first: bool, tz: tzinfo) -> datetime:
    """The line's date and time, in `tz`.

    Raises:
        ValueError: a month, day, hour or minute out of range.
    """
    first, second, third = _DATE_PARTS.split(header["date"])
    if len(first) == 4:
        year, month, day = int(first), int(second), int(third)
    else:
        year = int(third) + (2000 if len(third) <= 2 else 0)
        day, month = (int(first), int(second)) if day_first else (int(second), int(first))
    hour, minute, *seconds = (int(part) for part in _TIME_PARTS.split(header["time"]))
    ampm = (header["ampm"] or "").lower()
    if ampm and not 1 <= hour <= 12:
        raise ValueError(f"hour {hour} with AM/PM")
    if ampm.startswith("p") and hour < 12:
        hour += 12
    elif ampm.startswith("a") and hour == 12:
        hour = 0
    return datetime(year, month, day, hour, minute, seconds[0] if seconds else 0, tzinfo=tz)


def _finish(
    pending: _Pending,
    source: str,
    file_name: str,
    conversation: str,
    repeats: _Repeats,
    counts: ArchiveCounts,
) -> Iterator[ArchiveItem]:
    """The record of a finished message, its rejection, or nothing (system, attachment only, deleted: counted)."""
    if pending.system:
        counts.system += 1
        return
    if pending.reason is not None:
        yield RejectedRecord(source, pending.line, pending.reason)
        return
    kept: list[str] = []
    for line in pending.lines:
        stripped = line.strip(_LRM).strip()
        if _ATTACHMENT.fullmatch(stripped):
            counts.attachments += 1
        else:
            kept.append(line)
    text = "\n".join(kept).strip()
    if _DELETED.fullmatch(text.strip(_LRM).strip()):
        counts.deleted += 1
        return
    if not text:
        if len(kept) < len(pending.lines):
            counts.attachment_only += 1
        else:
            counts.no_text += 1
        return
    problem = invalid_unicode({"sender": pending.sender, "text": text}, from_bytes=True)
    if problem:
        yield RejectedRecord(source, pending.line, problem)
        return
    record_id = stable_record_id(file_name, conversation, pending.sender, pending.sent_at, text)
    yield ArchiveMessage(
        record_id=repeats.distinct(record_id, pending.sent_at),
        conversation_id=conversation,
        sender=pending.sender,
        sent_at=pending.sent_at,
        channel="whatsapp",
        text=text,
        source=source,
        position=pending.line,
    )
