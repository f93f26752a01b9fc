"""A reply's new text, apart from what it quotes and from its signature, so nothing is scored twice.

A reply carries the earlier mails of its thread; those are records of their own in the archive,
and scoring them again inside every reply would count one sentence many times. The new text is
what comes before the first quote header, less the "> " lines in it (an inline reply keeps its
own lines and loses the quoted ones). What starts a quote:

- an attribution line: "On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :",
  "El ... escribió:", "... 写道：", "...が書きました:", or a line that ends in "<address>:"
  (Gmail's form in Japanese and other locales); wrapped over up to three lines;
- a separator: "-----Original Message-----" and its German, French, Spanish, Chinese and
  Japanese forms, the forwarded-message separators, "Begin forwarded message:";
- an Outlook header block: a From line ("From:", "Von:", "De:", "发件人:", "差出人:", ...)
  followed within four lines by another header ("Sent:", "An:", "Objet:", "主题:", "件名:", ...).

The signature starts at the "-- " delimiter line (RFC 3676) or at a phone's default line
("Sent from my iPhone", "Von meinem iPhone gesendet", "iPhoneから送信", ...). Sign-offs such
as "Best regards" are NOT treated as a signature: they are too often followed by more text.
These rules are hand-written: no stdlib or pinned package splits replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ReplyParts:
    """A body split into the new text, the quoted text and the signature (each may be empty)."""

    text: str
    quoted: str
    signature: str


def _any(patterns: list[str], flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags)


_ATTRIBUTION = _any(
    [
        r"On\b.{1,400}\bwrote\s*:",
        r"Am\b.{1,400}\bschrieb\b.{0,400}:",
        r"Le\b.{1,400}\ba écrit\s*:",
        r"El\b.{1,400}\bescribió\s*:",
        r".{0,400}(?:写道|寫道)\s*[:：]",
        r".{0,400}(?:が書きました|は書きました)\s*[:：]?",
        r".{0,400}<[^<>\s@]+@[^<>\s]+>\s*[:：]",
    ]
)
_OPENER = re.compile(r"(?:On|Am|Le|El)\s|在", re.IGNORECASE)
"""How a wrapped attribution line starts; only these may be joined with the lines after them."""

_SEPARATOR = _any(
    [
        r"-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Originalnachricht|Message d'origine|Mensaje original"
        r"|原始邮件|原始郵件|元のメッセージ|Forwarded message|Weitergeleitete Nachricht|Message transféré"
        r"|Mensaje reenviado|转发的邮件|轉寄的郵件|転送メッセージ)\s*-{2,}",
        r"(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|Début du message réexpédié"
        r"|Inicio del mensaje reenviado)\s*:",
    ]
)
_FROM_LINE = re.compile(r"\*?(?:From|Von|De|Remitente|发件人|發件人|寄件者|差出人)\s*\*?\s*[:：].*", re.IGNORECASE)
_HEADER_LINE = re.compile(
    r"\*?(?:Sent|Date|To|Cc|Subject|Gesendet|Datum|An|Betreff|Envoyé|À|Objet|Enviado|Fecha|Para|Asunto"
    r"|发送时间|發送時間|日期|收件人|抄送|主题|主題|寄件日期|送信日時|日付|宛先|件名)\s*\*?\s*[:：].*",
    re.IGNORECASE,
)
_RULE = re.compile(r"[_\-=]{5,}")
"""The line of underscores Outlook puts above its header block."""

_MOBILE_SIGNATURE = _any(
    [
        r"Sent from my (?:iPhone|iPad|iPod|Android|BlackBerry|Samsung|Galaxy|Huawei|Pixel|mobile|phone|smartphone)"
        r".{0,60}",
        r"(?:Sent from|Get) (?:Outlook|Mail|Yahoo Mail|Gmail)(?: for .{1,30})?",
        r"(?:Von meinem|Gesendet von meinem|Gesendet vom) (?:iPhone|iPad|Samsung|Galaxy|Android|Smartphone|Handy"
        r"|Mobiltelefon).{0,60}",
        r"(?:Von|Gesendet von) Outlook für (?:iOS|Android)",
        r"Envoyé (?:de|depuis) mon (?:iPhone|iPad|Android|Samsung|smartphone|mobile).{0,60}",
        r"(?:Envoyé de|Obtenir) Outlook pour (?:iOS|Android)",
        r"Enviado (?:desde|con) mi (?:iPhone|iPad|Android|Samsung|smartphone|móvil|celular).{0,60}",
        r"(?:Enviado desde|Obtener) Outlook para (?:iOS|Android)",
        r"(?:从我的|發自我的|发自我的|来自我的|來自我的)\s?(?:iPhone|iPad|Android|手机|手機|华为|華為).{0,20}",
        r"(?:iPhone|iPad|Android|スマートフォン|スマホ)から送信",
    ]
)


def split_reply(body: str) -> ReplyParts:
    """Split an e-mail body into its new text, what it quotes and its signature (rules in the module doc)."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _quote_start(lines)
    new: list[str] = []
    quoted: list[str] = []
    signature: list[str] = []
    in_signature = False
    for line in lines[:start]:
        if line.startswith(">"):
            quoted.append(line)
            continue
        if not in_signature and (line == "-- " or _MOBILE_SIGNATURE.fullmatch(line.strip())):
            in_signature = True
        (signature if in_signature else new).append(line)
    quoted.extend(lines[start:])
    return ReplyParts(_join(new), _join(quoted), _join(signature))


def _quote_start(lines: list[str]) -> int:
    """Index of the first line of the quoted part, or len(lines) when nothing is quoted."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(">"):
            continue
        if _SEPARATOR.fullmatch(stripped) or _is_attribution(lines, index):
            return index
        if _FROM_LINE.fullmatch(stripped) and _header_follows(lines, index):
            before = index - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            return before if before >= 0 and _RULE.fullmatch(lines[before].strip()) else index
    return len(lines)


def _is_attribution(lines: list[str], index: int) -> bool:
    """An attribution line at `index`, alone or wrapped over the next two lines."""
    if _ATTRIBUTION.fullmatch(lines[index].strip()):
        return True
    if not _OPENER.match(lines[index].strip()):
        return False
    joined = lines[index].strip()
    for following in lines[index + 1 : index + 3]:
        if not following.strip():
            return False
        joined = f"{joined} {following.strip()}"
        if _ATTRIBUTION.fullmatch(joined):
            return True
    return False


def _header_follows(lines: list[str], index: int) -> bool:
    """Another mail header within the four non-blank lines after a From line."""
    seen = 0
    for line in lines[index + 1 :]:
        if not line.strip():
            continue
        if _HEADER_LINE.fullmatch(line.strip()):
            return True
        seen += 1
        if seen == 4:
            return False
    return False


def _join(lines: list[str]) -> str:
    """Lines joined, leading and trailing blank lines dropped (inner ones kept)."""
    return "\n".join(lines).strip()
