"""Every labeled message in data/ follows the label schema of ../shared/LABELS.md as the code states it."""

from __future__ import annotations

from pathlib import Path

import pytest

from commsrisk.schema import CHANNELS, LANGUAGES, RISKS
from commsrisk.training.corpus import HARD_CASES, REGISTERS, label_problems, read_written, written_files

REPO = Path(__file__).resolve().parents[2]
WRITTEN = [REPO / "data/raw/written", REPO / "data/raw/written_v2"]
DEV = [REPO / "data/eval/ood_dev/raw"]
BUSINESS_UNITS = {
    "equities-trading",
    "fixed-income",
    "investment-banking",
    "wealth-management",
    "retail-banking",
    "insurance",
    "operations",
}


@pytest.fixture(scope="module", params=["training", "dev"])
def rows(request: pytest.FixtureRequest) -> list[dict]:  # type: ignore[type-arg]
    return read_written(written_files(WRITTEN if request.param == "training" else DEV))


def test_every_row_follows_the_schema(rows: list[dict]) -> None:  # type: ignore[type-arg]
    problems = {}
    for row in rows:
        found = label_problems(row)
        if row["lang"] not in LANGUAGES:
            found.append(f"lang {row['lang']!r}")
        if row.get("channel") not in CHANNELS:
            found.append(f"channel {row.get('channel')!r}")
        if row.get("business_unit") not in BUSINESS_UNITS:
            found.append(f"business_unit {row.get('business_unit')!r}")
        if not isinstance(row.get("external"), bool):
            found.append("external is not true/false")
        if row.get("register") not in ("", *REGISTERS):
            found.append(f"register {row.get('register')!r}")
        if not str(row.get("text", "")).strip():
            found.append("empty text")
        if found:
            problems[row["message_id"]] = found
    assert not problems, f"{len(problems)} rows break the schema, e.g. {list(problems.items())[:5]}"


def test_ids_are_unique(rows: list[dict]) -> None:  # type: ignore[type-arg]
    ids = [row["message_id"] for row in rows]
    assert len(ids) == len(set(ids))


def test_schema_check_catches_bad_rows() -> None:
    good = {"leakage": 1, "misconduct": 0, "off_channel": 0, "hard_case": "covert_risk", "typology": ["leak.wrapper"]}
    assert label_problems(good) == []
    assert label_problems({**good, "leakage": 2})
    assert label_problems({**good, "hard_case": "tricky"})
    assert label_problems({**good, "leakage": 0})  # covert risk without a risk, and leak.* without leakage
    assert label_problems({**good, "typology": ["not_leak.public_news"]})
    assert set(HARD_CASES) >= {"", "benign_alarming", "covert_risk"} and len(RISKS) == 3
