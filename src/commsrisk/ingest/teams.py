"""Microsoft Teams exports: JSON files of Microsoft Graph `chatMessage` resources.

What the Graph API returns and export tools save: a JSON array of messages, or a Graph page
(`{"value": [...]}`), or `{"messages": [...]}`. Each message has `id`, `messageType`,
`createdDateTime` (ISO 8601, UTC), `from.user.displayName` (or `from.application` for a bot),
`body.content` (HTML, or text when `body.contentType` is "text"), `attachments`, and a
`chatId` for a chat or `channelIdentity.channelId` (with `replyToId` for a reply) for a channel.

The body is stripped to text (`ingest.html_text`); a reply's quote (a <blockquote>) goes to
`quoted_text`. The conversation is the chat id, or the channel id and the thread's root message
id; the record id is the conversation and the message id (a Graph message id is unique only
within its chat or channel). System events and deleted messages are skipped and counted;
a malformed file (position 0) or message (its number in the array) is reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commsrisk.ingest.encoding import invalid_unicode
from commsrisk.ingest.html_text import html_text_and_quotes
from commsrisk.ingest.records import (
    ArchiveCounts,
    ArchiveItem,
    ArchiveMessage,
    RejectedRecord,
    read_json_document,
)


def read_teams_file(path: Path, counts: ArchiveCounts) -> Iterator[ArchiveItem]:
    """The messages of one Teams JSON file, in file order; position is the message's number."""
    document = read_json_document(path)
    if isinstance(document, RejectedRecord):
        yield document
        return
    if isinstance(document, dict):
        document = next((document[k] for k in ("value", "messages") if isinstance(document.get(k), list)), document)
    if not isinstance(document, list):
        yield RejectedRecord(str(path), 0, "not a Teams message file (a JSON array of Graph chatMessage objects)")
        return
    for number, record in enumerate(document, start=1):
        item = _message(record, path, number, counts)
        if item is not None:
            yield item


def _message(record: Any, path: Path, number: int, counts: ArchiveCounts) -> ArchiveItem | None:
    """One chatMessage as a record, its rejection, or None when it is skipped (and counted)."""
    source = str(path)
    if not isinstance(record, dict):
        return RejectedRecord(source, number, f"message {number} is not a JSON object")
    problem = invalid_unicode(record)
    if problem:
        return RejectedRecord(source, number, problem)
    if record.get("messageType", "message") != "message":
        counts.system += 1
        return None
    if record.get("deletedDateTime"):
        counts.deleted += 1
        return None
    message_id = record.get("id")
    if not isinstance(message_id, str | int) or isinstance(message_id, bool) or str(message_id) == "":
        return RejectedRecord(source, number, "no 'id'")
    sent_at = _timestamp(record.get("createdDateTime"))
    if sent_at is None:
        return RejectedRecord(source, number, "no valid 'createdDateTime' (ISO 8601, e.g. 2023-12-31T21:41:05.123Z)")
    body = record.get("body")
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, str):
        return RejectedRecord(source, number, "no 'body.content' string")
    is_text = isinstance(body, dict) and str(body.get("contentType", "html")).lower() == "text"
    text, quoted = (content.replace("\r\n", "\n").strip(), "") if is_text else html_text_and_quotes(content)
    attachments = record.get("attachments")
    counts.attachments += len(attachments) if isinstance(attachments, list) else 0
    if not text:
        if isinstance(attachments, list) and attachments:
            counts.attachment_only += 1
        else:
            counts.no_text += 1
        return None
    conversation = _conversation(record, str(message_id)) or path.stem
    return ArchiveMessage(
        record_id=f"{conversation}:{message_id}",
        conversation_id=conversation,
        sender=_sender(record.get("from")),
        sent_at=sent_at,
        channel="teams",
        text=text,
        quoted_text=quoted,
        source=source,
        position=number,
    )


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (UTC when it has no zone); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _conversation(record: Mapping[str, Any], message_id: str) -> str | None:
    """The chat id, or the channel id and the thread's root message id."""
    if isinstance(record.get("chatId"), str) and record["chatId"]:
        return str(record["chatId"])
    channel = record.get("channelIdentity")
    if isinstance(channel, dict) and isinstance(channel.get("channelId"), str):
        root = record.get("replyToId")
        return f"{channel['channelId']}:{root if isinstance(root, str) and root else message_id}"
    return None


def _sender(origin: Any) -> str | None:
    """The display name of the user (or bot, or device) a message is from; its id when it has no name."""
    if not isinstance(origin, dict):
        return None
    for kind in ("user", "application", "device"):
        identity = origin.get(kind)
        if isinstance(identity, dict):
            name = identity.get("displayName") or identity.get("id")
            if isinstance(name, str) and name:
                return name
    return None
