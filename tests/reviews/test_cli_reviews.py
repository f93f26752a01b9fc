"""`commsrisk reviews import` and `list` on real files and a real SQLite store (in-process CLI runs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commsrisk.cli.app import app
from commsrisk.reviews.store import ReviewStore
from commsrisk.settings import ReviewSettings

EXPORT = [
    [
        "Msg ID",
        "Message Text",
        "Leakage Flag",
        "misconduct",
        "off_channel",
        "reviewer",
        "reviewed_at",
        "model_version",
        "leakage_score",
    ],  # fmt: skip
    ["m-1", "send me the client's stop levels", "Escalated", "cleared", "", "ann", "2026-05-04 09:00:00", "7", "0.81"],
    ["m-2", "lunch at noon?", "no", "no", "not reviewed", "bob", "2026-05-04 09:01:00", "", ""],
    ["m-3", "wipe this thread after reading", "0", "0", "maybe", "bob", "2026-05-04 09:02:00", "", ""],
    ["m 4", "the id has a space", "0", "0", "0", "bob", "2026-05-04 09:03:00", "", ""],
    ["m-5", "ring me on my own mobile", "", "", "1", "", "2026-05-04 09:04:00", "", ""],
    ["m-1", "send me the client's stop levels", "0", "", "", "carl", "2026-05-04 10:00:00", "", ""],
]
MAPPING = ["--map", "message_id=Msg ID", "--map", 'text="Message Text"', "--map", "leakage=Leakage Flag"]


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {"COMMSRISK_REVIEWS__URL": f"sqlite:///{tmp_path / 'reviews.sqlite'}"}


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_an_export_with_a_mapping_is_stored_and_each_bad_row_reported(tmp_path: Path, env: dict[str, str]) -> None:
    export = write_csv(tmp_path / "review_tool.csv", EXPORT)
    runner = CliRunner()
    result = runner.invoke(app, ["reviews", "import", str(export), *MAPPING, "--reviewer", "desk-lead"], env=env)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout) == {
        "file": str(export), "rows": 6, "accepted": 4, "duplicates": 0, "rejected": 2
    }  # fmt: skip
    report = " ".join(result.stderr.translate(str.maketrans("", "", "│┃")).split())  # the table's cells in a row
    assert "2 rejected rows" in report
    assert "4 m-3 label 'off_channel' is 'maybe'" in report  # line 4 of the file: the header is line 1
    assert "5 m 4 field 'message_id': String should match pattern" in report
    for text in ("stop levels", "wipe this thread", "own mobile"):
        assert text not in result.output  # never the message text

    with ReviewStore.open(ReviewSettings(url=env["COMMSRISK_REVIEWS__URL"])) as store:
        first, second = store.history("m-1")
        assert first.labels == {"leakage": 1, "misconduct": 0, "off_channel": None}
        assert first.seen_model_version == "7" and first.seen_scores == {"leakage": 0.81}
        assert second.reviewer == "carl" and second.labels["leakage"] == 0
        assert store.history("m-2")[0].labels["off_channel"] is None  # "not reviewed"
        (filled,) = store.history("m-5")
        assert filled.reviewer == "desk-lead" and filled.source == "import:review_tool.csv"
        snapshot = store.snapshot()
        assert [(c.message_id, c.risk, c.votes) for c in snapshot.conflicts] == [
            ("m-1", "leakage", {"ann": 1, "carl": 0})
        ]

    again = runner.invoke(app, ["reviews", "import", str(export), *MAPPING, "--reviewer", "desk-lead"], env=env)
    assert again.exit_code == 1 and json.loads(again.stdout)["accepted"] == 0
    assert json.loads(again.stdout)["duplicates"] == 4

    listed = runner.invoke(app, ["reviews", "list", "--limit", "2", "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["message_id"] for r in records] == ["m-1", "m-5"] and records[0]["reviewer"] == "carl"
    assert "stop levels" not in listed.output and all("text" not in r for r in records)
    table = runner.invoke(app, ["reviews", "list", "--format", "table"], env=env)
    assert table.exit_code == 0 and "4 of 4 decisions" in " ".join(table.stdout.split())


def test_a_clean_labeled_file_imports_with_exit_0(tmp_path: Path, env: dict[str, str]) -> None:
    rows = [
        {"message_id": f"j-{i}", "text": f"message {i}", "leakage": i % 2, "misconduct": 0, "off_channel": False,
         "reviewer": "ann", "decided_at": f"2026-05-04T09:0{i}:00Z", "business_unit": "wealth", "lang": "en"}
        for i in range(3)
    ]  # fmt: skip
    path = tmp_path / "labeled.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["reviews", "import", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accepted"] == 3


@pytest.mark.parametrize(
    ("rows", "args", "needle"),
    [
        (EXPORT, ["--map", "text=Body"], "no column 'Body' (mapped to 'text')"),
        ([[c for i, c in enumerate(row) if i != 5] for row in EXPORT], MAPPING, "reviewer (or give --reviewer)"),
        ([["message_id", "text", "reviewer"], ["m-1", "hi", "ann"]], [], "leakage or misconduct or off_channel"),
    ],
)
def test_a_file_that_cannot_be_read_stores_nothing_and_exits_2(
    tmp_path: Path, env: dict[str, str], rows: list[list[str]], args: list[str], needle: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", rows)
    result = CliRunner().invoke(app, ["reviews", "import", str(path), *args], env=env)
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.stderr.split())
    assert not (Path(env["COMMSRISK_REVIEWS__URL"].removeprefix("sqlite:///"))).exists()  # never opened
