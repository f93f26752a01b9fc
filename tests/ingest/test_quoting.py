"""A reply's new text is split from its quote and signature, in each language's mail clients' forms."""

from __future__ import annotations

import pytest

from commsrisk.ingest.html_text import html_text_and_quotes, html_to_text
from commsrisk.ingest.quoting import split_reply

REPLIES = [
    pytest.param(
        "Sounds good, send it.\n\nOn Sun, Dec 31, 2023 at 9:41 PM Anna Müller <\nanna@example.de> wrote:\n\n"
        "> Can I send the deck?\n",
        "Sounds good, send it.",
        "On Sun, Dec 31, 2023",
        id="en-gmail-wrapped",
    ),
    pytest.param(
        "Please delete this after reading.\n\n________________________________\nFrom: Bob Smith <bob@example.com>\n"
        "Sent: Sunday, December 31, 2023 9:41 PM\nTo: Anna <anna@example.com>\nSubject: RE: Q4\n\nold",
        "Please delete this after reading.",
        "________________________________\nFrom: Bob",
        id="en-outlook",
    ),
    pytest.param(
        "Call me.\n-----Original Message-----\nFrom: Bob\nold text",
        "Call me.",
        "-----Original Message-----",
        id="en-original-message",
    ),
    pytest.param(
        "Bitte nicht weiterleiten.\n\nAm 31.12.2023 um 21:41 schrieb Anna Müller <anna@example.de>:\n> Die Zahlen?",
        "Bitte nicht weiterleiten.",
        "Am 31.12.2023",
        id="de-apple",
    ),
    pytest.param(
        "Passt.\n\nVon: Anna Müller <anna@example.de>\nGesendet: Sonntag, 31. Dezember 2023 21:41\nAn: Bob\n"
        "Betreff: AW: Q4\n\nalt",
        "Passt.",
        "Von: Anna",
        id="de-outlook",
    ),
    pytest.param(
        "Merci, je regarde.\n\nLe dim. 31 déc. 2023 à 21:41, Anna <anna@example.fr> a écrit :\n> Voici le fichier",
        "Merci, je regarde.",
        "Le dim. 31 déc.",
        id="fr-gmail",
    ),
    pytest.param(
        "D'accord.\n\nDe : Anna\nEnvoyé : dimanche 31 décembre 2023 21:41\nÀ : Bob\nObjet : RE: Q4\n\nancien",
        "D'accord.",
        "De : Anna",
        id="fr-outlook",
    ),
    pytest.param(
        "Mándamelo por WhatsApp.\n\nEl dom, 31 dic 2023 a las 21:41, Juan Pérez (<juan@example.es>) escribió:\n"
        "> ¿Lo envío?",
        "Mándamelo por WhatsApp.",
        "El dom, 31 dic 2023",
        id="es-gmail",
    ),
    pytest.param(
        "Vale.\n\nDe: Juan Pérez\nEnviado: domingo, 31 de diciembre de 2023 21:41\nPara: Ana\nAsunto: RE: Q4\n\nviejo",
        "Vale.",
        "De: Juan",
        id="es-outlook",
    ),
    pytest.param(
        "请不要转发这个文件。\n\n李雷 <li.lei@example.cn> 于2023年12月31日周日 21:41写道：\n> 文件在附件里",
        "请不要转发这个文件。",
        "李雷 <li.lei@example.cn>",
        id="zh-gmail",
    ),
    pytest.param(
        "收到。\n\n发件人: 李雷 <li.lei@example.cn>\n发送时间: 2023年12月31日 21:41\n"
        "收件人: Anna\n主题: 回复: Q4\n\n旧邮件",
        "收到。",
        "发件人: 李雷",
        id="zh-outlook",
    ),
    pytest.param(
        "承知しました。\n\n2023年12月31日(日) 21:41 田中太郎 <tanaka@example.jp>:\n> 資料を送ります",
        "承知しました。",
        "2023年12月31日(日)",
        id="ja-gmail",
    ),
    pytest.param(
        "確認します。\n\n差出人: 田中太郎\n送信日時: 2023年12月31日 21:41\n宛先: Anna\n件名: RE: Q4\n\n古い",
        "確認します。",
        "差出人: 田中太郎",
        id="ja-outlook",
    ),
    pytest.param(
        "> Can you do 5%?\nYes, but keep it off e-mail.\n> And the date?\nFriday.",
        "Yes, but keep it off e-mail.\nFriday.",
        "> Can you do 5%?\n> And the date?",
        id="inline-reply",
    ),
]


@pytest.mark.parametrize(("body", "text", "quoted_start"), REPLIES)
def test_the_new_text_is_apart_from_the_quote(body: str, text: str, quoted_start: str) -> None:
    parts = split_reply(body)
    assert parts.text == text
    assert parts.quoted.startswith(quoted_start)


@pytest.mark.parametrize(
    ("body", "text", "signature"),
    [
        ("Numbers attached.\n-- \nAnna Müller\nHead of Sales", "Numbers attached.", "-- \nAnna Müller\nHead of Sales"),
        ("ok\n\nSent from my iPhone", "ok", "Sent from my iPhone"),
        ("Passt so.\n\nVon meinem iPhone gesendet", "Passt so.", "Von meinem iPhone gesendet"),
        ("Vale.\n\nEnviado desde mi iPhone", "Vale.", "Enviado desde mi iPhone"),
        ("好的\n\n发自我的iPhone", "好的", "发自我的iPhone"),
        ("了解です\n\niPhoneから送信", "了解です", "iPhoneから送信"),
        ("Later.\n\nGet Outlook for Android", "Later.", "Get Outlook for Android"),
    ],
)
def test_the_signature_starts_at_the_delimiter_or_a_phones_line(body: str, text: str, signature: str) -> None:
    parts = split_reply(body)
    assert (parts.text, parts.signature) == (text, signature)


@pytest.mark.parametrize(
    "body",
    [
        "Best regards,\nAnna\nP.S. the code is 1234",  # a sign-off is not a signature
        "On Monday we ship the numbers.\nWrote them down already.",  # "On ..." without "wrote:"
        "De: nada, gracias.\nHasta luego.",  # a From-like line with no header after it
        "--\nnot a delimiter without its space",
        "Von mir aus gern.",
    ],
)
def test_plain_text_that_only_looks_like_a_quote_stays_text(body: str) -> None:
    parts = split_reply(body)
    assert (parts.text, parts.quoted, parts.signature) == (body, "", "")


def test_html_is_text_with_blocks_as_lines_and_quotes_marked() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>x()</script></head><body>"
        "<div>Hola <b>equipo</b>,</div><div>mandad&nbsp;el archivo &amp; ya <img alt='🙂' src='x'></div>"
        '<div class="gmail_quote">El lun, 1 ene 2024 a las 9:00, Juan &lt;j@example.es&gt; escribió:<br>'
        "<blockquote>viejo<br>texto<blockquote>más viejo</blockquote></blockquote></div>"
        "<pre>a  b\nc</pre></body></html>"
    )
    assert html_to_text(html) == (
        "Hola equipo,\nmandad el archivo & ya 🙂\nEl lun, 1 ene 2024 a las 9:00, Juan <j@example.es> escribió:\n"
        "> viejo\n> texto\n> > más viejo\na  b\nc"
    )
    parts = split_reply(html_to_text(html))
    assert parts.text == "Hola equipo,\nmandad el archivo & ya 🙂"
    assert parts.quoted.endswith("> > más viejo\na  b\nc")


def test_html_quotes_apart_keep_a_typed_angle_bracket_in_the_text() -> None:
    text, quoted = html_text_and_quotes(
        "<blockquote><strong>Anna</strong><p>Can you do 5%?</p></blockquote><p>&gt; 4% is the floor</p><p>ok?</p>"
    )
    assert text == "> 4% is the floor\nok?"
    assert quoted == "Anna\nCan you do 5%?"
