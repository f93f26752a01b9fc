"""WhatsApp "Export chat" files from Android and iOS in several locales, broken lines included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from commsrisk.ingest.records import ArchiveCounts, ArchiveItem, ArchiveMessage, RejectedRecord
from commsrisk.ingest.whatsapp import read_whatsapp

NNBSP = "\u202f"
LRM = "\u200e"
SECRET = "Projekt Falke"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def read(path: Path, **options: object) -> tuple[list[ArchiveItem], ArchiveCounts]:
    counts = ArchiveCounts()
    return list(read_whatsapp(path, counts, **options)), counts  # type: ignore[arg-type]


def messages(items: list[ArchiveItem]) -> list[ArchiveMessage]:
    return [i for i in items if isinstance(i, ArchiveMessage)]


@pytest.mark.parametrize(
    ("line", "sent_at", "sender", "text"),
    [
        (f"12/31/23, 9:41{NNBSP}PM - Anna: Let's take this to Signal", (2023, 12, 31, 21, 41), "Anna", None),
        ("12/31/23, 9:41 PM - Bob Smith: call me on my cell", (2023, 12, 31, 21, 41), "Bob Smith", None),
        ("31/12/2023, 21:41 - Anna Müller: Bitte löschen", (2023, 12, 31, 21, 41), "Anna Müller", None),
        ("[31.12.23, 21:41:05] Anna Müller: Das bleibt unter uns", (2023, 12, 31, 21, 41, 5), "Anna Müller", None),
        ("2023/12/31 21:41 - 李雷: 请不要告诉任何人", (2023, 12, 31, 21, 41), "李雷", None),
        ("2023-12-31 21:41 - 田中太郎: この件は内密に", (2023, 12, 31, 21, 41), "田中太郎", None),
        ("31/12/23, 9:41 p. m. - Juan Pérez: Bórralo, por favor", (2023, 12, 31, 21, 41), "Juan Pérez", None),
        (f"[12/31/23, 12:05:09{NNBSP}AM] Bob: ok: done", (2023, 12, 31, 0, 5, 9), "Bob", "ok: done"),
        (f"{LRM}[31.12.23, 21:41:05] Anna: mit LRM davor", (2023, 12, 31, 21, 41, 5), "Anna", None),
    ],
)
def test_each_locales_date_line_is_read(
    tmp_path: Path, line: str, sent_at: tuple[int, ...], sender: str, text: str | None
) -> None:
    items, _ = read(write(tmp_path / "chat.txt", line + "\n"))
    [record] = messages(items)
    assert record.sent_at == datetime(*sent_at, tzinfo=UTC)  # type: ignore[misc]
    assert record.sender == sender
    assert record.text == (text or line.split(": ", 1)[1])
    assert (record.channel, record.position, record.conversation_id) == ("whatsapp", 1, "chat")


ENCRYPTED_EN = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read them."
)
ENCRYPTED_DE = "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses Chats kann sie lesen."
ANDROID_US = f"""\ufeff12/31/23, 9:00{NNBSP}PM - {ENCRYPTED_EN}
12/31/23, 9:01{NNBSP}PM - Anna created group "Q4 deal"
12/31/23, 9:01{NNBSP}PM - Anna added Bob
12/31/23, 9:02{NNBSP}PM - Anna changed the subject from "Q4" to "Q4: numbers"
12/31/23, 9:41{NNBSP}PM - Anna: Let's move this to Signal.
Don't put {SECRET} in e-mail: compliance reads it.

12/31/23, 9:42{NNBSP}PM - Bob: <Media omitted>
12/31/23, 9:43{NNBSP}PM - Bob: IMG-20231231-WA0001.jpg (file attached)
the numbers, keep them quiet
12/31/23, 9:44{NNBSP}PM - Bob: This message was deleted
12/31/23, 9:45{NNBSP}PM - Juan: Vale, lo hablamos mañana
12/31/23, 9:45{NNBSP}PM - Juan: Vale, lo hablamos mañana
12/31/23, 9:46{NNBSP}PM - Bob left
"""


def test_an_android_group_chat_keeps_messages_and_counts_what_is_not_one(tmp_path: Path) -> None:
    items, counts = read(write(tmp_path / "WhatsApp Chat with Q4 deal.txt", ANDROID_US))
    assert all(isinstance(i, ArchiveMessage) for i in items), items
    assert [(m.position, m.sender, m.text) for m in messages(items)] == [
        (5, "Anna", f"Let's move this to Signal.\nDon't put {SECRET} in e-mail: compliance reads it."),
        (9, "Bob", "the numbers, keep them quiet"),
        (12, "Juan", "Vale, lo hablamos mañana"),
        (13, "Juan", "Vale, lo hablamos mañana"),
    ]
    assert messages(items)[0].conversation_id == "WhatsApp Chat with Q4 deal"
    repeated = [m.record_id for m in messages(items)[2:]]
    assert repeated[0] != repeated[1] and repeated[1] == repeated[0] + "-2"  # the same text twice, two records
    assert (counts.system, counts.attachments, counts.attachment_only, counts.deleted) == (5, 2, 1, 1)


IOS_DE = f"""[31.12.23, 21:00:00] Q4 Runde: {LRM}{ENCRYPTED_DE}
[31.12.23, 21:00:01] Q4 Runde: {LRM}Anna hat dich hinzugefügt.
[31.12.23, 21:41:05] Anna Müller: Die Zahlen für {SECRET} bitte nur hier.
[31.12.23, 21:41:30] Anna Müller: {LRM}<Anhang: 00000012-PHOTO-2023-12-31-21-41-30.jpg>
[31.12.23, 21:42:00] 李雷: {LRM}Bild weggelassen
[31.12.23, 21:43:00] 李雷: 好的，我不会转发
[01.01.24, 09:00:00] 田中太郎: 了解です。
明日話しましょう。
[01.01.24, 09:05:00] Juan Pérez: <Anhang fehlt>
[01.01.24, 09:06:00] Juan Pérez: {LRM}Diese Nachricht wurde gelöscht.
"""


def test_an_ios_export_in_german_with_chinese_and_japanese_messages(tmp_path: Path) -> None:
    folder = tmp_path / "WhatsApp Chat - Q4 Runde"
    folder.mkdir()
    items, counts = read(write(folder / "_chat.txt", IOS_DE))
    assert [(m.position, m.sender, m.text) for m in messages(items)] == [
        (3, "Anna Müller", f"Die Zahlen für {SECRET} bitte nur hier."),
        (6, "李雷", "好的，我不会转发"),
        (7, "田中太郎", "了解です。\n明日話しましょう。"),
    ]
    assert messages(items)[0].conversation_id == "WhatsApp Chat - Q4 Runde"  # _chat.txt is named by its folder
    assert messages(items)[2].sent_at == datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    assert (counts.system, counts.attachments, counts.attachment_only, counts.deleted) == (2, 3, 3, 1)


def test_broken_lines_are_reported_by_line_and_reason_and_the_rest_is_read(tmp_path: Path) -> None:
    chat = (
        f"exported by a tool that wrote {SECRET} first\n"
        "\n"
        "31/12/2023, 21:41 - Anna: first\n"
        "32/12/2023, 21:42 - Anna: a day that does not exist\n"
        "with its second line\n"
        "31/12/2023, 21:43 - Bob: still read\n"
    ).encode() + b"31/12/2023, 21:44 - Bob: caf\xe9 in latin-1\n31/12/2023, 21:45 - Anna: and after it\n"
    items, counts = read(write(tmp_path / "chat.txt", chat))
    assert [(type(i).__name__, i.position) for i in items] == [
        ("RejectedRecord", 1),
        ("ArchiveMessage", 3),
        ("RejectedRecord", 4),
        ("ArchiveMessage", 6),
        ("RejectedRecord", 7),
        ("ArchiveMessage", 8),
    ]
    reasons = [i.reason for i in items if isinstance(i, RejectedRecord)]
    assert reasons[0].startswith("not a WhatsApp message line")
    assert reasons[1].startswith("the date or time is not valid")
    assert reasons[2] == "field 'text' holds invalid UTF-8 (byte 0xE9 at character 3); save the file as UTF-8"
    assert not any(SECRET in r or "exist" in r or "caf" in r for r in reasons)


def test_a_line_that_only_ends_like_an_attachment_marker_is_text(tmp_path: Path) -> None:
    items, counts = read(
        write(tmp_path / "chat.txt", "31/12/2023, 21:41 - Anna: sorry, in my mail the image omitted\n")
    )
    assert [m.text for m in messages(items)] == ["sorry, in my mail the image omitted"] and counts.attachments == 0


def test_a_file_in_an_unknown_date_format_reports_every_line_and_yields_no_message(tmp_path: Path) -> None:
    chat = "Dec 31, 2023 at 9:41 PM, Anna: hi\nDec 31, 2023 at 9:42 PM, Bob: hello\n"
    items, _ = read(write(tmp_path / "chat.txt", chat))
    assert [(type(i).__name__, i.position) for i in items] == [("RejectedRecord", 1), ("RejectedRecord", 2)]


@pytest.mark.parametrize(
    ("lines", "day_first", "expected"),
    [
        (["01/02/23, 10:00 - Anna: a", "13/02/23, 10:00 - Anna: b"], None, (2023, 2, 1)),  # a 13 says day first
        (["01/02/23, 10:00 AM - Anna: a", "01/13/23, 10:00 AM - Anna: b"], None, (2023, 1, 2)),  # month first
        (["01/02/23, 10:00 - Anna: a"], None, (2023, 2, 1)),  # ambiguous, 24-hour: day first (UK/EU)
        (["01/02/23, 10:00 AM - Anna: a"], None, (2023, 1, 2)),  # ambiguous with AM/PM: month first (US)
        (["01.02.23, 10:00 - Anna: a"], None, (2023, 2, 1)),
        (["01/02/23, 10:00 - Anna: a"], False, (2023, 1, 2)),  # the caller says
    ],
)
def test_the_date_order_is_found_per_file(
    tmp_path: Path, lines: list[str], day_first: bool | None, expected: tuple[int, int, int]
) -> None:
    items, _ = read(write(tmp_path / "chat.txt", "\n".join(lines) + "\n"), day_first=day_first)
    first = messages(items)[0]
    assert first.sent_at is not None and first.sent_at.date() == datetime(*expected).date()


def test_times_are_utc_unless_the_caller_names_the_zone_and_ids_are_stable(tmp_path: Path) -> None:
    path = write(tmp_path / "chat.txt", "31/12/2023, 21:41 - Anna: hola\n")
    berlin = timezone(timedelta(hours=1))
    [utc] = messages(read(path)[0])
    [local] = messages(read(path, assume_tz=berlin)[0])
    assert utc.sent_at == datetime(2023, 12, 31, 21, 41, tzinfo=UTC)
    assert local.sent_at == datetime(2023, 12, 31, 20, 41, tzinfo=UTC)
    assert utc.record_id == messages(read(path)[0])[0].record_id


@pytest.mark.parametrize(
    "line",
    [
        "31/12/2023, 21:00 - Los mensajes y las llamadas están cifrados de extremo a extremo.",
        "31/12/2023, 21:00 - Juan añadió a Ana",
        '31/12/2023, 21:00 - Juan cambió el asunto de "Q4" a "Q4: cifras"',
        "31/12/2023, 21:00 - Anna hat Bob hinzugefügt",
        "31/12/2023, 21:00 - Anna hat den Betreff von „Q4“ zu „Q4: Zahlen“ geändert",
        "31/12/2023, 21:00 - Anna a ajouté Bob",
        "2023/12/31 21:00 - 消息和通话已进行端到端加密。对话之外的任何人，包括 WhatsApp，都无法读取或收听。",
        "2023/12/31 21:00 - 李雷 更改了群组名称为 “Q4: 数字”",
        "2023/12/31 21:00 - 田中太郎がグループ名を「Q4: 数字」に変更しました",
        f"[31.12.23, 21:00:00] Anna: {LRM}Missed voice call",
    ],
)
def test_system_lines_in_each_language_are_skipped_and_counted(tmp_path: Path, line: str) -> None:
    items, counts = read(write(tmp_path / "chat.txt", f"{line}\n31/12/2023, 21:01 - Anna: ok\n"))
    assert [(type(i).__name__, i.position) for i in items] == [("ArchiveMessage", 2)]
    assert counts.system == 1


@pytest.mark.parametrize(
    "text",
    [f"{LRM}image omitted", f"{LRM}Q4.pdf • {LRM}3 pages {LRM}document omitted",
     f"{LRM}<attached: 00000021-PHOTO-2023-12-31-21-41-05.jpg>", "<Media omitted>",
     "<Multimedia omitido>", f"{LRM}imagen omitida", "<Anhang fehlt>", f"{LRM}Bild weggelassen"],
)  # fmt: skip
def test_attachment_lines_are_counted_and_an_attachment_alone_is_not_a_message(tmp_path: Path, text: str) -> None:
    chat = f"[31.12.23, 21:41:05] Anna: {text}\n[31.12.23, 21:41:06] Anna: {text}\nsigned copy, keep it\n"
    items, counts = read(write(tmp_path / "chat.txt", chat))
    assert [(m.position, m.text) for m in messages(items)] == [(2, "signed copy, keep it")]
    assert (counts.attachments, counts.attachment_only) == (2, 1)
