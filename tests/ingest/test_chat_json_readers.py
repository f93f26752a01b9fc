"""Slack workspace exports and Microsoft Teams (Graph chatMessage) JSON, broken files and records included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commsrisk.ingest.records import ArchiveCounts, ArchiveItem, ArchiveMessage, RejectedRecord
from commsrisk.ingest.slack import looks_like_slack_export, read_slack_export, read_slack_file
from commsrisk.ingest.teams import read_teams_file

SECRET = "Projekt Falke"


def dump(path: Path, value: Any, *, escaped: bool = False) -> Path:
    """Write JSON as exporters do: UTF-8, or with \\u escapes (how a lone surrogate gets into a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=escaped), encoding="utf-8")
    return path


def messages(items: list[ArchiveItem]) -> list[ArchiveMessage]:
    return [i for i in items if isinstance(i, ArchiveMessage)]


def rejected(items: list[ArchiveItem]) -> list[tuple[str, int, str]]:
    return [(Path(i.source).name, i.position, i.reason) for i in items if isinstance(i, RejectedRecord)]


def slack_export(root: Path) -> Path:
    dump(
        root / "users.json",
        [
            {"id": "U01ANNA", "name": "anna", "real_name": "Anna Müller"},
            {"id": "U02LI", "name": "lilei", "profile": {"real_name": "李雷"}},
        ],
    )
    dump(root / "channels.json", [{"id": "C0DEALS", "name": "deals"}, {"id": "C0GEN", "name": "general"}])
    anna = {"real_name": "Anna Müller", "display_name": "anna"}
    thread = "1704059000.000200"
    dump(
        root / "deals" / "2023-12-31.json",
        [
            {
                "type": "message",
                "subtype": "channel_join",
                "user": "U02LI",
                "text": "<@U02LI> joined",
                "ts": "1704059000.0001",
            },
            {
                "type": "message",
                "user": "U01ANNA",
                "text": f"<@U02LI> keep {SECRET} off e-mail &amp; see <https://files.example.com/q4|the deck>",
                "ts": thread,
                "thread_ts": thread,
                "user_profile": anna,
            },
            {
                "type": "message",
                "user": "U02LI",
                "text": "好的，我删掉",
                "ts": "1704059100.123456",
                "thread_ts": thread,
            },
            {"type": "message", "user": "U02LI", "text": "", "ts": "1704059200.0", "files": [{"id": "F1"}]},
            {
                "subtype": "bot_message",
                "username": "deploy-bot",
                "text": "<!here> build done",
                "ts": "1704059300.000000",
            },
            "not an object",
            {"type": "message", "user": "U01ANNA", "text": "no timestamp"},
            {"type": "message", "user": "U01ANNA", "text": "bad \ud800 half pair", "ts": "1704059400.000000"},
        ],
        escaped=True,
    )
    (root / "deals" / "2024-01-01.json").write_text('[{"type": "message", "text": "cut', encoding="utf-8")
    dump(
        root / "general" / "2024-01-01.json",
        [{"type": "message", "user": "U03X", "text": "Feliz año", "ts": "1704067200"}],
    )
    (root / "general" / "notes.txt").write_text("stray", encoding="utf-8")
    return root


def test_a_slack_export_reads_channels_threads_and_names(tmp_path: Path) -> None:
    root = slack_export(tmp_path / "export")
    assert looks_like_slack_export(root)
    counts = ArchiveCounts()
    items = list(read_slack_export(root, counts))
    found = messages(items)
    assert [(m.record_id, m.conversation_id, m.sender, m.text) for m in found] == [
        (
            "C0DEALS:1704059000.000200",
            "C0DEALS:1704059000.000200",
            "Anna Müller",
            f"@李雷 keep {SECRET} off e-mail & see the deck (https://files.example.com/q4)",
        ),
        ("C0DEALS:1704059100.123456", "C0DEALS:1704059000.000200", "李雷", "好的，我删掉"),
        ("C0DEALS:1704059300.000000", "C0DEALS", "deploy-bot", "@here build done"),
        ("C0GEN:1704067200", "C0GEN", "U03X", "Feliz año"),
    ]
    assert found[1].sent_at == datetime(2023, 12, 31, 21, 45, 0, 123456, tzinfo=UTC)
    assert {m.channel for m in found} == {"slack"}
    assert (counts.system, counts.attachments, counts.attachment_only) == (1, 1, 1)
    problems = rejected(items)
    assert [(name, position) for name, position, _ in problems] == [
        ("2023-12-31.json", 6),
        ("2023-12-31.json", 7),
        ("2023-12-31.json", 8),
        ("2024-01-01.json", 0),
        ("notes.txt", 0),
    ]
    assert problems[0][2] == "message 6 is not a JSON object"
    assert problems[1][2].startswith("no valid 'ts'")
    assert problems[2][2].startswith("field 'text' holds invalid Unicode (lone surrogate U+D800")
    assert problems[3][2].startswith("invalid JSON at line 1, column ")
    assert not any(SECRET in reason or "half pair" in reason or "cut" in reason for _, _, reason in problems)


def test_one_slack_file_is_read_alone_as_an_array_or_an_api_reply(tmp_path: Path) -> None:
    day = dump(tmp_path / "deals" / "2023-12-31.json", [{"user": "U1", "text": "Vale", "ts": "1704059000.000200"}])
    reply = dump(
        tmp_path / "history.json",
        {"ok": True, "channel": "C0DEALS", "messages": [{"user": "U1", "text": "了解", "ts": "1704059000.000300"}]},
    )
    [from_day] = messages(list(read_slack_file(day, ArchiveCounts())))
    [from_reply] = messages(list(read_slack_file(reply, ArchiveCounts())))
    assert (from_day.conversation_id, from_day.position) == ("deals", 1)  # the channel is the folder
    assert from_reply.conversation_id == "C0DEALS" and from_reply.text == "了解"
    assert rejected(list(read_slack_file(dump(tmp_path / "x.json", 42), ArchiveCounts()))) == [
        ("x.json", 0, "not a Slack message file (a JSON array of messages)")
    ]


def graph_message(number: int, html: str, **fields: Any) -> dict[str, Any]:
    message = {
        "id": f"170405900{number:04d}",
        "replyToId": None,
        "messageType": "message",
        "createdDateTime": f"2023-12-31T21:41:{number:02d}.123Z",
        "deletedDateTime": None,
        "chatId": "19:abc123@unq.gbl.spaces",
        "channelIdentity": None,
        "from": {"application": None, "device": None, "user": {"id": "u-1", "displayName": "Anna Müller"}},
        "body": {"contentType": "html", "content": html},
        "attachments": [],
        "mentions": [],
    }
    message.update(fields)
    return message


def test_teams_messages_are_read_with_their_chat_sender_and_new_text(tmp_path: Path) -> None:
    page = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#chats('19%3Aabc')/messages",
        "value": [
            graph_message(1, f"<div><p>Bitte {SECRET} nicht im Kanal besprechen.</p></div>"),
            graph_message(
                2,
                '<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" itemid="1704059000001">'
                '<strong itemprop="mri">Anna Müller</strong><span itemprop="time" itemid="1704059000001"></span>'
                '<p itemprop="preview">Bitte nicht im Kanal</p></blockquote>'
                '<p>好的，<at id="0">Anna</at>，我们私聊</p>',
                **{"from": {"user": {"id": "u-2", "displayName": "李雷"}}},
            ),
            graph_message(3, "", messageType="systemEventMessage", **{"from": None}),
            graph_message(4, "", deletedDateTime="2024-01-01T09:00:00Z"),
            graph_message(5, '<attachment id="a1"></attachment>', attachments=[{"id": "a1", "name": "q4.xlsx"}]),
            graph_message(6, "了解です &amp; thanks", body={"contentType": "text", "content": "了解です\r\nthanks"}),
            graph_message(
                7,
                "<p>Build ok</p>",
                chatId=None,
                channelIdentity={"teamId": "t-1", "channelId": "19:deals@thread.tacv2"},
                replyToId="1704059000001",
                **{"from": {"application": {"id": "app-1", "displayName": "Deploy Bot"}, "user": None}},
            ),
            "not an object",
            graph_message(9, "<p>no body</p>", body=None),
            graph_message(10, "<p>bad time</p>", createdDateTime="yesterday"),
        ],
    }
    counts = ArchiveCounts()
    items = list(read_teams_file(dump(tmp_path / "chat.json", page), counts))
    found = messages(items)
    assert [(m.position, m.sender, m.text, m.quoted_text) for m in found] == [
        (1, "Anna Müller", f"Bitte {SECRET} nicht im Kanal besprechen.", ""),
        (2, "李雷", "好的，Anna，我们私聊", "Anna Müller\nBitte nicht im Kanal"),
        (6, "Anna Müller", "了解です\nthanks", ""),
        (7, "Deploy Bot", "Build ok", ""),
    ]
    assert found[0].record_id == "19:abc123@unq.gbl.spaces:1704059000001"
    assert found[0].sent_at == datetime(2023, 12, 31, 21, 41, 1, 123000, tzinfo=UTC)
    assert found[3].conversation_id == "19:deals@thread.tacv2:1704059000001"  # channel and thread root
    assert {m.channel for m in found} == {"teams"}
    assert (counts.system, counts.deleted, counts.attachments, counts.attachment_only) == (1, 1, 1, 1)
    assert rejected(items) == [
        ("chat.json", 8, "message 8 is not a JSON object"),
        ("chat.json", 9, "no 'body.content' string"),
        ("chat.json", 10, "no valid 'createdDateTime' (ISO 8601, e.g. 2023-12-31T21:41:05.123Z)"),
    ]


def test_a_malformed_teams_file_is_reported_as_a_whole(tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_text('{"value": [{"id": "1", "body": {"content": "' + SECRET, encoding="utf-8")
    latin = tmp_path / "latin.json"
    latin.write_bytes('[{"id": "1", "body": {"content": "Grüße"}}]'.encode("latin-1"))
    assert rejected(list(read_teams_file(cut, ArchiveCounts()))) == [
        ("cut.json", 0, "invalid JSON at line 1, column 44 (Unterminated string starting at)")
    ]
    assert rejected(list(read_teams_file(latin, ArchiveCounts()))) == [
        ("latin.json", 0, "not UTF-8 JSON (byte 0xFC at offset 36)")
    ]
    assert rejected(list(read_teams_file(dump(tmp_path / "n.json", {"odd": 1}), ArchiveCounts()))) == [
        ("n.json", 0, "not a Teams message file (a JSON array of Graph chatMessage objects)")
    ]
