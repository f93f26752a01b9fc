"""The multilingual PII evaluation set: templates written per language, filled with Faker values.

Each language's templates were written natively by its own writer (`data/eval/pii/templates/`);
this module fills every placeholder with a fresh fake value of that language's Faker locales
(valid check digits for cards, IBANs and resident ids) and records the span and type of each,
so detection can be scored per type and per language. Nothing here is trained on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from commsrisk.errors import InvalidInputError
from commsrisk.training.corpus import LOCALES, PLACEHOLDER, PiiFaker

PII_TYPES: dict[str, str] = {
    "PERSON": "PERSON",
    "ADDRESS": "LOCATION",
    "PHONE": "PHONE_NUMBER",
    "EMAIL": "EMAIL_ADDRESS",
    "CARD": "CREDIT_CARD",
    "IBAN": "IBAN_CODE",
    "IP": "IP_ADDRESS",
    "PASSPORT": "PASSPORT",
    "ACCOUNT": "BANK_ACCOUNT",
    "US_SSN": "US_SSN",
    "CN_RESIDENT_ID": "CN_RESIDENT_ID",
}
"""Template placeholder -> the PII type it is labeled as (LABELS.md's names)."""
VALIDATED_TYPES = frozenset({"CREDIT_CARD", "IBAN_CODE", "CN_RESIDENT_ID", "US_SSN"})
"""Types with a checksum or a fixed structure: the issue's 'validated ids'."""
LANGUAGES: tuple[str, ...] = ("en", "zh", "es", "de", "fr", "ja", "mixed")


class PiiValueMaker:
    """Fake values per placeholder kind, in the locale of the template's language."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pii = PiiFaker(seed)

    def value(self, kind: str, lang: str) -> str:
        """One value for a kind (unknown kinds are an error)."""
        faker = self.pii.fakers[self.rng.choice(LOCALES.get(lang, ("en_US",)))]
        if kind == "PERSON":
            name = faker.name()
            return name.replace(" ", "") if lang in ("zh", "ja") and self.rng.random() < 0.5 else name
        if kind == "ADDRESS":
            if lang in ("zh", "ja") or self.rng.random() < 0.4:
                return faker.address().replace("\n", ", ")
            return faker.street_address()
        if kind == "IP":
            return faker.ipv4_public()
        if kind == "PHONE" and lang == "zh" and self.rng.random() < 0.5:
            return self.pii.value("CN_MOBILE", lang)
        if kind == "EMAIL":
            return self.pii.value(self.rng.choice(("EMAIL", "PERSONAL_EMAIL")), lang)
        if kind in ("CARD", "IBAN", "PASSPORT", "ACCOUNT", "US_SSN", "CN_RESIDENT_ID", "PHONE"):
            return self.pii.value(kind, lang)
        raise InvalidInputError(f"unknown placeholder {{{{{kind}}}}}; known: {sorted(PII_TYPES)}")


def read_templates(path: Path, known: Collection[str] = tuple(PII_TYPES)) -> list[dict[str, Any]]:
    """One writer's templates; a line that is no template or has a placeholder not in `known` is an error."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("template"), str) or not row.get("id"):
            raise InvalidInputError(f"{path.name} line {number}: a template needs 'id' and 'template'")
        unknown = sorted(set(PLACEHOLDER.findall(row["template"])) - set(known))
        if unknown:
            raise InvalidInputError(f"{path.name} line {number}: unknown placeholders {unknown}")
        rows.append(row)
    return rows


class ValueMaker(Protocol):
    """Anything that makes a value for a placeholder kind in a language."""

    def value(self, kind: str, lang: str) -> str:
        """A value for `kind` in the locales of `lang`."""
        ...


def fill_template(
    template: str, lang: str, maker: ValueMaker, labels: Mapping[str, str] = PII_TYPES, *, strip: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The filled text and a span (start, end, type) for every placeholder, typed by `labels`.

    `strip` trims each value's surrounding spaces first (a training span must not end in a space).
    """
    parts: list[str] = []
    spans: list[dict[str, Any]] = []
    position = cursor = 0
    for match in PLACEHOLDER.finditer(template):
        literal = template[cursor : match.start()]
        parts.append(literal)
        position += len(literal)
        value = maker.value(match.group(1), lang)
        value = value.strip() if strip else value
        spans.append({"start": position, "end": position + len(value), "type": labels[match.group(1)]})
        parts.append(value)
        position += len(value)
        cursor = match.end()
    parts.append(template[cursor:])
    return "".join(parts), spans


def build_pii_eval(templates_dir: Path, *, fills: int = 3, seed: int = 17) -> list[dict[str, Any]]:
    """Every template of every language filled `fills` times with different values."""
    maker = PiiValueMaker(seed)
    rows: list[dict[str, Any]] = []
    for lang in LANGUAGES:
        path = templates_dir / f"{lang}.jsonl"
        if not path.is_file():
            raise InvalidInputError(f"{path}: missing; the PII set needs templates for {list(LANGUAGES)}")
        for template in read_templates(path):
            values = str(template.get("values") or lang)
            for k in range(1, fills + 1):
                text, spans = fill_template(template["template"], values, maker)
                rows.append({"id": f"{template['id']}-{k}", "lang": lang, "text": text, "spans": spans})
    return rows


def span_counts(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Labeled spans per language and type (the set's coverage)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        for span in row["spans"]:
            by_type = counts.setdefault(row["lang"], {})
            by_type[span["type"]] = by_type.get(span["type"], 0) + 1
    return counts
