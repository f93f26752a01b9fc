"""Column mappings: read a review tool's export as it is ("Message Text", "Leakage Flag", ...).

One mapping serves `data check`, `train` and every other reader of labeled files: given as
`--map text="Message Text"` pairs or as a small YAML file (`text: Message Text`). Our field
names are the keys; the export's column names are the values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from commsrisk.errors import InvalidInputError


class ColumnMap(BaseModel):
    """Our field name -> the column that holds it in the file."""

    model_config = ConfigDict(frozen=True)

    columns: dict[str, str] = {}

    @classmethod
    def parse(cls, pairs: Sequence[str], file: Path | None = None) -> ColumnMap:
        """From `field=Column` pairs, on top of an optional YAML file of the same pairs.

        Raises:
            InvalidInputError: a pair without '=', or a file that is not a YAML mapping of strings.
        """
        columns: dict[str, str] = {}
        if file is not None:
            try:
                loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as error:
                raise InvalidInputError(f"{file}: cannot read the column mapping ({error})") from error
            if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
                raise InvalidInputError(f"{file}: a column mapping is a YAML mapping of field: column name")
            columns.update({str(k): v for k, v in loaded.items()})
        for pair in pairs:
            field, sep, column = pair.partition("=")
            if not sep or not field.strip() or not column.strip():
                raise InvalidInputError(f'--map {pair!r}: write field=Column, e.g. text="Message Text"')
            columns[field.strip()] = column.strip().strip('"').strip("'")
        return cls(columns=columns)

    def check(self, fields: Iterable[str], file_columns: Sequence[str], source: str) -> None:
        """Every mapped field must be one we know and every mapped column must be in the file.

        Raises:
            InvalidInputError: naming the unknown field or the missing column (with near matches).
        """
        known = list(fields)
        for field, column in self.columns.items():
            if field not in known:
                raise InvalidInputError(f"column mapping: unknown field {field!r}; fields are {known}")
            if column not in file_columns:
                near = difflib.get_close_matches(column, list(file_columns), n=3)
                hint = f"; did you mean {near}?" if near else f"; the file has {list(file_columns)}"
                raise InvalidInputError(f"{source}: no column {column!r} (mapped to {field!r}){hint}")

    def rename_columns(self, file_columns: Sequence[str]) -> list[str]:
        """The file's column names as our field names."""
        back = {column: field for field, column in self.columns.items()}
        return [back.get(column, column) for column in file_columns]

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        """One row with our field names (mapped columns renamed, the others kept)."""
        if not self.columns:
            return row
        back = {column: field for field, column in self.columns.items()}
        return {back.get(key, key): value for key, value in row.items() if key not in self.columns or key in back}
