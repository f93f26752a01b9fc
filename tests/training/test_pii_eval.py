"""The multilingual PII evaluation set: rebuilt from its templates exactly, every span true to its value."""

from __future__ import annotations

import json
from pathlib import Path

from commsrisk.nlp.checksums import cn_resident_id_is_valid, iban_is_valid, luhn_is_valid
from commsrisk.training.pii_eval import LANGUAGES, PII_TYPES, build_pii_eval, read_templates, span_counts

REPO = Path(__file__).resolve().parents[2]
PII_DIR = REPO / "data" / "eval" / "pii"
CORE_TYPES = ("PERSON", "LOCATION", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS", "PASSPORT",
              "BANK_ACCOUNT")  # fmt: skip


def test_the_committed_set_is_its_templates_filled_and_covers_every_language() -> None:
    committed = [json.loads(line) for line in (PII_DIR / "pii_eval.jsonl").read_text(encoding="utf-8").splitlines()]
    # Faker's dates move with the calendar, so a rebuild differs in values: put the placeholders back instead.
    templates = {
        t["id"]: t["template"] for lang in LANGUAGES for t in read_templates(PII_DIR / "templates" / f"{lang}.jsonl")
    }
    kind = {pii_type: placeholder for placeholder, pii_type in PII_TYPES.items()}
    for row in committed:
        text, cursor, parts = row["text"], 0, []
        for span in row["spans"]:
            parts += [text[cursor : span["start"]], "{{" + kind[span["type"]] + "}}"]
            cursor = span["end"]
        assert "".join([*parts, text[cursor:]]) == templates[row["id"].rsplit("-", 1)[0]], row["id"]
    assert len(committed) == 3 * len(templates)
    counts = span_counts(committed)
    for lang in LANGUAGES:
        assert sum(1 for r in committed if r["lang"] == lang) >= 300, lang
        for pii_type in CORE_TYPES:
            assert counts[lang].get(pii_type, 0) >= 30, (lang, pii_type, counts[lang])
    assert counts["zh"]["CN_RESIDENT_ID"] >= 30 and counts["en"]["US_SSN"] >= 20


def test_every_span_is_the_value_put_there_and_ids_carry_valid_check_digits() -> None:
    rows = build_pii_eval(PII_DIR / "templates", fills=1, seed=5)
    checks = {
        "IBAN_CODE": lambda v: iban_is_valid(v.replace(" ", "")),
        "CREDIT_CARD": lambda v: luhn_is_valid(v.replace(" ", "")),
        "CN_RESIDENT_ID": cn_resident_id_is_valid,
    }
    for row in rows:
        ends = 0
        for span in sorted(row["spans"], key=lambda s: s["start"]):
            value = row["text"][span["start"] : span["end"]]
            assert value.strip() and span["start"] >= ends, row["id"]
            ends = span["end"]
            if span["type"] in checks:
                assert checks[span["type"]](value), (row["id"], span["type"])
        assert "{{" not in row["text"], row["id"]
