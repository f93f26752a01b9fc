"""What every archive reader yields: a message with its conversation, or a rejected record.

The e-mail, WhatsApp, Slack and Teams readers all produce these types, so that a caller (the
dispatcher in `ingest.archive`, later `commsrisk score`) handles one shape whatever the source.
A bad record is never dropped: it becomes a `RejectedRecord` with its file, its position and a
reason that names the rule broken, never the text.

Positions are 1-based and mean, per format: the message number in an mbox, the line a message
starts on in a WhatsApp export, the record number in a Slack or Teams JSON array; 1 for a
single-message file (.eml, .msg); 0 for the file as a whole (unreadable, not JSON, ...).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from commsrisk.schema import DEFAULT_LIMITS, Limits, Message

ArchiveChannel = Literal["email", "whatsapp", "slack", "teams"]
"""The channel of a record, from the format it was read from."""


@dataclass(frozen=True, kw_only=True)
class ArchiveMessage:
    """One message read from an archive, with what a reviewer needs to place it.

    `text` is the new part of the message, the part that is scored; `quoted_text` holds what it
    quotes (a reply's earlier mails, a Teams reply's quote), kept apart so that it is not scored
    a second time, and `signature` the sign-off block. `sent_at` is timezone-aware; sources
    without a zone (WhatsApp exports, an e-mail Date of -0000) are read as UTC unless the caller
    names another zone. `warnings` say what was repaired or guessed (a wrong charset, a missing
    date), never the text.
    """

    record_id: str
    conversation_id: str
    sender: str | None
    sent_at: datetime | None
    channel: ArchiveChannel
    text: str
    quoted_text: str = ""
    signature: str = ""
    recipients: tuple[str, ...] = ()
    source: str
    position: int
    warnings: tuple[str, ...] = ()

    def to_message(self, limits: Limits = DEFAULT_LIMITS) -> Message:
        """The record as the `Message` the scorer takes (the new text only).

        Raises:
            pydantic.ValidationError: the text is empty (a reply that only quotes) or over the limits.
        """
        return Message.model_validate(
            {
                "text": self.text,
                "message_id": self.record_id,
                "channel": self.channel,
                "sender": self.sender,
                "recipients": list(self.recipients),
                "sent_at": self.sent_at,
                "conversation_id": self.conversation_id,
            },
            context={"limits": limits},
        )


@dataclass(frozen=True)
class RejectedRecord:
    """A record that could not be read: its file, its position (see the module doc) and why."""

    source: str
    position: int
    reason: str


ArchiveItem = ArchiveMessage | RejectedRecord
"""What the readers yield, in the order of the source."""


@dataclass
class ArchiveCounts:
    """What a read skipped on purpose, and how much it yielded; filled in while reading.

    System lines (a WhatsApp encryption notice, "X added Y", a Slack channel join, a Teams
    system event) and deleted messages are not messages of anyone and are skipped, but counted
    so that a reviewer can check the numbers against the source.
    """

    messages: int = 0
    rejected: int = 0
    system: int = 0
    deleted: int = 0
    attachments: int = 0
    attachment_only: int = 0
    """Messages skipped because they were only an attachment, with no text."""
    no_text: int = 0
    """Chat messages skipped with neither text nor attachment (e.g. a Slack bot's empty post)."""


def stable_record_id(
    source_name: str, conversation_id: str, sender: str | None, sent_at: datetime | None, text: str
) -> str:
    """A record id for sources without one of their own, the same on every rerun.

    Built from the file's name (not its folder, so a moved archive keeps its ids), the
    conversation, the sender, the timestamp and the text.
    """
    parts = (source_name, conversation_id, sender or "", sent_at.isoformat() if sent_at else "", text)
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:32]}"


def read_json_document(path: Path) -> Any | RejectedRecord:
    """A whole JSON file (the stdlib has no streaming JSON parser), or its rejection at position 0.

    The reason names the JSON error and where it is (line and column), or the first byte that
    is not UTF-8; never the content.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        return RejectedRecord(str(path), 0, f"cannot read the file ({err.strerror or type(err).__name__})")
    try:
        return json.loads(data)
    except UnicodeDecodeError as err:
        return RejectedRecord(str(path), 0, f"not UTF-8 JSON (byte 0x{data[err.start]:02X} at offset {err.start})")
    except json.JSONDecodeError as err:
        return RejectedRecord(str(path), 0, f"invalid JSON at line {err.lineno}, column {err.colno} ({err.msg})")
