"""The out-of-distribution dev set never leaks into training data, exactly or nearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commsrisk.errors import DataValidationError
from commsrisk.training.overlap import find_overlaps, normalise_text, require_dev_isolation

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "data/seed/commsrisk_seed.jsonl"
DEV = REPO / "data/eval/ood_dev/dev.jsonl"


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_no_dev_text_appears_in_training_data() -> None:
    train, dev = _texts(CORPUS), _texts(DEV)
    assert len(dev) >= 800 and len(train) >= 6000
    overlaps = find_overlaps(train, dev)
    assert not overlaps, f"{len(overlaps)} dev messages are in training, e.g. {overlaps[:3]}"


def test_overlap_check_finds_copies_and_light_edits() -> None:
    train = ["Please wipe this thread after reading, we'll talk on Signal tonight.", "settlement for 4 Dec is fine"]
    dev = [
        "PLEASE wipe this thread after reading!! we'll talk on signal tonight",  # case and punctuation
        "please wipe this thread after reading, we will talk on Signal tonight.",  # two words changed
        "the board meets on Thursday about the results",
    ]
    found = {o.dev_index for o in find_overlaps(train, dev)}
    assert found == {0, 1}
    assert normalise_text("Ｔｅｓｔ 123, OK!") == normalise_text("test ok")


def test_training_refuses_data_that_holds_dev_messages() -> None:
    dev = _texts(DEV)[:50]
    train = [*_texts(CORPUS)[:500], dev[7].upper()]
    with pytest.raises(DataValidationError, match=r"1 dev-set messages appear in the training data"):
        require_dev_isolation(train, dev, [f"dev-{i}" for i in range(len(dev))])
    require_dev_isolation(_texts(CORPUS)[:500], dev, [f"dev-{i}" for i in range(len(dev))])
