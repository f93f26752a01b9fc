"""Read a review tool's export (CSV, JSON Lines, Parquet) into reviewer decisions, row by row.

The columns and label words are those of `commsrisk data check` and `commsrisk train`: the same
`ColumnMap` (`--map text="Message Text"`), the same label cells (1/0, true/false, yes/no,
escalated/cleared, ...). A blank label cell means the risk was not reviewed. Every rejected row
comes back with its line and reason (never its text); the caller stores the rest in one
transaction (`ReviewStore.append`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from commsrisk.errors import InvalidInputError
from commsrisk.ingest.columns import ColumnMap
from commsrisk.ingest.tabular import read_rows
from commsrisk.reviews.store import derive_decision_id
from commsrisk.schema import DEFAULT_LIMITS, RISKS, Limits, ReviewDecision, describe_validation_error
from commsrisk.training.data import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, RejectedRow, parse_label

REVIEW_COLUMNS: tuple[str, ...] = (
    "message_id",
    "text",
    *RISKS,
    "reviewer",
    "reason",
    "decided_at",
    "reviewed_at",
    "decision_id",
    "lang",
    "business_unit",
    "channel",
    "model_version",
    "thresholds_version",
    *(f"{risk}_score" for risk in RISKS),
)
"""Columns an export may have; `reviewed_at` (the labeled files' name) is read as `decided_at`."""
NOT_REVIEWED: frozenset[str] = frozenset({"", "not reviewed", "unreviewed", "null", "n/a"})
"""Label cells meaning "this risk was not reviewed" (case and spaces folded), besides an empty cell."""


@dataclass
class ReviewFile:
    """The decisions read from one file, with the line of each, and every rejected row."""

    source: str
    decisions: list[ReviewDecision] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    rows_read: int = 0


def read_review_file(
    path: Path,
    *,
    limits: Limits = DEFAULT_LIMITS,
    columns_map: ColumnMap | None = None,
    reviewer: str | None = None,
) -> ReviewFile:
    """Read and validate an export of reviewer decisions; each bad row is rejected with its reason.

    `reviewer` names who decided for rows without a reviewer of their own. A row without a
    decision id gets one derived from its message id, reviewer, time and labels (without the
    time when the file has none), so importing the same file twice stores it once.

    Raises:
        InvalidInputError: the file cannot be read, a required column is missing, or the mapping
            names a column the file does not have.
    """
    rows, columns = read_rows(path)
    if columns_map is not None and columns_map.columns:
        columns_map.check(dict.fromkeys((*REVIEW_COLUMNS, *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)), columns, path.name)
        columns = columns_map.rename_columns(columns)
        rows = [(line, None if row is None else columns_map.apply(row), error) for line, row, error in rows]
    if any(row is not None for _, row, _ in rows):
        _check_columns(path, columns, reviewer)
    read = ReviewFile(source=str(path), rows_read=len(rows))
    for line, row, error in rows:
        if row is None:
            read.rejected.append(RejectedRow(line, None, error or "unreadable row"))
            continue
        decision = _decision(row, limits, reviewer)
        if isinstance(decision, str):
            read.rejected.append(RejectedRow(line, _text_cell(row.get("message_id")), decision))
            continue
        read.decisions.append(decision)
        read.lines.append(line)
    return read


def _check_columns(path: Path, columns: list[str], reviewer: str | None) -> None:
    missing = [column for column in ("message_id", "text") if column not in columns]
    if not any(risk in columns for risk in RISKS):
        missing.append(" or ".join(RISKS))
    if "reviewer" not in columns and not reviewer:
        missing.append("reviewer (or give --reviewer)")
    if missing:
        raise InvalidInputError(
            f"{path.name}: missing column(s) {missing}; a review export has message_id, text, a column per "
            f"risk reviewed and reviewer, and may have {list(REVIEW_COLUMNS[2:])} (map other names with --map "
            "field=Column)"
        )


def _decision(row: dict[str, Any], limits: Limits, default_reviewer: str | None) -> ReviewDecision | str:
    """The row's decision, or the reason it is rejected."""
    labels: dict[str, int | None] = {}
    for risk in RISKS:
        cell = row.get(risk)
        if _blank(cell) or (isinstance(cell, str) and " ".join(cell.split()).casefold() in NOT_REVIEWED):
            labels[risk] = None
            continue
        label = parse_label(cell)
        if label is None:
            return (
                f"label '{risk}' is {str(cell)[:12]!r}, not 0/1, true/false, yes/no, a review word "
                "or blank (not reviewed)"
            )
        labels[risk] = label
    scores: dict[str, float] = {}
    for risk in RISKS:
        cell = row.get(f"{risk}_score")
        if _blank(cell):
            continue
        try:
            scores[risk] = float(cell)
        except (TypeError, ValueError):
            return f"{risk}_score is not a number"
    model_version = _text_cell(row.get("model_version"))
    payload: dict[str, Any] = {
        "message_id": _text_cell(row.get("message_id")),
        "text": row.get("text"),
        "labels": labels,
        "reviewer": _text_cell(row.get("reviewer")) or default_reviewer,
        "reason": _text_cell(row.get("reason")),
        "decided_at": _text_cell(row.get("decided_at")) or _text_cell(row.get("reviewed_at")),
        "decision_id": _text_cell(row.get("decision_id")),
        "lang": _text_cell(row.get("lang")),
        "business_unit": _text_cell(row.get("business_unit")),
        "channel": _text_cell(row.get("channel")),
    }
    if model_version or scores:
        payload["seen"] = {
            "model_version": model_version,
            "thresholds_version": _text_cell(row.get("thresholds_version")),
            "scores": scores,
        }
    payload = {key: value for key, value in payload.items() if value is not None}
    if isinstance(payload.get("text"), float) and math.isnan(payload["text"]):
        del payload["text"]
    try:
        decision = ReviewDecision.model_validate(payload, context={"limits": limits})
    except ValidationError as error:
        return describe_validation_error(error)
    if decision.decision_id is None:
        decision_id = derive_decision_id(decision.message_id, decision.reviewer, decision.decided_at, decision.labels)
        decision = decision.model_copy(update={"decision_id": decision_id})
    return decision


def _blank(cell: Any) -> bool:
    if isinstance(cell, str):
        return not cell.strip()
    return cell is None or (isinstance(cell, float) and math.isnan(cell))


def _text_cell(cell: Any) -> str | None:
    """A cell as stripped text (a number or a time as its string), None when blank."""
    if _blank(cell):
        return None
    if hasattr(cell, "isoformat"):  # Parquet gives times as pandas Timestamps
        return str(cell.isoformat())
    return str(cell).strip() or None
