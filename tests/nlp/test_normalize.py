"""Normalisation before PII detection: invisible and full-width characters, spans mapped back."""

from __future__ import annotations

import pytest

from commsrisk.nlp.normalize import normalize_for_detection

ZWSP = "\u200b"
RLO, PDF = "\u202e", "\u202c"
DE_IBAN = "DE89 3704 0044 0532 0130 00"  # the standard example IBAN, valid check digits


def test_zero_width_inside_an_iban_is_removed_and_the_span_covers_the_original() -> None:
    hidden = DE_IBAN.replace("3704", "37" + ZWSP + "04").replace("0532", ZWSP + "0532" + "\u00ad")
    text = f"IBAN: {hidden} thanks"
    norm = normalize_for_detection(text)
    assert norm.changed and norm.original == text
    assert norm.text == f"IBAN: {DE_IBAN} thanks"
    start = norm.text.index(DE_IBAN)
    orig_start, orig_end = norm.to_original_span(start, start + len(DE_IBAN))
    assert text[orig_start:orig_end] == hidden
    assert len(norm.to_original or ()) == len(norm.text)


def test_bidi_controls_are_removed() -> None:
    text = f"call {RLO}\u2066+44 20 7946 0958\u2069{PDF}\u200e now"
    norm = normalize_for_detection(text)
    assert norm.text == "call +44 20 7946 0958 now"
    start = norm.text.index("+44")
    orig = norm.to_original_span(start, start + len("+44 20 7946 0958"))
    assert text[slice(*orig)] == "+44 20 7946 0958"  # the controls at the edges are not part of the value


def test_full_width_digits_and_compatibility_digits_become_ascii() -> None:
    text = "電話は０９０－１２３４－５６７８まで"
    norm = normalize_for_detection(text)
    assert norm.text == "電話は090-1234-5678まで"
    start = norm.text.index("090")
    assert text[slice(*norm.to_original_span(start, start + 13))] == "０９０－１２３４－５６７８"
    assert normalize_for_detection("tel ０１２３").text == "tel 0123"
    assert normalize_for_detection("wang＠example．com").text == "wang@example.com"
    assert normalize_for_detection("\u0661\u0662\u0663 \U0001d7cf\U0001d7d0 \u2460\u00b2").text == "123 12 12"


def test_multi_character_mapping_keeps_spans_on_original_characters() -> None:
    text = "a\u2469b"  # circled ten: NFKC "10"
    norm = normalize_for_detection(text)
    assert norm.text == "a10b"
    assert norm.to_original_span(1, 3) == (1, 2)
    assert norm.to_original_span(1, 2) == (1, 2)  # half of the expansion still covers the character
    assert norm.to_original_span(3, 4) == (2, 3)
    assert norm.to_original_span(4, 4) == (3, 3)
    assert norm.to_original_span(0, 4) == (0, len(text))


@pytest.mark.parametrize(
    "text",
    [
        "Let's take this to the other app.",
        "请把资料发给我，谢谢！这个deal下周announce（先别讲）：好吗？",
        "振込先は口座番号：5594895です。電話番号090-1234-5678",
        "Bitte überweise auf DE89370400440532013000, Rückfragen unter 030 12345678",
        "",
    ],
)
def test_text_that_needs_nothing_is_returned_as_is(text: str) -> None:
    norm = normalize_for_detection(text)
    assert norm.text is text and not norm.changed and norm.to_original is None
    assert norm.to_original_span(0, len(text)) == (0, len(text))


def test_only_invisible_characters_normalise_to_nothing() -> None:
    text = ZWSP + RLO + PDF
    norm = normalize_for_detection(text)
    assert norm.text == "" and norm.to_original_span(0, 0) == (len(text), len(text))


# The real analyzer (tests/conftest.py's text_analyzer fixture): spans index the original message.


def test_analyzer_finds_an_iban_split_by_zero_width_spaces(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    hidden = ZWSP.join(DE_IBAN.replace(" ", ""))  # a zero-width space between every character
    text = f"Please wire the money to {hidden} today"
    analysis = text_analyzer.analyze(text, "en")
    ibans = [p for p in analysis.pii if p.entity_type == "IBAN_CODE"]
    assert ibans, [p.entity_type for p in analysis.pii]
    assert text[ibans[0].start : ibans[0].end] == hidden


def test_analyzer_finds_full_width_phone_and_email(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    phone = "１３８１２３４５６７８"
    email = "wang.xm＠example．com"
    text = f"手机{phone}，邮箱是{email}请回复"
    analysis = text_analyzer.analyze(text, "zh")
    found = {(p.entity_type, text[p.start : p.end]) for p in analysis.pii}
    assert {("PHONE_NUMBER", phone), ("EMAIL_ADDRESS", email)} <= found, found


def test_analyzer_finds_an_email_behind_bidi_controls(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    email = f"john.smith@{ZWSP}harbour{RLO}bank{PDF}.com"
    text = f"Send it to {email} tonight"
    analysis = text_analyzer.analyze(text, "en")
    found = {(p.entity_type, text[p.start : p.end]) for p in analysis.pii}
    assert ("EMAIL_ADDRESS", email) in found, found
    for item in [*analysis.pii, *analysis.entities]:
        assert 0 <= item.start <= item.end <= len(text)
