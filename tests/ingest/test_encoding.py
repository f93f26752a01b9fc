"""Invalid Unicode is rejected per record, the same way by every reader (JSONL, CSV, Parquet, stdin)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from commsrisk.errors import InvalidInputError
from commsrisk.ingest.encoding import invalid_unicode
from commsrisk.ingest.messages import MessageLine, read_message_file, read_message_stream
from commsrisk.ingest.tabular import read_rows

SURROGATE = "field 'text' holds invalid Unicode (lone surrogate U+D800 at character 4)"
BAD_BYTE = "field 'text' holds invalid UTF-8 (byte 0xE9 at character 3)"


@pytest.mark.parametrize(
    ("row", "from_bytes", "reason"),
    [
        ({"text": "fine, with an emoji \U0001f600 and 中文"}, False, None),
        ({"text": "bad \ud800 here"}, False, SURROGATE),
        ({"text": "caf\udce9"}, True, BAD_BYTE),
        ({"text": "caf\udce9"}, False, "field 'text' holds invalid Unicode (lone surrogate U+DCE9 at character 3)"),
        ({"text": "ok", "recipients": ["a", "b\udfff"]}, False, "field 'recipients.1' holds invalid Unicode"),
        ({"text": "ok", "meta": {"note": "\ud83d"}}, False, "field 'meta.note' holds invalid Unicode"),
        ({"text": "ok", "x\ud800y": 1}, False, "a field name holds invalid Unicode"),
        ({"text": None, "n": 3.0}, False, None),
    ],
)
def test_invalid_unicode_names_the_field_never_the_text(row: dict, from_bytes: bool, reason: str | None) -> None:
    found = invalid_unicode(row, from_bytes=from_bytes)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason)
        assert all(word not in found for word in ("bad", "here", "caf", "x\ud800y"))


def _lines(items: list[MessageLine]) -> list[tuple[int, str | None, str | None]]:
    return [(i.line, i.message.message_id if i.message else None, i.error) for i in items]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_reader_rejects_the_bad_record_and_reads_the_rest(tmp_path: Path) -> None:
    jsonl = _write(
        tmp_path / "m.jsonl",
        b'{"text": "hello", "message_id": "a"}\n{"text": "bad \\ud800 here", "message_id": "b"}\n'
        b'{"text": "bye", "message_id": "c"}\n',
    )
    csv = _write(tmp_path / "m.csv", b'text,message_id\nhello,a\n"caf\xe9 ok",b\nbye,c\n')
    parquet = tmp_path / "m.parquet"
    table = pa.table({"text": pa.array([b"hello", b"caf\xe9 ok", b"bye"], pa.binary()), "message_id": ["a", "b", "c"]})
    pq.write_table(table, parquet)
    stream = jsonl.read_bytes().splitlines(keepends=True)

    for items, first, reason in [
        (read_message_file(jsonl), 1, SURROGATE),
        (read_message_stream(iter(stream)), 1, SURROGATE),
        (read_message_file(csv), 2, BAD_BYTE),
        (read_message_file(parquet), 1, BAD_BYTE),
    ]:
        got = _lines(list(items))
        assert [(line, mid) for line, mid, _ in got] == [(first, "a"), (first + 1, None), (first + 2, "c")]
        error = got[1][2]
        assert error is not None and error.startswith(reason) and "caf" not in error and "bad" not in error


def test_csv_lines_are_the_lines_records_start_on(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", b'text,message_id\n"two\nlines",a\n\n"caf\xe9",b\nlast,c\n')
    rows, _ = read_rows(path)
    assert [(line, row["message_id"] if row else error[:25]) for line, row, error in rows] == [
        (2, "a"),
        (5, "field 'text' holds invali"),
        (6, "c"),
    ]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad-header.csv", b"te\xffxt,message_id\nhello,a\n", "header holds invalid UTF-8"),
        ("broken.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
        ("missing.jsonl", None, "no such file"),
    ],
)
def test_a_file_unreadable_as_a_whole_is_one_clear_error(
    tmp_path: Path, name: str, data: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(InvalidInputError, match=message):
        read_message_file(path)  # raises when called, before any line is asked for


def test_a_folder_and_an_empty_csv(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is a folder"):
        read_rows(tmp_path)
    assert read_rows(_write(tmp_path / "empty.csv", b"")) == ([], [])
    assert json.loads('"\\ud800"') == "\ud800"  # valid JSON, which is why the reader must check it
