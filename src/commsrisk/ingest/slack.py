"""Slack workspace exports: a folder of channel folders of per-day JSON arrays, or one such JSON file.

The export's layout: `channels.json`, `groups.json`, `dms.json` and `mpims.json` name each
conversation and its id, `users.json` names the users, and each conversation has a folder of
`YYYY-MM-DD.json` files, each a JSON array of messages (`ts`, `user`, `text`, `thread_ts`,
`subtype`, `files`, `user_profile`). One JSON file can also be read alone, as an array or as an
API `conversations.history` reply (`{"messages": [...]}`); its channel is then the folder it is
in. Slack's markup in `text` (`<@U123>`, `<#C1|general>`, `<https://x|label>`, `&amp;`) is
rewritten by hand to what Slack shows.

Each message's conversation is its channel id, or channel id and `thread_ts` for a thread; its
record id is the channel id and its `ts`, which Slack keeps unique per channel; `ts` is a Unix
time, so `sent_at` is in UTC. Joins, leaves, topic changes and other system subtypes are skipped
and counted; a malformed file (position 0) or message (its number in the array) is reported.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from commsrisk.ingest.encoding import invalid_unicode
from commsrisk.ingest.records import (
    ArchiveCounts,
    ArchiveItem,
    ArchiveMessage,
    RejectedRecord,
    read_json_document,
)

CONVERSATION_LISTS: tuple[str, ...] = ("channels.json", "groups.json", "dms.json", "mpims.json")
"""The export files that list its conversations (public, private, direct, group direct)."""
METADATA_FILES: frozenset[str] = frozenset(
    {*CONVERSATION_LISTS, "users.json", "integration_logs.json", "canvases.json", "org_users.json"}
)

_SYSTEM_SUBTYPES = frozenset(
    {
        "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name", "channel_archive",
        "channel_unarchive", "channel_convert_to_private", "channel_convert_to_public", "group_join", "group_leave",
        "group_topic", "group_purpose", "group_name", "group_archive", "group_unarchive", "pinned_item",
        "unpinned_item", "bot_add", "bot_remove", "bot_enable", "bot_disable", "app_conversation_join",
        "reminder_add", "sh_room_created", "sh_room_shared", "huddle_thread", "joiner_notification", "tombstone",
        "message_changed",
    }
)  # fmt: skip
_DELETED_SUBTYPES = frozenset({"message_deleted"})
_MARKUP = re.compile(r"<([^<>\n]+)>")
_TS = re.compile(r"(\d{1,12})(?:\.(\d{1,6}))?")
_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")


def looks_like_slack_export(folder: Path) -> bool:
    """A folder with Slack's metadata files, or with folders of YYYY-MM-DD.json files."""
    if any((folder / name).is_file() for name in ("channels.json", "users.json", "dms.json")):
        return True
    return any(
        child.is_dir() and any(_DAY_FILE.fullmatch(f.name) for f in child.iterdir()) for child in folder.iterdir()
    )


def read_slack_export(folder: Path, counts: ArchiveCounts) -> Iterator[ArchiveItem]:
    """Every message of an export folder: conversations by name, days in order, messages in file order."""
    users, problems = _users(folder / "users.json")
    ids: dict[str, str] = {}
    for name in CONVERSATION_LISTS:
        found, problem = _conversation_ids(folder / name)
        ids.update(found)
        problems += problem
    yield from problems
    for child in sorted(folder.iterdir()):
        if child.is_file() and child.name not in METADATA_FILES:
            yield RejectedRecord(str(child), 0, "not a file of a Slack export (expected a folder per conversation)")
        if not child.is_dir():
            continue
        channel = ids.get(child.name, child.name)
        for day in sorted(child.iterdir()):
            if day.is_file() and day.suffix.lower() == ".json":
                yield from read_slack_file(day, counts, channel=channel, users=users)
            else:
                yield RejectedRecord(str(day), 0, "not a Slack day file (expected YYYY-MM-DD.json)")


def read_slack_file(
    path: Path, counts: ArchiveCounts, *, channel: str | None = None, users: Mapping[str, str] | None = None
) -> Iterator[ArchiveItem]:
    """The messages of one Slack JSON file; `channel` defaults to its folder's name (the export layout)."""
    document = read_json_document(path)
    if isinstance(document, RejectedRecord):
        yield document
        return
    if isinstance(document, dict) and isinstance(document.get("messages"), list):
        channel = channel or (document["channel"] if isinstance(document.get("channel"), str) else None)
        document = document["messages"]
    if not isinstance(document, list):
        yield RejectedRecord(str(path), 0, "not a Slack message file (a JSON array of messages)")
        return
    channel = channel or path.parent.name or path.stem
    for number, record in enumerate(document, start=1):
        item = _message(record, channel, users or {}, str(path), number, counts)
        if item is not None:
            yield item


def _message(
    record: Any, channel: str, users: Mapping[str, str], source: str, number: int, counts: ArchiveCounts
) -> ArchiveItem | None:
    """One message record as a record, its rejection, or None when it is skipped (and counted)."""
    if not isinstance(record, dict):
        return RejectedRecord(source, number, f"message {number} is not a JSON object")
    problem = invalid_unicode(record)
    if problem:
        return RejectedRecord(source, number, problem)
    subtype = record.get("subtype")
    if record.get("type", "message") != "message" or subtype in _SYSTEM_SUBTYPES:
        counts.system += 1
        return None
    if subtype in _DELETED_SUBTYPES:
        counts.deleted += 1
        return None
    ts = record.get("ts")
    sent_at = _timestamp(ts)
    if sent_at is None:
        return RejectedRecord(source, number, "no valid 'ts' (a Slack timestamp such as \"1704059000.000200\")")
    text = record.get("text", "")
    if not isinstance(text, str):
        return RejectedRecord(source, number, "'text' is not a string")
    files = record.get("files")
    counts.attachments += len(files) if isinstance(files, list) else 0
    text = _plain(text, users).strip()
    if not text:
        if isinstance(files, list) and files:
            counts.attachment_only += 1
        else:
            counts.no_text += 1
        return None
    thread = record.get("thread_ts")
    return ArchiveMessage(
        record_id=f"{channel}:{ts}",
        conversation_id=f"{channel}:{thread}" if isinstance(thread, str) and thread else channel,
        sender=_sender(record, users),
        sent_at=sent_at,
        channel="slack",
        text=text,
        source=source,
        position=number,
    )


def _timestamp(ts: Any) -> datetime | None:
    """A Slack ts ("seconds.micros" since the epoch) as an aware UTC datetime; None when it is not one."""
    found = _TS.fullmatch(ts) if isinstance(ts, str) else None
    if found is None:
        return None
    micros = int((found.group(2) or "0").ljust(6, "0"))
    return datetime.fromtimestamp(int(found.group(1)), UTC) + timedelta(microseconds=micros)


def _sender(record: Mapping[str, Any], users: Mapping[str, str]) -> str | None:
    """The sender's name as Slack shows it: the profile in the message, the users file, a bot's name, an id."""
    profile = record.get("user_profile")
    if isinstance(profile, dict):
        for key in ("real_name", "display_name", "name"):
            if isinstance(profile.get(key), str) and profile[key]:
                return str(profile[key])
    user = record.get("user")
    if isinstance(user, str) and user in users:
        return users[user]
    for key in ("username", "user", "bot_id"):
        if isinstance(record.get(key), str) and record[key]:
            return str(record[key])
    return None


def _plain(text: str, users: Mapping[str, str]) -> str:
    """Slack markup as shown: mentions by name, links as "label (url)", entities decoded."""

    def shown(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "@" + (label or users.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        if label and label != target.removeprefix("mailto:"):
            return f"{label} ({target})"
        return label or target

    return html.unescape(_MARKUP.sub(shown, text))


def _json_list(path: Path, what: str) -> tuple[list[Any], list[RejectedRecord]]:
    """The JSON array in one of the export's lists (empty, and no problem, when the export has none)."""
    if not path.is_file():
        return [], []
    document = read_json_document(path)
    if isinstance(document, RejectedRecord):
        return [], [document]
    if not isinstance(document, list):
        return [], [RejectedRecord(str(path), 0, f"not a JSON array of {what}")]
    return document, []


def _users(path: Path) -> tuple[dict[str, str], list[RejectedRecord]]:
    """User id -> name shown, from users.json."""
    document, problems = _json_list(path, "users")
    names: dict[str, str] = {}
    for user in document:
        if isinstance(user, dict) and isinstance(user.get("id"), str):
            profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
            name = user.get("real_name") or profile.get("real_name") or user.get("name")
            if isinstance(name, str) and name:
                names[user["id"]] = name
    return names, problems


def _conversation_ids(path: Path) -> tuple[dict[str, str], list[RejectedRecord]]:
    """Folder name -> conversation id, from one of the conversation lists (a DM's folder is its id)."""
    document, problems = _json_list(path, "conversations")
    ids: dict[str, str] = {}
    for entry in document:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            ids[str(entry.get("name") or entry["id"])] = entry["id"]
    return ids, problems
