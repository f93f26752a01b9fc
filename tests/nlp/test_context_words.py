"""Context words on the real pipelines: whose word stands nearest, CJK character windows, gated country ids.

Rows written here (not taken from the PII set); each says what a reviewer would call the number.
"""

from __future__ import annotations

import pytest

from commsrisk.nlp.checksums import jp_my_number_check_digit, jp_my_number_is_valid
from commsrisk.nlp.context_enhancer import starts_word

MY_NUMBER = "12345678901" + jp_my_number_check_digit("12345678901")
MY_NUMBER_BAD = MY_NUMBER[:-1] + str((int(MY_NUMBER[-1]) + 1) % 10)


def found(text_analyzer, text: str, lang: str | None) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(p.entity_type, text[p.start : p.end]) for p in text_analyzer.analyze(text, lang).pii}


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        # the nearest word decides between a phone and an account
        ("Margin call on the account 2785886145 tonight", "en", ("BANK_ACCOUNT", "2785886145")),
        ("Wire recall request: funds sent from 2833105103 yesterday", "en", ("BANK_ACCOUNT", "2833105103")),
        ("Our account number is 81055775, mobile +44 7700 900123", "en", ("BANK_ACCOUNT", "81055775")),
        ("Our account number is 81055775, mobile +44 7700 900123", "en", ("PHONE_NUMBER", "+44 7700 900123")),
        ("Il manque l'appel de fonds sur le compte 5542032712", "fr", ("BANK_ACCOUNT", "5542032712")),
        ("Teléfono de emergencia: +34 981987660, pasaporte en regla", "es", ("PHONE_NUMBER", "+34 981987660")),
        # phone shapes the numbering plans refuse, beside a phone word
        ("Call me on (153) 292-5989 after the close", "en", ("PHONE_NUMBER", "(153) 292-5989")),
        ("mi cel nuevo es 1-288-212-4769x55, márcame", "es", ("PHONE_NUMBER", "1-288-212-4769x55")),
        ("Rückruf bitte unter (07698) 62946 520", "de", ("PHONE_NUMBER", "(07698) 62946 520")),
        ("Rappel au 001-935-923-0804 demain matin", "fr", ("PHONE_NUMBER", "001-935-923-0804")),
        ("佐藤さんの携帯は50-7284-0220に変わりました", "ja", ("PHONE_NUMBER", "50-7284-0220")),
        ("折り返しは12-3281-7858までお願いします", "ja", ("PHONE_NUMBER", "12-3281-7858")),
        # Chinese and Japanese context read in characters (jieba cuts traditional characters apart)
        ("傅先生嘅護照號碼Z73754976過咗期", "zh", ("PASSPORT", "Z73754976")),
        ("客人要由佢個人戶口4233912548901928967過數", "zh", ("BANK_ACCOUNT", "4233912548901928967")),
        ("客户要把资金从9594323761788361转到子公司账户", "zh", ("BANK_ACCOUNT", "9594323761788361")),
        ("金融機関：三井住友銀行 新宿支店 口座番号：5594895", None, ("BANK_ACCOUNT", "5594895")),
        # country ids, each with its own word
        ("Routing 021000021, account 12345678 for the wire", "en", ("ABA_ROUTING_NUMBER", "021000021")),
        ("Routing 021000021, account 12345678 for the wire", "en", ("BANK_ACCOUNT", "12345678")),
        ("NHS number 943 476 5919 on the referral", "en", ("UK_NHS", "943 476 5919")),
        ("His NI number is AB 12 34 56 C", "en", ("UK_NINO", "AB 12 34 56 C")),
        ("ITIN 912-70-1234 on file", "en", ("US_ITIN", "912-70-1234")),
        ("Mi DNI es 12345678Z, lo mando luego", "es", ("ES_NIF", "12345678Z")),
        ("NIE X1234567L para el alta", "es", ("ES_NIE", "X1234567L")),
        ("Steuer-ID 86095742719 liegt vor", "de", ("DE_TAX_ID", "86095742719")),
        ("Konto 1234567, BLZ 37040044 bei der Commerzbank", "de", ("BANK_ACCOUNT", "1234567")),
        (f"マイナンバーは{MY_NUMBER}です", "ja", ("JP_MY_NUMBER", MY_NUMBER)),
        (
            f"個人番号 {MY_NUMBER[:4]}-{MY_NUMBER[4:8]}-{MY_NUMBER[8:]} を確認",
            "ja",
            ("JP_MY_NUMBER", f"{MY_NUMBER[:4]}-{MY_NUMBER[4:8]}-{MY_NUMBER[8:]}"),
        ),
    ],  # fmt: skip
)
def test_the_number_is_what_its_word_says(text_analyzer, text: str, lang: str | None, expected) -> None:  # type: ignore[no-untyped-def]
    assert expected in found(text_analyzer, text, lang), found(text_analyzer, text, lang)


@pytest.mark.parametrize(
    ("text", "lang", "absent"),
    [
        ("Booked 1 250 000 shares, call me", "en", "PHONE_NUMBER"),
        ("Settlement 04.11.2026, call the desk", "en", "PHONE_NUMBER"),
        ("Order number 4471902 filled, call me", "en", "PHONE_NUMBER"),
        ("Please reset the hotel booking 1-789-373-0739x915", "en", "PHONE_NUMBER"),  # "tel" is no prefix of "hotel"
        ("Since 046 454 286 went through, all good", "en", "CA_SIN"),  # "sin" is not "since"
        ("NHS 943 476 5918 is a typo", "en", "UK_NHS"),  # wrong check digit
        ("Reference 943 476 5919 for the trade", "en", "UK_NHS"),  # right check digit, no NHS word
        (f"マイナンバーは{MY_NUMBER_BAD}です", "ja", "JP_MY_NUMBER"),
        (f"注文番号{MY_NUMBER}を確認", "ja", "JP_MY_NUMBER"),
    ],
)
def test_no_finding_without_its_word_or_check_digit(text_analyzer, text: str, lang: str, absent: str) -> None:  # type: ignore[no-untyped-def]
    assert absent not in {t for t, _ in found(text_analyzer, text, lang)}, found(text_analyzer, text, lang)


def test_the_ip_address_is_not_cut_into_a_phone(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    text = "portable pro 2747232259, IP fixe 211.84.172.4 à réserver, rappelle-moi"
    assert ("IP_ADDRESS", "211.84.172.4") in found(text_analyzer, text, "fr")
    assert ("PHONE_NUMBER", "211.84.172") not in found(text_analyzer, text, "fr")


@pytest.mark.parametrize(
    ("part", "word", "glued", "match"),
    [
        ("kontonummer", "konto", False, True),
        ("recall", "call", False, False),
        ("tel.", "tel", False, True),
        ("hotel", "tel", False, False),
        ("since", "sin", False, False),
        ("ibande89370400440532013000", "iban", True, True),
        ("ip10.0.0.1", "ip", True, True),
        ("ip10.0.0.1", "ip", False, False),
    ],
)
def test_context_words_open_a_word(part: str, word: str, glued: bool, match: bool) -> None:
    assert starts_word(part, word, glued=glued) is match


def test_my_number_check_digit_of_the_published_example() -> None:
    assert jp_my_number_is_valid("123456789018") and not jp_my_number_is_valid("123456789017")
    assert jp_my_number_is_valid("1234 5678 9018") and not jp_my_number_is_valid("12345678901")
