"""E-mail archives: .eml files, mbox files and Outlook .msg files as `ArchiveMessage`s.

Parsing is the stdlib's `email` package (policy.default) and `mailbox`, and `extract-msg` for
Outlook's .msg; what is ours is the body choice, the charset fallback and the thread id. An mbox
is read one message at a time (the stdlib keeps only the offsets of the messages), so a large
archive is read in constant memory. Named `mail` so as not to shadow the stdlib `email`.

Body: the text/plain part, else the text/html part stripped to text. A body whose declared
charset is wrong or unknown is still read, never dropped: it is decoded as UTF-8 when it is
valid UTF-8, else with U+FFFD for the bytes that do not decode, and the record carries a warning
saying so (this differs on purpose from `ingest.encoding`, which rejects records of files that
must be UTF-8: a mail names its own charset, and a wrong label is common). The new text is split
from the quoted replies and the signature (`ingest.quoting`). The conversation is the thread's
root: the first id in References, else In-Reply-To, else the message's own Message-ID. A Date
without a zone (-0000) is read as UTC.
"""

from __future__ import annotations

import codecs
import mailbox
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from commsrisk.ingest.html_text import html_to_text
from commsrisk.ingest.quoting import split_reply
from commsrisk.ingest.records import ArchiveCounts, ArchiveItem, ArchiveMessage, RejectedRecord, stable_record_id

_SURROGATE = re.compile("[\ud800-\udfff]")
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_LABEL = re.compile(r"[^A-Za-z0-9._:-]")


class _RepeatedHeaderRegistry(HeaderRegistry):
    """policy.default's header registry, parsing a header line that repeats across messages only once.

    The MIME headers of an archive's messages (Content-Type: text/plain; charset=utf-8, ...) and
    its senders repeat; policy.default parses a header again on every access (and builds its
    class again), which made most of the time an mbox took (5x faster with the caches). Parsed
    headers are immutable, so sharing them is safe; the caches are bounded (emptied when full).
    """

    CACHED: frozenset[str] = frozenset(
        {"content-type", "content-transfer-encoding", "content-disposition", "mime-version", "from", "to", "cc"}
    )
    SIZE = 256

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], BaseHeader] = {}
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        """The header class for a name, built once (the stdlib builds a new class on every call)."""
        found = self._classes.get(name.lower())
        if found is None:
            if len(self._classes) >= self.SIZE:
                self._classes.clear()
            found = self._classes[name.lower()] = super().__getitem__(name)
        return found

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or name.lower() not in self.CACHED:
            return super().__call__(name, value)
        found = self._parsed.get((name, value))
        if found is None:
            if len(self._parsed) >= self.SIZE:
                self._parsed.clear()
            found = self._parsed[(name, value)] = super().__call__(name, value)
        return found


MAIL_POLICY = policy.default.clone(header_factory=_RepeatedHeaderRegistry())
"""The stdlib's policy.default, with the header cache above."""

_MSG_PROPERTIES = (
    ("From", "sender"),
    ("To", "to"),
    ("Cc", "cc"),
    ("Message-ID", "messageId"),
    ("In-Reply-To", "inReplyTo"),
)
"""Outlook properties that stand in for transport headers a .msg file does not keep."""
_SNIFF_BYTES = 65536
_SENDER_ADDRESS_STREAMS = ("__substg1.0_5D01", "__substg1.0_0C1F", "__substg1.0_0065")
"""PR_SENDER_SMTP_ADDRESS, PR_SENDER_EMAIL_ADDRESS, PR_SENT_REPRESENTING_EMAIL_ADDRESS (an X.500 name has no @)."""
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def read_eml(path: Path, counts: ArchiveCounts) -> Iterator[ArchiveItem]:
    """The one message of an .eml file (position 1), or its rejection."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read()
    except OSError as err:
        yield RejectedRecord(source, 0, f"cannot read the file ({err.strerror or type(err).__name__})")
        return
    yield _record_or_rejection(data, path, 1, counts)


def read_mbox(path: Path, counts: ArchiveCounts) -> Iterator[ArchiveItem]:
    """Every message of an mbox file in order, one in memory at a time; position is the message number.

    A file cut mid-way still yields its last message, with a warning; text before the first
    "From " line belongs to no message and is reported (position 0).
    """
    source = str(path)
    try:
        prelude = _starts_like_mbox(path)
        box = mailbox.mbox(path, create=False)
    except OSError as err:
        yield RejectedRecord(source, 0, f"cannot read the file ({err.strerror or type(err).__name__})")
        return
    try:
        if not prelude:
            yield RejectedRecord(
                source, 0, "the file does not start with an mbox 'From ' line; what precedes the first one is not read"
            )
        keys = box.keys()
        for number, key in enumerate(keys, start=1):
            try:
                data = box.get_bytes(key)
            except OSError as err:
                yield RejectedRecord(source, number, f"cannot read the message ({err.strerror or type(err).__name__})")
                continue
            item = _record_or_rejection(data, path, number, counts)
            cut = _cut_short(data) if number == len(keys) else None
            yield _with_warning(item, cut) if cut and isinstance(item, ArchiveMessage) else item
    finally:
        box.close()


def read_msg(path: Path, counts: ArchiveCounts) -> Iterator[ArchiveItem]:
    """The message of an Outlook .msg file (position 1), or its rejection (a corrupt or non-mail item)."""
    import extract_msg  # imported here: it pulls in RTF and OLE tooling that only .msg files need

    source = str(path)
    try:
        item = extract_msg.openMsg(str(path))
    except Exception as err:  # extract-msg and olefile raise many types (OSError, their own, struct.error)
        yield RejectedRecord(source, 0, f"not a readable Outlook .msg file ({type(err).__name__})")
        return
    try:
        yield _msg_record(item, path, counts)
    except Exception as err:  # a property stream that is cut or malformed fails on access, in extract-msg's code
        yield RejectedRecord(source, 1, f"unreadable Outlook message ({type(err).__name__})")
    finally:
        item.close()


def _cut_short(data: bytes) -> str | None:
    """Why the last message of an mbox looks cut off (a file copied or exported only in part), if it does."""
    if not data.endswith(b"\n"):
        return "the file ends mid-line: this last message may be cut short"
    if b"\n\n" not in data.replace(b"\r\n", b"\n"):
        return "the file ends inside this last message's headers: it is cut short"
    return None


def _starts_like_mbox(path: Path) -> bool:
    """True when the file, past leading blank lines, starts with an mbox "From " line (or is empty)."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES).lstrip()
    return not head or head.startswith(b"From ")


def _record_or_rejection(data: bytes, path: Path, position: int, counts: ArchiveCounts) -> ArchiveItem:
    """One message's bytes parsed and read, or its rejection: one bad message never stops an archive."""
    try:
        message = BytesParser(policy=MAIL_POLICY).parsebytes(data)
        if not message.keys():
            return RejectedRecord(str(path), position, "no e-mail headers: not an e-mail message")
        return _email_record(message, path, position, counts)
    except Exception as err:  # the stdlib MIME code raises assorted errors on a malformed structure
        return RejectedRecord(str(path), position, f"unreadable e-mail message ({type(err).__name__})")


def _email_record(message: EmailMessage, path: Path, position: int, counts: ArchiveCounts) -> ArchiveMessage:
    """One parsed e-mail as a record: headers, body, attachments counted, defects as warnings."""
    warnings: list[str] = []
    body_part = message.get_body(preferencelist=("plain", "html"))
    body = _part_text(body_part, warnings) if body_part is not None else ""
    if body_part is None:
        warnings.append("no text/plain or text/html body")
    counts.attachments += sum(1 for part in message.walk() if part.is_attachment())
    defects = sorted({type(d).__name__ for part in message.walk() for d in part.defects})
    if defects:
        warnings.append(f"MIME defects ({', '.join(defects)}): the message may be cut short or malformed")
    return _assemble(message, body, path, position, warnings)


def _msg_record(item: Any, path: Path, counts: ArchiveCounts) -> ArchiveMessage:
    """An extract-msg item as a record: its transport headers when it has them, else its properties."""
    warnings: list[str] = []
    header_text = getattr(item, "headerText", None) or ""
    headers = HeaderParser(policy=MAIL_POLICY).parsestr(header_text)
    for name, attribute in _MSG_PROPERTIES:
        value = _sender_with_address(item) if attribute == "sender" else getattr(item, attribute, None)
        if name not in headers and isinstance(value, str) and value.strip():
            try:
                headers[name] = value
            except Exception as err:  # the header registry refuses values it cannot fold (a line break, ...)
                warnings.append(f"Outlook property for '{name}' cannot be read as a header ({type(err).__name__})")
    sent_at = getattr(item, "date", None)
    body = getattr(item, "body", None) or ""
    if not body.strip():
        html = getattr(item, "htmlBody", None)
        if html:
            found = _META_CHARSET.search(html[:4096])
            body = html_to_text(_decode(html, found.group(1).decode("ascii") if found else None, warnings))
        else:
            warnings.append("no text or HTML body")
    counts.attachments += len(getattr(item, "attachments", None) or ())
    return _assemble(headers, body, path, 1, warnings, sent_at=sent_at if isinstance(sent_at, datetime) else None)


def _sender_with_address(item: Any) -> str | None:
    """The sender as extract-msg gives it, with the SMTP address from the sender properties when it lacks one."""
    sender = getattr(item, "sender", None)
    if not isinstance(sender, str) or "@" in sender:
        return sender
    for stream in _SENDER_ADDRESS_STREAMS:
        address = item.getStringStream(stream)
        if isinstance(address, str) and "@" in address:
            return f"{sender} <{address}>" if sender.strip() else address
    return sender


def _assemble(
    headers: Message,
    body: str,
    path: Path,
    position: int,
    warnings: list[str],
    *,
    sent_at: datetime | None = None,
) -> ArchiveMessage:
    """The record from parsed headers and the decoded body: ids, thread, sender, date, split text."""
    own_id = _first_id(_header(headers, "Message-ID", warnings))
    references = _MSG_ID.findall(_header(headers, "References", warnings) or "")
    in_reply_to = _first_id(_header(headers, "In-Reply-To", warnings))
    sender = _addresses(_header(headers, "From", warnings))
    recipients = _addresses(_header(headers, "To", warnings)) + _addresses(_header(headers, "Cc", warnings))
    if sent_at is None:
        sent_at = _date(headers, warnings)
    elif sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    if any(_SURROGATE.search(value) for value in (body, *sender, *recipients)):
        warnings.append("undecodable bytes in the body or addresses shown as U+FFFD")
        body, sender, recipients = _scrub(body), [_scrub(s) for s in sender], [_scrub(r) for r in recipients]
    parts = split_reply(body)
    thread = references[0] if references else in_reply_to or own_id
    from_address = sender[0] if sender else None
    record_id = own_id or stable_record_id(path.name, thread or "", from_address, sent_at, parts.text)
    return ArchiveMessage(
        record_id=record_id,
        conversation_id=thread or record_id,
        sender=from_address,
        sent_at=sent_at,
        channel="email",
        text=parts.text,
        quoted_text=parts.quoted,
        signature=parts.signature,
        recipients=tuple(recipients),
        source=str(path),
        position=position,
        warnings=tuple(warnings),
    )


def _header(headers: Message, name: str, warnings: list[str]) -> Any:
    """A header's value (a parsed header object), or None when it is absent or cannot be parsed."""
    try:
        return headers[name]
    except Exception as err:  # the stdlib header parser raises IndexError & co. on some malformed values
        warnings.append(f"header '{name}' cannot be parsed ({type(err).__name__})")
        return None


def _first_id(value: Any) -> str | None:
    """The first <msg-id> of a header, without brackets; the bare value when it has none."""
    if value is None:
        return None
    text = str(value).strip()
    found = _MSG_ID.search(text)
    return found.group(1) if found else (text or None)


def _addresses(value: Any) -> list[str]:
    """Addresses of an address header (the address, else the display name)."""
    if value is None:
        return []
    parsed = getattr(value, "addresses", None)
    if parsed is None:
        found = [address or name for name, address in getaddresses([str(value)])]
    else:
        found = [a.addr_spec if a.username else a.display_name for a in parsed]
    return [f for f in found if f and f != "<>"]


def _date(headers: Message, warnings: list[str]) -> datetime | None:
    """The Date header as an aware datetime (UTC when it has no zone), else None with a warning."""
    value = _header(headers, "Date", warnings)
    if value is None:
        warnings.append("no Date header: sent_at unknown")
        return None
    when = getattr(value, "datetime", None)
    if not isinstance(when, datetime):
        warnings.append("the Date header is not a valid date: sent_at unknown")
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _part_text(part: EmailMessage, warnings: list[str]) -> str:
    """The decoded text of a body part; HTML stripped to text."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = _decode(payload, part.get_content_charset(), warnings)
    return html_to_text(text) if part.get_content_type() == "text/html" else text


def _decode(payload: bytes, declared: str | None, warnings: list[str]) -> str:
    """Bytes in their declared charset; when that is unknown or wrong, UTF-8, else U+FFFD replacement (warned)."""
    label = _LABEL.sub("?", declared)[:40] if declared else None
    codec: str | None = None
    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            warnings.append(f"unknown charset '{label}'")
    if codec:
        try:
            return payload.decode(codec)
        except UnicodeDecodeError:
            pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        first_bad = err.start
    else:
        if declared:
            warnings.append(f"body is not in its declared charset '{label}' but is valid UTF-8: read as UTF-8")
        return text
    fallback = codec or "utf-8"
    if not declared:
        described = "UTF-8 (no charset declared)"
    elif codec == "utf-8":
        described = "UTF-8, its declared charset"
    else:
        described = f"its declared charset '{label}' nor in UTF-8"
    warnings.append(
        f"body is not valid in {described} (first bad byte at offset {first_bad}): "
        f"decoded as {fallback} with U+FFFD for the undecodable bytes"
    )
    return payload.decode(fallback, "replace")


def _scrub(value: str) -> str:
    """Lone surrogates (undecodable bytes kept by the parser) as U+FFFD, so the text can be encoded downstream."""
    return _SURROGATE.sub("\ufffd", value)


def _with_warning(item: ArchiveMessage, warning: str) -> ArchiveMessage:
    return replace(item, warnings=(*item.warnings, warning))
