"""The rules that keep weak PII findings from flooding reviewers, one by one."""

from __future__ import annotations

import pytest

from commsrisk.nlp.recognizers.country_specific.china.cn_person_recognizer import starts_with_surname
from commsrisk.nlp.recognizers.finance.bank_account_recognizer import is_calendar_date
from commsrisk.nlp.recognizers.generic.ner_recognizer import (
    follows_address_form,
    is_bare_capital,
    is_plausible_name,
    name_start,
)
from commsrisk.nlp.recognizers.generic.phone_recognizer import is_phone_shaped


@pytest.mark.parametrize(
    ("span", "plausible"),
    [("Sarah Connolly", True), ("Dr. Jürgen Weiß", True), ("CHG0031255", False), ("250k", False),
     ("pls chase", False), ("Monsieur", False), ("Bonjour Maître", False), ("山田太郎", True), ("Lundi", False)],
)  # fmt: skip
def test_plausible_names(span: str, plausible: bool) -> None:
    assert is_plausible_name(span) is plausible


def test_a_lone_capital_opening_a_sentence_is_no_name() -> None:
    text = "Nota: revisar. Ticket abierto\nPago ok, Hola Pedro"
    assert is_bare_capital(text, 0, 4)
    assert is_bare_capital(text, text.index("Ticket"), text.index("Ticket") + 6)
    assert is_bare_capital(text, text.index("Pago"), text.index("Pago") + 4)
    assert not is_bare_capital(text, text.index("Pedro"), text.index("Pedro") + 5)


def test_titles_and_greetings_are_trimmed_off_a_name() -> None:
    text = "Hallo Frau Dr. Ingrid Keller"
    assert text[name_start(text, 0, len(text)) :] == "Ingrid Keller"
    assert name_start("Monsieur", 0, 8) == 0  # nothing left: the span stays, and is dropped as no name


def test_german_single_names_need_a_greeting_or_title() -> None:
    text = "Hallo Jonas, Frau Keller und @Mia, der Kontoinhaber"
    assert follows_address_form(text, text.index("Jonas"))
    assert follows_address_form(text, text.index("Keller"))
    assert follows_address_form(text, text.index("Mia"))
    assert not follows_address_form(text, text.index("Kontoinhaber"))


@pytest.mark.parametrize(
    ("digits", "is_date"), [("20261104", True), ("19991231", True), ("20261341", False), ("55779911", False)]
)
def test_eight_digit_dates(digits: str, is_date: bool) -> None:
    assert is_calendar_date(digits) is is_date


@pytest.mark.parametrize(
    ("value", "phone"),
    [("06 12 34 56 78", True), ("4412", False), ("75 000", False), ("2024-1187", False), ("99.239.174.89", False),
     ("+44 20 7946 0958", True)],
)  # fmt: skip
def test_phone_shape(value: str, phone: bool) -> None:
    assert is_phone_shaped(value) is phone


@pytest.mark.parametrize(("word", "name"), [("王琳", True), ("欧阳娜娜", True), ("操作", False), ("刚刚", False)])
def test_chinese_surnames(word: str, name: bool) -> None:
    assert starts_with_surname(word) is name


def test_names_after_cues_unless_the_ner_saw_an_organisation(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.nlp.recognizers.generic.person_cue_recognizer import PersonCueRecognizer

    recognizer = PersonCueRecognizer("en")

    def names(text: str) -> list[str]:
        arts = text_analyzer.engine.process_text(text, "en")
        return [text[r.start : r.end] for r in recognizer.analyze(text, ["PERSON"], arts)]

    assert names("Expense claim disputed by Harriet Oakley, please check") == ["Harriet Oakley"]
    assert names("Dear Tomasz Wojcik-Lane: your visa letter is attached") == ["Tomasz Wojcik-Lane"]
    assert names("Allocation for Goldman Sachs done, Dear Sir") == []
    assert names("sent to the desk for review") == []
