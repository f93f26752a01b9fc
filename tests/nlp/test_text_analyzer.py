"""PII and entities on the real spaCy pipelines and Presidio: types and spans, per language."""

from __future__ import annotations

import logging

import pytest

from commsrisk.nlp.checksums import cn_resident_id_is_valid
from tests.utils.pii import cn_resident_id, iban, luhn_card

CN_ID = cn_resident_id()
CN_ID_BAD = CN_ID[:-1] + ("0" if CN_ID[-1] != "0" else "1")
DE_IBAN = iban("DE", "370400440532013000")
FR_IBAN = iban("FR", "20041010050500013M02606")
ES_IBAN = iban("ES", "21000418450200051332")
GB_IBAN = iban("GB", "NWBK60161331926819")
CARD = luhn_card()


def found(analysis, text: str) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(p.entity_type, text[p.start : p.end]) for p in analysis.pii}


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (f"客户身份证号{CN_ID}，请核对", "zh", {("CN_RESIDENT_ID", CN_ID)}),
        ("手机13812345678，有事联系", "zh", {("PHONE_NUMBER", "13812345678")}),
        ("邮箱是wang.xm@example.com请回复", "zh", {("EMAIL_ADDRESS", "wang.xm@example.com")}),
        ("座机010-62345678找李经理", "zh", {("PHONE_NUMBER", "010-62345678")}),
        (
            f"Wire to IBAN {GB_IBAN}, SWIFT NWBKGB2L, card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}",
            "en",
            {
                ("IBAN_CODE", GB_IBAN),
                ("SWIFT_BIC", "NWBKGB2L"),
                ("CREDIT_CARD", f"{CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}"),
            },
        ),
        (
            f"Bitte überweise auf {DE_IBAN}, Rückfragen unter 030 12345678",
            "de",
            {("IBAN_CODE", DE_IBAN), ("PHONE_NUMBER", "030 12345678")},
        ),
        (
            f"Virement sur le compte {FR_IBAN}, appelle-moi au 06 12 34 56 78",
            "fr",
            {("IBAN_CODE", FR_IBAN), ("PHONE_NUMBER", "06 12 34 56 78")},
        ),
        (
            f"Transfiere a {ES_IBAN} y llámame al 612 345 678",
            "es",
            {("IBAN_CODE", ES_IBAN), ("PHONE_NUMBER", "612 345 678")},
        ),
        (
            f"振込先は{DE_IBAN}です。電話番号090-1234-5678までご連絡ください",
            "ja",
            {("IBAN_CODE", DE_IBAN), ("PHONE_NUMBER", "090-1234-5678")},
        ),
        (
            "ISIN US0378331005 and CUSIP 037833100 for the Apple notes",
            "en",
            {("ISIN", "US0378331005"), ("CUSIP", "037833100")},
        ),
        ("服务器IP是192.168.10.23请加白名单", "zh", {("IP_ADDRESS", "192.168.10.23")}),
        (
            "VPN from 2001:0db8:85a3:0000:0000:8a2e:0370:7334 again",
            "en",
            {("IP_ADDRESS", "2001:0db8:85a3:0000:0000:8a2e:0370:7334")},
        ),  # fmt: skip
        ("My passport number is P48337887, expires 2030", "en", {("PASSPORT", "P48337887")}),
        ("护照号E12345678已提交", "zh", {("PASSPORT", "E12345678")}),
        ("Mi pasaporte: AAA123456, caduca en mayo", "es", {("PASSPORT", "AAA123456")}),
        ("Reisepass C01X00T47 liegt vor", "de", {("PASSPORT", "C01X00T47")}),
        ("numéro de passeport 12AB34567 pour le KYC", "fr", {("PASSPORT", "12AB34567")}),
        ("パスポート番号はTK1234567です", "ja", {("PASSPORT", "TK1234567")}),
        (
            "客户护照号码E12345678，IBAN" + DE_IBAN + "，服务器IP10.20.30.40",
            "zh",
            {("PASSPORT", "E12345678"), ("IBAN_CODE", DE_IBAN), ("IP_ADDRESS", "10.20.30.40")},
        ),
        ("Mi pasaporte nº 612345678, por si acaso", "es", {("PASSPORT", "612345678")}),
        ("Salary to sort code 20-00-00 account 55779911", "en", {("BANK_ACCOUNT", "20-00-00 account 55779911")}),
        # names and street addresses in every language, written here (not from Faker's lists)
        (
            "Send the pack to 221 Baker Street, London NW1 6XE for Sarah Connolly.",
            "en",
            {("LOCATION", "221 Baker Street, London NW1 6XE"), ("PERSON", "Sarah Connolly")},
        ),
        (
            "Hallo Jonas, Frau Ingrid Baumgartner wohnt jetzt in der Lindenstraße 14, 60325 Frankfurt.",
            "de",
            {("PERSON", "Ingrid Baumgartner"), ("LOCATION", "Lindenstraße 14, 60325 Frankfurt")},
        ),
        (
            "La clienta Lucía Fernández vive en Calle de Alcalá 42, Madrid.",
            "es",
            {("PERSON", "Lucía Fernández"), ("LOCATION", "Calle de Alcalá 42")},
        ),
        (
            "Merci de contacter Camille Dubois, 12 rue de la Paix, 75002 Paris.",
            "fr",
            {("PERSON", "Camille Dubois"), ("LOCATION", "12 rue de la Paix, 75002 Paris")},
        ),
        (
            "客户张伟的新地址是上海市浦东新区世纪大道100号请更新",
            "zh",
            {("PERSON", "张伟"), ("LOCATION", "上海市浦东新区世纪大道100号")},
        ),
        (
            "山田太郎様の住所は東京都千代田区丸の内1丁目9番2号です",
            "ja",
            {("PERSON", "山田太郎"), ("LOCATION", "東京都千代田区丸の内1丁目9番2号")},
        ),
    ],  # fmt: skip
)
def test_pii_types_and_spans(text_analyzer, text: str, lang: str, expected: set[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
    analysis = text_analyzer.analyze(text, lang)
    assert expected <= found(analysis, text), found(analysis, text)


@pytest.mark.parametrize(
    ("text", "lang", "absent"),
    [
        (f"身份证号{CN_ID_BAD}", "zh", "CN_RESIDENT_ID"),
        ("IBAN DE89370400440532013001 looks off", "en", "IBAN_CODE"),
        ("Order 4532015112830367 filled", "en", "CREDIT_CARD"),
        ("Please STANDARD the RUNBOOKS", "en", "SWIFT_BIC"),
        ("Ticket 20231234 closed", "en", "BANK_ACCOUNT"),
        ("deployed version v1.2.3.4 to prod", "en", "IP_ADDRESS"),
        ("spread 10.25.300.1 is no address", "en", "IP_ADDRESS"),
        ("Order 232860129 filled at 101.5", "en", "PASSPORT"),
        ("委托编号E12345678已成交", "zh", "PASSPORT"),
        ("Raised ticket CHG0031255 on v2.7.0, 250k left", "en", "PERSON"),
        ("Veuillez trouver ci-joint le rapport de lundi. Rappel : réunion à 10h", "fr", "PERSON"),
        ("Nota: el pago de Iberdrola sale el lunes. Ticket abierto en Sistemas", "es", "PERSON"),
        ("Kontoinhaber und Saldo bitte im Auftrag prüfen, Verwendungszweck fehlt", "de", "PERSON"),
        ("谢谢，银行卡已激活，白名单也加好了", "zh", "PERSON"),
        ("Valeur 4412 et 75 000 EUR le 30/11, réf. 2024-1187", "fr", "PHONE_NUMBER"),
        ("Value date 20261104, booked to account ref 20261105", "en", "BANK_ACCOUNT"),
        ("DAX bei 19.000 Punkten, 250 Stück SAP zu 182,40", "de", "LOCATION"),
        ("Buy 500 Apple shares at 182.5, 20 Tesla calls for the Park desk", "en", "LOCATION"),
    ],
)
def test_rows_that_must_not_match(text_analyzer, text: str, lang: str, absent: str) -> None:  # type: ignore[no-untyped-def]
    assert absent not in {p.entity_type for p in text_analyzer.analyze(text, lang).pii}


def test_bad_check_digit_fixture_really_is_bad() -> None:
    assert cn_resident_id_is_valid(CN_ID) and not cn_resident_id_is_valid(CN_ID_BAD)


def test_no_weak_finding_or_entity_overlaps_an_identifier(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    text = f"John Smith's card {CARD} and IBAN {GB_IBAN}, email john.smith@harbourbank.com, 12 March 2025"
    analysis = text_analyzer.analyze(text, "en")
    strong = [(p.start, p.end) for p in analysis.pii if p.entity_type in {"CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS"}]
    assert len(strong) == 3
    for item in [*analysis.pii, *analysis.entities]:
        label = getattr(item, "entity_type", getattr(item, "label", ""))
        if label in {"CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS"}:
            continue
        assert all(item.end <= s or item.start >= e for s, e in strong), (label, text[item.start : item.end])


def test_entities_and_pii_come_from_one_parse_per_message(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "John Smith from Goldman Sachs will call you about the London deal",
        "请把客户名单发给王经理",
        "Llámame mañana",
        "明日電話します",
    ] * 5
    before = text_analyzer.parse_count
    results = text_analyzer.analyze_batch(texts, [None] * len(texts))
    assert [r.language for r in results[:4]] == ["en", "zh", "es", "ja"]
    assert text_analyzer.parse_count - before == len(texts)
    assert {"PERSON", "ORG", "GPE"} & {e.label for e in results[0].entities}


@pytest.mark.parametrize(
    ("text", "language", "languages"),
    [
        ("Let's take this to the other app", "en", ("en",)),
        ("请把重复的记录删除一下", "zh", ("zh",)),
        ("Mejor hablamos por mi WhatsApp personal, esta línea está grabada", "es", ("es",)),
        ("Bitte lösch den Chat danach, Compliance muss nichts wissen", "de", ("de",)),
        ("On en parle plutôt sur Signal, pas sur la ligne enregistrée", "fr", ("fr",)),
        ("この件はLINEで話しましょう", "ja", ("ja",)),
        ("这个deal下周announce，先别跟client讲", "zh", ("zh", "en")),
        ("邮箱是wang.xm@example.com请回复", "zh", ("zh",)),
    ],
)
def test_language_detection(text_analyzer, text: str, language: str, languages: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    analysis = text_analyzer.analyze(text)
    assert (analysis.language, analysis.languages) == (language, languages)


def test_batch_equals_one_by_one(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    texts = [f"身份证{CN_ID}", f"IBAN {DE_IBAN} bitte", "hello there", "電話番号090-1234-5678", "Bonjour, appelle-moi"]
    batch = text_analyzer.analyze_batch(texts, [None] * len(texts))
    assert batch == [text_analyzer.analyze(t) for t in texts]


def test_no_text_or_pii_value_in_logs(text_analyzer, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    secret = f"my card {CARD} and id {CN_ID}, mail secret.person@example.com"
    with caplog.at_level(logging.DEBUG):
        text_analyzer.analyze_batch([secret], [None])
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in (CARD, CN_ID, "secret.person@example.com", "my card"):
        assert value not in logged


def test_our_recognizers_do_not_shadow_presidios_own(text_analyzer) -> None:  # type: ignore[no-untyped-def]
    """Presidio finds predefined recognizers by class name among all subclasses: ours must not collide."""
    from presidio_analyzer import AnalyzerEngine

    from commsrisk.nlp.recognizers.registry import build_recognizers, load_recognizers_config

    presidio = AnalyzerEngine(nlp_engine=text_analyzer.engine, supported_languages=["en"])
    names = {type(r).__name__ for r in presidio.registry.recognizers}
    assert {"EmailRecognizer", "CreditCardRecognizer", "IbanRecognizer", "PhoneRecognizer"} <= names
    ours = {type(r).__name__ for r in build_recognizers(load_recognizers_config(), ["en", "es", "de", "ja"])}
    assert "ContextGatedNhsRecognizer" in ours  # Presidio's country recognizers run as gated subclasses
    assert not names & (ours - {"UsSsnRecognizer"})


def test_a_language_loads_with_its_first_text_and_a_missing_package_fails_at_start(settings) -> None:  # type: ignore[no-untyped-def]
    """A one-language job loads one pipeline, and finds what an analyzer loaded up front finds."""
    from commsrisk.errors import ModelNotAvailableError
    from commsrisk.nlp.text_analyzer import build_text_analyzer

    text = "call me on 07700 900123 tonight"  # "call": a spaCy stop word, and a context word of ours
    lazy, eager = build_text_analyzer(settings.nlp), build_text_analyzer(settings.nlp)
    eager.load_all()
    assert lazy.pipelines.loaded == () and set(eager.pipelines.loaded) == set(settings.nlp.languages)
    analysis = lazy.analyze(text, "en")
    assert lazy.pipelines.loaded == ("en",) and not lazy.pipelines["en"].vocab["call"].is_stop
    assert {p.entity_type for p in analysis.pii} == {"PHONE_NUMBER"} and analysis == eager.analyze(text, "en")

    missing = settings.nlp.model_copy(update={"spacy_models": {**settings.nlp.spacy_models, "fr": "no_such_pkg"}})
    with pytest.raises(ModelNotAvailableError, match="'no_such_pkg' for 'fr' is not installed"):
        build_text_analyzer(missing)
