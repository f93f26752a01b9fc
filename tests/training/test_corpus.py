import json
import re
from pathlib import Path

import pytest

from commsrisk.errors import InvalidInputError
from commsrisk.nlp.checksums import cn_resident_id_is_valid, iban_is_valid, isin_check_digit, luhn_is_valid
from commsrisk.training.corpus import PiiFaker, build_corpus


@pytest.mark.parametrize(
    ("kind", "lang", "check"),
    [
        ("IBAN", "de", iban_is_valid),
        ("IBAN", "zh", iban_is_valid),
        ("CARD", "en", luhn_is_valid),
        ("CN_RESIDENT_ID", "zh", cn_resident_id_is_valid),
        ("ISIN", "en", lambda v: isin_check_digit(v[:11]) == v[11]),
        ("CN_MOBILE", "zh", lambda v: re.fullmatch(r"1[3-9]\d{9}", v) is not None),
        ("SWIFT", "fr", lambda v: re.fullmatch(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", v) is not None),
    ],
)
def test_fake_identifiers_have_valid_check_digits(kind: str, lang: str, check) -> None:  # type: ignore[no-untyped-def]
    faker = PiiFaker(seed=11)
    values = [faker.value(kind, lang) for _ in range(50)]
    assert all(check(v) for v in values), [v for v in values if not check(v)]
    assert len(set(values)) > 40  # varied, not one value


def test_validators_reject_broken_numbers() -> None:
    assert iban_is_valid("DE89370400440532013000")
    assert not iban_is_valid("DE89370400440532013001")
    assert luhn_is_valid("4111 1111 1111 1111") and not luhn_is_valid("4111 1111 1111 1112")
    assert cn_resident_id_is_valid("11010519491231002X")
    assert not cn_resident_id_is_valid("110105194912310021")
    assert isin_check_digit("US037833100") == "5"  # Apple's ISIN US0378331005


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown placeholder \{\{NOPE\}\}"):
        PiiFaker(1).fill("send {{NOPE}}", "en")


def test_build_is_deterministic_and_variants_share_the_conversation(tmp_path: Path) -> None:
    rows = [
        {
            "message_id": f"t-{i}",
            "conversation_id": f"t-c{i // 2}",
            "text": f"wire to {{{{IBAN}}}} ref {i} please",
            "lang": "en",
            "mixed_with": "",
            "channel": "email",
            "business_unit": "operations",
            "external": False,
            "leakage": i % 2,
            "misconduct": 0,
            "off_channel": 0,
            "hard_case": "",
        }
        for i in range(40)
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    first = build_corpus([tmp_path], seed=5, augment_share=0.5, positive_augment_share=0.5)
    assert first == build_corpus([tmp_path], seed=5, augment_share=0.5, positive_augment_share=0.5)
    assert not any("{{" in row["text"] for row in first)
    originals = {row["message_id"]: row for row in first if row["origin"] == "written"}
    variants = [row for row in first if row["origin"].startswith("augmented:")]
    assert len(originals) == 40 and 10 <= len(variants) <= 30
    for variant in variants:
        source = originals[variant["source_id"]]
        assert variant["conversation_id"] == source["conversation_id"]
        assert variant["leakage"] == source["leakage"]
        assert variant["text"] != source["text"]
