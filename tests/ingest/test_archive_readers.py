"""One entry point for every archive: formats told by suffix or content, folders walked, memory constant."""

from __future__ import annotations

import json
import mailbox
import tracemalloc
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aspose.email_foss import msg as outlook

from commsrisk.errors import InvalidInputError
from commsrisk.ingest.archive import ReadOptions, detect_format, read_archive
from commsrisk.ingest.records import ArchiveCounts, ArchiveMessage, RejectedRecord


def email(body: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Anna Müller <anna@example.de>"
    message["To"] = "bob@example.com"
    message["Date"] = "Sun, 31 Dec 2023 21:41:05 +0100"
    message["Message-ID"] = f"<{message_id}>"
    message.set_content(body)
    return message


def files(root: Path) -> dict[str, Path]:
    """One file of each format, all without the suffix that would name it."""
    root.mkdir(parents=True, exist_ok=True)
    box = mailbox.mbox(root / "Inbox")
    box.add(email("Die Zahlen bleiben intern.", "a@example.de"))
    box.close()
    (root / "message").write_bytes(email("Vale, lo borro.", "b@example.es").as_bytes(policy=policy.SMTP))
    outlook.MapiMessage.from_email_message(email("请删除这封邮件。", "c@example.cn")).save(root / "outlook")
    (root / "chat").write_text("31/12/2023, 21:41 - 田中太郎: 内密にお願いします\n", encoding="utf-8")
    teams = [
        {
            "id": "1",
            "messageType": "message",
            "createdDateTime": "2023-12-31T21:41:05Z",
            "chatId": "19:x@unq.gbl.spaces",
            "from": {"user": {"displayName": "Bob"}},
            "body": {"contentType": "html", "content": "<p>Let's use Signal</p>"},
        }
    ]
    (root / "teams.json").write_text(json.dumps(teams), encoding="utf-8")
    (root / "slack.json").write_text(json.dumps([{"user": "U1", "text": "ok", "ts": "1704059000.000200"}]))
    return {path.name: path for path in root.iterdir()}


def test_the_format_is_told_by_suffix_or_content(tmp_path: Path) -> None:
    found = {name: detect_format(path) for name, path in files(tmp_path).items()}
    assert found == {
        "Inbox": "mbox",
        "message": "eml",
        "outlook": "msg",
        "chat": "whatsapp",
        "teams.json": "teams",
        "slack.json": "slack",
    }
    assert detect_format(tmp_path / "x.eml") == "eml" and detect_format(tmp_path / "y.mbox") == "mbox"


def test_a_folder_is_read_in_name_order_with_one_channel_per_format(tmp_path: Path) -> None:
    files(tmp_path / "archive")
    (tmp_path / "archive" / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "archive" / "notes.bin").write_bytes(b"\x00\x01 binary")
    counts = ArchiveCounts()
    items = list(read_archive(tmp_path / "archive", counts=counts))
    assert [(Path(i.source).name, type(i).__name__) for i in items] == [
        ("Inbox", "ArchiveMessage"),
        ("chat", "ArchiveMessage"),
        ("message", "ArchiveMessage"),
        ("notes.bin", "RejectedRecord"),
        ("outlook", "ArchiveMessage"),
        ("slack.json", "ArchiveMessage"),
        ("teams.json", "ArchiveMessage"),
    ]
    assert [i.channel for i in items if isinstance(i, ArchiveMessage)] == [
        "email",
        "whatsapp",
        "email",
        "email",
        "slack",
        "teams",
    ]
    [unknown] = [i for i in items if isinstance(i, RejectedRecord)]
    assert unknown.position == 0 and unknown.reason.startswith("not a known archive format")
    assert (counts.messages, counts.rejected) == (6, 1)


def test_a_slack_export_inside_a_folder_is_read_as_one(tmp_path: Path) -> None:
    export = tmp_path / "all" / "slack-export"
    (export / "deals").mkdir(parents=True)
    (export / "channels.json").write_text(json.dumps([{"id": "C0DEALS", "name": "deals"}]))
    (export / "deals" / "2023-12-31.json").write_text(json.dumps([{"user": "U1", "text": "hi", "ts": "1.5"}]))
    [record] = list(read_archive(tmp_path / "all"))
    assert isinstance(record, ArchiveMessage) and record.record_id == "C0DEALS:1.5"


def test_the_format_can_be_given_and_options_reach_the_reader(tmp_path: Path) -> None:
    log = tmp_path / "export.log"
    log.write_text("Chat export of 2024-01-05\n01/02/23, 10:00 - Anna: hola\n", encoding="utf-8")
    [unknown] = list(read_archive(log))
    assert isinstance(unknown, RejectedRecord) and unknown.reason.startswith("not a known archive format")
    heading, record = list(read_archive(log, format="whatsapp", options=ReadOptions(day_first=False)))
    assert isinstance(heading, RejectedRecord) and heading.position == 1
    assert isinstance(record, ArchiveMessage) and record.sent_at is not None and record.sent_at.month == 1


def test_a_wrong_path_or_format_fails_when_called(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        read_archive(tmp_path / "missing.mbox")
    with pytest.raises(InvalidInputError, match="format 'pst' is not known"):
        read_archive(tmp_path, format="pst")  # type: ignore[arg-type]


def test_an_mbox_of_5000_messages_is_read_in_memory_far_below_its_size(tmp_path: Path) -> None:
    body = ("Bitte die Zahlen für Q4 nicht weiterleiten. 请不要转发。 この件は内密に。 " * 24 + "\n").encode()
    path = tmp_path / "large.mbox"
    with path.open("wb") as handle:
        for number in range(5000):
            handle.write(
                b"From anna@example.de Sun Dec 31 21:41:05 2023\n"
                b"From: Anna M\xc3\xbcller <anna@example.de>\nTo: bob@example.com\n"
                b"Date: Sun, 31 Dec 2023 21:41:05 +0100\nMessage-ID: <m%d@example.de>\n"
                b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                % number
                + body
                + b"\n"
            )
    size = path.stat().st_size
    counts = ArchiveCounts()
    tracemalloc.start()
    try:
        last = None
        for last in read_archive(path, counts=counts):  # noqa: B007 (only the count and the last are kept)
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts.messages == 5000 and isinstance(last, ArchiveMessage) and last.record_id == "m4999@example.de"
    assert size > 8_000_000
    assert peak < size / 5, f"peak {peak} bytes for a file of {size} bytes"
