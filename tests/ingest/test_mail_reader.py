"""E-mail archives (.eml, mbox, Outlook .msg), read as a firm's exports come: broken ones included."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aspose.email_foss import msg as outlook

from commsrisk.ingest.mail import read_eml, read_mbox, read_msg
from commsrisk.ingest.records import ArchiveCounts, ArchiveItem, ArchiveMessage, RejectedRecord

SECRET = "Projekt Falke"
"""A phrase in the bodies below that must never appear in a reason or a warning."""


def mail(
    body: str,
    *,
    sender: str = "Anna Müller <anna@example.de>",
    to: str = "Bob Smith <bob@example.com>",
    message_id: str | None = "<m2@example.de>",
    date: str | None = "Sun, 31 Dec 2023 21:41:05 +0100",
    subtype: str = "plain",
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Re: Q4"
    if date:
        message["Date"] = date
    if message_id:
        message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body, subtype=subtype)
    return message


def write(path: Path, data: bytes | EmailMessage) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.as_bytes(policy=policy.SMTP))
    return path


def only(items: list[ArchiveItem]) -> ArchiveMessage:
    assert len(items) == 1 and isinstance(items[0], ArchiveMessage), items
    return items[0]


def no_secret_in(items: list[ArchiveItem]) -> None:
    for item in items:
        said = [item.reason] if isinstance(item, RejectedRecord) else list(item.warnings)
        assert not any(SECRET in text or "Gr" in text and "ße" in text for text in said), said


def test_an_eml_reply_keeps_its_thread_sender_date_and_only_its_new_text(tmp_path: Path) -> None:
    body = (
        f"Bitte {SECRET} nicht weiterleiten.\n\n-- \nAnna Müller\nVertrieb\n\n"
        "Am 31.12.2023 um 20:00 schrieb Bob Smith <bob@example.com>:\n> Schick mir die Zahlen.\n"
    )
    message = mail(body, References="<m0@example.com> <m1@example.com>", In_Reply_To="<m1@example.com>")
    message["Cc"] = "李雷 <li.lei@example.cn>"
    record = only(list(read_eml(write(tmp_path / "reply.eml", message), ArchiveCounts())))
    assert record.record_id == "m2@example.de"
    assert record.conversation_id == "m0@example.com"  # the thread's root, from References
    assert record.sender == "anna@example.de"
    assert record.recipients == ("bob@example.com", "li.lei@example.cn")
    assert record.sent_at == datetime(2023, 12, 31, 20, 41, 5, tzinfo=UTC)
    assert record.sent_at.utcoffset() == timedelta(hours=1)
    assert record.text == f"Bitte {SECRET} nicht weiterleiten."
    assert record.signature == "-- \nAnna Müller\nVertrieb"
    assert record.quoted_text.startswith("Am 31.12.2023 um 20:00 schrieb") and "> Schick" in record.quoted_text
    assert (record.channel, record.position, record.warnings) == ("email", 1, ())
    message_for_scoring = record.to_message()
    assert message_for_scoring.message_id == "m2@example.de" and message_for_scoring.channel == "email"
    assert message_for_scoring.conversation_id == "m0@example.com"


def test_the_plain_part_is_preferred_and_html_alone_is_stripped_to_text(tmp_path: Path) -> None:
    both = mail("Mándamelo por Signal, no por aquí.")
    both.add_alternative("<p>HTML <b>version</b></p>", subtype="html")
    both.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="cifras.pdf")
    html = mail(
        "<html><body><p>请不要<b>转发</b>。</p><div class='gmail_quote'>2023年12月31日(日) 21:41 田中 "
        "&lt;tanaka@example.jp&gt;:<blockquote>古いメール</blockquote></div></body></html>",
        subtype="html",
        In_Reply_To="<m1@example.jp>",
    )
    counts = ArchiveCounts()
    first = only(list(read_eml(write(tmp_path / "both.eml", both), counts)))
    second = only(list(read_eml(write(tmp_path / "html.eml", html), counts)))
    assert first.text == "Mándamelo por Signal, no por aquí."
    assert counts.attachments == 1
    assert second.text == "请不要转发。"
    assert second.quoted_text == "2023年12月31日(日) 21:41 田中 <tanaka@example.jp>:\n> 古いメール"
    assert second.conversation_id == "m1@example.jp"


@pytest.mark.parametrize(
    ("charset", "payload", "text", "warning"),
    [
        ("utf-8", "Grüße, Ihr Angebot".encode("latin-1"), "Gr\ufffd\ufffde, Ihr Angebot", "not valid in UTF-8"),
        ("x-unknown-8bit", "Grüße".encode(), "Grüße", "unknown charset 'x-unknown-8bit'"),
        ("x-unknown-8bit", "Grüße".encode("latin-1"), "Gr\ufffd\ufffde", "U+FFFD"),
        ("us-ascii", "Grüße, 请".encode(), "Grüße, 请", "but is valid UTF-8"),
        ("iso-8859-1", "Grüße".encode("latin-1"), "Grüße", None),
        ("gb2312", "请不要转发".encode("gb2312"), "请不要转发", None),
        ("shift_jis", "転送しないで".encode("shift_jis"), "転送しないで", None),
    ],
)
def test_a_wrong_or_unknown_charset_is_decoded_and_warned_not_dropped(
    tmp_path: Path, charset: str, payload: bytes, text: str, warning: str | None
) -> None:
    raw = (
        b"From: anna@example.de\r\nMessage-ID: <c@example.de>\r\nDate: Sun, 31 Dec 2023 21:41:05 +0100\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + payload + b"\r\n"
    )  # fmt: skip
    items = list(read_eml(write(tmp_path / "c.eml", raw), ArchiveCounts()))
    record = only(items)
    assert record.text == text
    if warning is None:
        assert record.warnings == ()
    else:
        assert any(warning in w for w in record.warnings), record.warnings
    no_secret_in(items)


def test_an_eml_without_ids_or_date_gets_a_stable_id_and_says_what_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "bare.eml", mail("Lo hablamos en persona.", message_id=None, date=None))
    first = only(list(read_eml(path, ArchiveCounts())))
    again = only(list(read_eml(path, ArchiveCounts())))
    assert first.record_id == again.record_id and first.record_id.startswith("sha256:")
    assert first.conversation_id == first.record_id
    assert first.sent_at is None and "no Date header: sent_at unknown" in first.warnings


def test_a_date_without_a_zone_is_utc_and_a_bad_date_is_warned(tmp_path: Path) -> None:
    no_zone = only(
        list(read_eml(write(tmp_path / "a.eml", mail("x", date="Sun, 31 Dec 2023 21:41:05 -0000")), ArchiveCounts()))
    )
    bad = only(list(read_eml(write(tmp_path / "b.eml", mail("x", date="the 31st, late")), ArchiveCounts())))
    assert no_zone.sent_at == datetime(2023, 12, 31, 21, 41, 5, tzinfo=UTC) and no_zone.sent_at.tzinfo is not None
    assert bad.sent_at is None and any("not a valid date" in w for w in bad.warnings)


def test_headers_the_stdlib_cannot_parse_are_warned_and_the_message_still_read(tmp_path: Path) -> None:
    raw = (
        b"From: <\r\nTo: @@@,,<>\r\nMessage-ID: <broken@example.de>\r\n"
        b"Date: Sun, 31 Dec 2023 21:41:05 +0100\r\n\r\nhallo\r\n"
    )
    items = list(read_eml(write(tmp_path / "h.eml", raw), ArchiveCounts()))
    record = only(items)
    assert record.text == "hallo" and record.sender is None and record.recipients == ()
    assert any("header 'From' cannot be parsed" in w for w in record.warnings)


def test_a_file_that_is_not_an_email_is_rejected(tmp_path: Path) -> None:
    assert list(read_eml(write(tmp_path / "empty.eml", b""), ArchiveCounts())) == [
        RejectedRecord(str(tmp_path / "empty.eml"), 1, "no e-mail headers: not an e-mail message")
    ]


def write_mbox(path: Path, messages: list[EmailMessage]) -> Path:
    box = mailbox.mbox(path)
    for message in messages:
        box.add(message)
    box.close()
    return path


def thread() -> list[EmailMessage]:
    first = mail(f"Die Zahlen zu {SECRET} kommen morgen.", message_id="<t1@example.de>")
    second = mail(
        "Please keep this between us.\n\nSent from my iPhone\n\n"
        "On Sun, Dec 31, 2023 at 9:41 PM Anna wrote:\n> Die Zahlen",
        sender="bob@example.com",
        message_id="<t2@example.com>",
        In_Reply_To="<t1@example.de>",
        References="<t1@example.de>",
    )
    third = mail(
        "Vale, lo borro.",
        sender="juan@example.es",
        message_id="<t3@example.es>",
        References="<t1@example.de> <t2@example.com>",
    )
    third.add_attachment(b"A" * 4000, maintype="application", subtype="pdf", filename="cifras.pdf")
    return [first, second, third]


def test_an_mbox_is_read_message_by_message_in_one_thread(tmp_path: Path) -> None:
    counts = ArchiveCounts()
    items = list(read_mbox(write_mbox(tmp_path / "inbox.mbox", thread()), counts))
    assert [(i.position, i.record_id, i.conversation_id) for i in items if isinstance(i, ArchiveMessage)] == [
        (1, "t1@example.de", "t1@example.de"),
        (2, "t2@example.com", "t1@example.de"),
        (3, "t3@example.es", "t1@example.de"),
    ]
    second = items[1]
    assert isinstance(second, ArchiveMessage)
    assert (second.text, second.signature) == ("Please keep this between us.", "Sent from my iPhone")
    assert counts.attachments == 1


@pytest.mark.parametrize("cut", ["mid-attachment", "mid-headers", "mid-line"])
def test_a_truncated_mbox_still_yields_its_last_message_and_says_it_may_be_cut(tmp_path: Path, cut: str) -> None:
    whole = write_mbox(tmp_path / "whole.mbox", thread()).read_bytes()
    last = whole.rindex(b"\nFrom ") + 1
    if cut == "mid-attachment":
        end = whole.index(b"QUFBQUFB", last) + 100
    elif cut == "mid-headers":
        end = whole.index(b"Subject:", last)
    else:
        end = whole.index(b"Vale, lo", last) + 6
    path = write(tmp_path / "cut.mbox", whole[:end])
    items = list(read_mbox(path, ArchiveCounts()))
    assert len(items) == 3 and all(isinstance(i, ArchiveMessage) for i in items)
    last_record = items[-1]
    assert isinstance(last_record, ArchiveMessage) and last_record.position == 3
    assert last_record.warnings, "the cut message must say it may be cut"
    if cut == "mid-attachment":
        assert last_record.text == "Vale, lo borro."
        assert any("CloseBoundaryNotFoundDefect" in w for w in last_record.warnings)
    elif cut == "mid-headers":
        assert "the file ends inside this last message's headers: it is cut short" in last_record.warnings
    else:
        assert last_record.text == "Vale,"
        assert "the file ends mid-line: this last message may be cut short" in last_record.warnings
    no_secret_in(items)


def test_text_before_the_first_from_line_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    whole = write_mbox(tmp_path / "whole.mbox", thread()).read_bytes()
    path = write(tmp_path / "prefixed.mbox", f"{SECRET}: stray text\n\n".encode() + whole)
    items = list(read_mbox(path, ArchiveCounts()))
    assert isinstance(items[0], RejectedRecord) and items[0].position == 0
    assert [i.position for i in items[1:]] == [1, 2, 3]
    no_secret_in(items)


def outlook_message(email_message: EmailMessage, path: Path) -> Path:
    outlook.MapiMessage.from_email_message(email_message).save(path)
    return path


def test_an_outlook_msg_is_read_with_its_headers_and_new_text(tmp_path: Path) -> None:
    message = mail(
        "收到，请删除这封邮件。\n\n发件人: Anna Müller <anna@example.de>\n发送时间: 2023年12月31日 21:41\n"
        "收件人: 李雷\n主题: Q4\n\nDie Zahlen anbei.",
        sender="李雷 <li.lei@example.cn>",
        message_id="<o2@example.cn>",
        In_Reply_To="<o1@example.de>",
        References="<o1@example.de>",
    )
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="q4.pdf")
    counts = ArchiveCounts()
    record = only(list(read_msg(outlook_message(message, tmp_path / "reply.msg"), counts)))
    assert (record.record_id, record.conversation_id) == ("o2@example.cn", "o1@example.de")
    assert record.sender == "li.lei@example.cn" and record.recipients == ("bob@example.com",)
    assert record.sent_at == datetime(2023, 12, 31, 21, 41, 5, tzinfo=timezone(timedelta(hours=1)))
    assert record.text == "收到，请删除这封邮件。"
    assert record.quoted_text.startswith("发件人: Anna Müller")
    assert counts.attachments == 1


def test_an_html_only_outlook_msg_is_stripped_to_text(tmp_path: Path) -> None:
    message = mail("<p>Hola <b>equipo</b>, borrad esto.</p><blockquote>viejo</blockquote>", subtype="html")
    record = only(list(read_msg(outlook_message(message, tmp_path / "html.msg"), ArchiveCounts())))
    assert record.text == "Hola equipo, borrad esto." and record.quoted_text == "> viejo"


@pytest.mark.parametrize("damage", ["not-ole", "truncated", "empty"])
def test_a_corrupt_outlook_msg_is_rejected_with_a_reason(tmp_path: Path, damage: str) -> None:
    good = outlook_message(mail(f"{SECRET} bleibt intern."), tmp_path / "good.msg").read_bytes()
    data = {"not-ole": f"{SECRET} is not OLE".encode(), "truncated": good[:1500], "empty": b""}[damage]
    items = list(read_msg(write(tmp_path / "bad.msg", data), ArchiveCounts()))
    assert len(items) == 1 and isinstance(items[0], RejectedRecord), items
    assert items[0].position in (0, 1) and "Outlook" in items[0].reason
    no_secret_in(items)
