"""Style alone must not predict the labels: the writers' habits are not a shortcut to the risk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from commsrisk.training.style_leak import style_leak, written_only

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "data/seed/commsrisk_seed.jsonl"
MAX_ACCURACY_GAIN = 0.02
"""How far above the base rate a style-only classifier may get (cross-validated accuracy)."""


def test_style_does_not_beat_the_base_rate() -> None:
    written = written_only(pd.read_json(CORPUS, lines=True))
    for result in style_leak(written):
        assert result.accuracy_gain <= MAX_ACCURACY_GAIN, result


def test_style_leak_is_detected_when_present() -> None:
    rows = []
    for i in range(400):
        risky = i % 3 == 0
        text = ("URGENT!!! " * 8 + f"note {i}") if risky else f"ok thanks {i}"
        rows.append(
            {"text": text, "writer": "a", "leakage": int(risky), "misconduct": int(risky), "off_channel": i % 2}
        )
    results = {r.risk: r for r in style_leak(pd.DataFrame(rows))}
    assert results["leakage"].accuracy_gain > 0.2 and results["leakage"].style_roc_auc > 0.95
