import json
from pathlib import Path

import pandas as pd
import pytest

from commsrisk.errors import DataValidationError, InvalidInputError
from commsrisk.schema import RISKS
from commsrisk.training.data import read_labeled_file, split_labeled


def _write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


GOOD = {"text": "Please send the deck by Friday", "leakage": 0, "misconduct": 0, "off_channel": 0}


def test_bad_rows_are_reported_one_by_one_and_good_rows_kept(tmp_path: Path) -> None:
    rows = [dict(GOOD, text=f"ordinary message number {i}", message_id=f"m{i}") for i in range(20)]
    rows += [
        dict(GOOD, text="", message_id="empty"),
        dict(GOOD, text="label two", leakage=2, message_id="two"),
        dict(GOOD, text="missing label", misconduct="", message_id="nolabel"),
        dict(GOOD, text="dup id", message_id="m3"),
    ]
    data = read_labeled_file(_write_csv(tmp_path / "in.csv", rows), max_rejected_share=0.5)
    reasons = {r.message_id: r.reason for r in data.rejected}
    assert reasons == {
        "empty": "empty text",
        "two": "label 'leakage' is '2', not 0/1, true/false, yes/no or a review word",
        "nolabel": "missing label 'misconduct'",
        "m3": "duplicate message_id (first seen on line 5)",
    }
    assert [r.line for r in data.rejected] == [22, 23, 24, 25]  # header is line 1
    assert len(data.frame) == 20
    assert data.frame[list(RISKS)].isin([0, 1]).all().all()


def test_missing_column_is_a_clear_file_error(tmp_path: Path) -> None:
    rows = [{"text": "hello", "leakage": 0, "misconduct": 0}]
    with pytest.raises(InvalidInputError, match=r"missing required column\(s\) \['off_channel'\]"):
        read_labeled_file(_write_csv(tmp_path / "in.csv", rows))


def test_only_bad_rows_fails_and_names_the_reasons(tmp_path: Path) -> None:
    rows = [dict(GOOD, text=""), dict(GOOD, text="x", off_channel=7)]
    with pytest.raises(DataValidationError, match="none of the 2 rows is usable"):
        read_labeled_file(_write_csv(tmp_path / "in.csv", rows))


def test_too_many_rejected_rows_fails(tmp_path: Path) -> None:
    rows = [dict(GOOD, text=f"fine {i}") for i in range(3)] + [dict(GOOD, text="") for _ in range(3)]
    with pytest.raises(DataValidationError, match=r"3 of 6 rows rejected \(50%\)"):
        read_labeled_file(_write_csv(tmp_path / "in.csv", rows), max_rejected_share=0.2)


def test_jsonl_bad_lines_do_not_stop_the_read(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    good = [json.dumps(dict(GOOD, text=f"message {i}")).encode() for i in range(8)]
    path.write_bytes(b"\n".join([*good[:4], b"{not json", b'{"text": "caf\xe9", "leakage": 0}', b"[1, 2]", *good[4:]]))
    data = read_labeled_file(path, max_rejected_share=0.5)
    assert [(r.line, r.reason.split(" (")[0]) for r in data.rejected] == [
        (5, "invalid JSON"),
        (6, "invalid UTF-8 at byte 13"),
        (7, "line is not a JSON object"),
    ]
    assert len(data.frame) == 8


def test_parquet_and_booleans_are_accepted(tmp_path: Path) -> None:
    frame = pd.DataFrame([dict(GOOD, text=f"t{i}", leakage=bool(i % 2), external=True) for i in range(4)])
    frame.to_parquet(tmp_path / "in.parquet")
    data = read_labeled_file(tmp_path / "in.parquet")
    assert data.frame["leakage"].tolist() == [0, 1, 0, 1]
    assert data.frame["external"].tolist() == [True] * 4


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "in.xlsx").write_text("x")
    with pytest.raises(InvalidInputError, match="unsupported file type '.xlsx'"):
        read_labeled_file(tmp_path / "in.xlsx")


def test_split_keeps_conversations_whole_and_is_deterministic() -> None:
    rows = []
    for conv in range(120):
        for k in range(conv % 3 + 1):
            rows.append(
                dict(
                    GOOD,
                    text=f"c{conv} m{k}",
                    conversation_id=f"c{conv}",
                    lang="en" if conv % 2 else "zh",
                    leakage=int(conv % 5 == 0),
                    misconduct=int(conv % 7 == 0),
                    off_channel=0,
                )
            )
    frame = pd.DataFrame(rows)
    first = split_labeled(frame, seed=3)
    assert first.equals(split_labeled(frame, seed=3))
    assert set(first) == {"train", "calibration", "test"}
    per_conversation = frame.assign(split=first).groupby("conversation_id")["split"].nunique()
    assert (per_conversation == 1).all()
    shares = first.value_counts(normalize=True)
    assert 0.08 < shares["test"] < 0.25 and 0.08 < shares["calibration"] < 0.25


def test_a_review_export_reads_through_a_column_mapping_with_review_words(tmp_path: Path) -> None:
    from commsrisk.ingest.columns import ColumnMap

    rows = [
        {
            "Message Text": "send me the client list on my gmail",
            "Leakage Flag": "Yes",
            "Misconduct": "no",
            "Off Channel": "Y",
            "Unit": "wealth",
        },
        {
            "Message Text": "fine, booked at 101.5",
            "Leakage Flag": "false positive",
            "Misconduct": "No Action",
            "Off Channel": "n",
            "Unit": "rates",
        },
        {
            "Message Text": "keep this between us before the announcement",
            "Leakage Flag": "ESCALATED",
            "Misconduct": "escalated",
            "Off Channel": "0",
            "Unit": "equities",
        },
        {"Message Text": "maybe", "Leakage Flag": "perhaps", "Misconduct": "0", "Off Channel": "0", "Unit": "x"},
    ]
    path = _write_csv(tmp_path / "export.csv", rows)
    mapping = ColumnMap.parse(
        [
            'text="Message Text"',
            "leakage=Leakage Flag",
            "misconduct=Misconduct",
            "off_channel=Off Channel",
            "business_unit=Unit",
        ]
    )
    data = read_labeled_file(path, columns_map=mapping, max_rejected_share=0.5)
    assert data.frame[list(RISKS)].to_numpy().tolist() == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert data.frame["business_unit"].tolist() == ["wealth", "rates", "equities"]
    assert [(r.line, r.reason) for r in data.rejected] == [
        (5, "label 'leakage' is 'perhaps', not 0/1, true/false, yes/no or a review word")
    ]
    with pytest.raises(InvalidInputError, match=r"no column 'Leakage Flg'.*did you mean \['Leakage Flag'\]"):
        read_labeled_file(path, columns_map=ColumnMap.parse(["leakage=Leakage Flg"]))
    with pytest.raises(InvalidInputError, match="unknown field 'leak'"):
        read_labeled_file(path, columns_map=ColumnMap.parse(["leak=Leakage Flag"]))


def test_conflicting_duplicates_are_rejected_with_both_labels(tmp_path: Path) -> None:
    rows = [dict(GOOD, text=f"ordinary note {i} about lunch plans") for i in range(10)]
    rows += [
        dict(GOOD, text="call me on my cell, not the desk line", off_channel=1),  # line 12
        dict(GOOD, text="call me on my cell, not the desk line", off_channel=0),  # line 13: conflict
        dict(GOOD, text="ordinary note 3 about lunch plans"),  # line 14: same labels, a plain duplicate
    ]
    data = read_labeled_file(_write_csv(tmp_path / "in.csv", rows), max_rejected_share=0.5)
    reasons = {r.line: r.reason for r in data.rejected}
    assert reasons[12].startswith("conflicting labels for the same text: leakage=0, misconduct=0, off_channel=1 here")
    assert reasons[12].endswith("line(s) 13")
    assert (
        "line 12 has leakage=0, misconduct=0, off_channel=1, this line leakage=0, misconduct=0, off_channel=0"
        in (reasons[13])
    )
    assert reasons[14] == "duplicate text (same as line 5)"
    assert "call me on my cell, not the desk line" not in data.frame["text"].tolist()


def test_near_copies_without_a_conversation_stay_on_one_side_of_the_split(tmp_path: Path) -> None:
    rows = []
    for i in range(60):
        rows.append(dict(GOOD, text=f"Wire {1000 + i} USD to account {i:06d} today, thanks!", leakage=i % 2))
        rows.append(dict(GOOD, text=f"wire {2000 + i} usd to account {i + 7:06d} TODAY thanks", leakage=i % 2))
        rows.append(dict(GOOD, text=f"distinct wording number {'abcdefghij'[i % 10]}{'klmnopqrst'[i // 10]} here"))
    data = read_labeled_file(_write_csv(tmp_path / "in.csv", rows))
    split = split_labeled(data.frame, seed=3)
    groups = data.frame.assign(split=split.to_numpy()).groupby("conversation_id")["split"].nunique()
    assert (groups == 1).all()
    wires = data.frame["text"].str.lower().str.startswith("wire")
    assert data.frame.loc[wires, "conversation_id"].nunique() == 1
