"""Labeled reviewer decisions: read any supported file, validate every row, split by conversation.

A rejected row is never silently dropped: it comes back with its line number and reason, and the
caller reports it. The split keeps each conversation in one part and stratifies by label set.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from commsrisk.errors import DataValidationError, InvalidInputError
from commsrisk.ingest.columns import ColumnMap
from commsrisk.ingest.tabular import read_rows
from commsrisk.schema import DEFAULT_LIMITS, RISKS, Limits
from commsrisk.training.overlap import normalise_text

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("text", *RISKS)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "lang",
    "business_unit",
    "channel",
    "external",
    "message_id",
    "conversation_id",
    "reviewer",
    "reviewed_at",
    "mixed_with",
    "hard_case",
    "writer",
)
SPLITS: tuple[str, ...] = ("train", "calibration", "test")
LABEL_WORDS: dict[str, int] = {
    **dict.fromkeys(("1", "true", "yes", "y", "escalated", "escalate", "confirmed", "true positive"), 1),
    **dict.fromkeys(("0", "false", "no", "n", "false positive", "no action", "cleared", "dismissed"), 0),
}
"""Label cells we understand (case and spaces folded): numbers, booleans and review-tool words."""


@dataclass(frozen=True)
class RejectedRow:
    """One input row that was not accepted, and why (no text in the reason)."""

    line: int
    message_id: str | None
    reason: str


@dataclass
class LabeledData:
    """Accepted rows, every rejected row, and where they came from."""

    frame: pd.DataFrame
    rejected: list[RejectedRow]
    source: str
    rows_read: int
    digest: str = field(default="")

    @property
    def rejected_share(self) -> float:
        """Share of read rows that were rejected."""
        return len(self.rejected) / self.rows_read if self.rows_read else 1.0


def parse_label(value: Any) -> int | None:
    """Return 0/1 for a label cell, or None if it is not a valid label."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return int(value)
    if isinstance(value, (float, np.floating)) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        return LABEL_WORDS.get(" ".join(value.replace("_", " ").replace("-", " ").split()).casefold())
    return None


def _parse_bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    label = parse_label(value)
    return None if label is None else bool(label)


def _clean_optional(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def read_labeled_file(
    path: Path,
    *,
    limits: Limits = DEFAULT_LIMITS,
    max_rejected_share: float = 0.2,
    columns_map: ColumnMap | None = None,
) -> LabeledData:
    """Read and validate a labeled file; every rejected row is returned with its line and reason.

    `columns_map` reads an export whose columns have other names. The same text twice with the
    same labels keeps the first; with different labels, every copy is rejected as a conflict
    naming the lines and labels (a reviewer decides, not the reader).

    Raises:
        InvalidInputError: the file cannot be read at all, a required column is missing, or the
            mapping names a column the file does not have.
        DataValidationError: more than `max_rejected_share` of the rows were rejected, or none is usable.
    """
    rows, columns = read_rows(path)
    if columns_map is not None and columns_map.columns:
        columns_map.check((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS), columns, path.name)
        columns = columns_map.rename_columns(columns)
        rows = [(line, None if row is None else columns_map.apply(row), error) for line, row, error in rows]
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing and any(row is not None for _, row, _ in rows):
        raise InvalidInputError(
            f"{path.name}: missing required column(s) {missing}; a labeled file needs {list(REQUIRED_COLUMNS)} "
            f"and may have {list(OPTIONAL_COLUMNS)} (map other names with --map field=Column)"
        )
    accepted: list[dict[str, Any]] = []
    rejected: list[RejectedRow] = []
    seen_ids: dict[str, int] = {}
    seen_texts: dict[str, int] = {}
    accepted_by_line: dict[int, dict[str, Any]] = {}
    conflicts: dict[int, list[int]] = {}
    for line, row, error in rows:
        if row is None:
            rejected.append(RejectedRow(line, None, error or "unreadable row"))
            continue
        message_id = _clean_optional(row.get("message_id"))
        reason = _row_problem(row, limits)
        if reason is None and message_id is not None and message_id in seen_ids:
            reason = f"duplicate message_id (first seen on line {seen_ids[message_id]})"
        text = row.get("text")
        if reason is None and isinstance(text, str) and text in seen_texts:
            first = accepted_by_line[seen_texts[text]]
            labels = {risk: parse_label(row[risk]) for risk in RISKS}
            if all(first[risk] == labels[risk] for risk in RISKS):
                reason = f"duplicate text (same as line {seen_texts[text]})"
            else:
                reason = f"conflicting labels for the same text: line {first['line']} has {_labels(first)}, " + (
                    f"this line {_labels(labels)}"
                )
                conflicts.setdefault(seen_texts[text], []).append(line)
        if reason is not None:
            rejected.append(RejectedRow(line, message_id, reason))
            continue
        text = cast(str, text)  # _row_problem checked it is a non-empty string
        if message_id is not None:
            seen_ids[message_id] = line
        seen_texts[text] = line
        record: dict[str, Any] = {"line": line, "text": text}
        record.update({risk: parse_label(row[risk]) for risk in RISKS})
        for column in OPTIONAL_COLUMNS:
            record[column] = _parse_bool(row.get(column)) if column == "external" else _clean_optional(row.get(column))
        record["message_id"] = message_id or f"line-{line}"
        record["conversation_id"] = record["conversation_id"] or near_copy_group(text) or record["message_id"]
        accepted.append(record)
        accepted_by_line[line] = record
    for first_line, later in conflicts.items():
        record = accepted_by_line[first_line]
        accepted.remove(record)
        rejected.append(
            RejectedRow(
                first_line,
                record["message_id"],
                f"conflicting labels for the same text: {_labels(record)} here, other labels on line(s) "
                + ", ".join(map(str, later)),
            )
        )
    rejected.sort(key=lambda r: r.line)
    rows_read = len(rows)
    data = LabeledData(frame=pd.DataFrame(accepted), rejected=rejected, source=str(path), rows_read=rows_read)
    logger.info("read %s: %d rows, %d accepted, %d rejected", path.name, rows_read, len(accepted), len(rejected))
    if not accepted:
        raise DataValidationError(
            f"{path.name}: none of the {rows_read} rows is usable ({_reason_counts(rejected)}); fix the rows listed"
        )
    if data.rejected_share > max_rejected_share:
        raise DataValidationError(
            f"{path.name}: {len(rejected)} of {rows_read} rows rejected ({data.rejected_share:.0%}), over the "
            f"limit of {max_rejected_share:.0%} ({_reason_counts(rejected)}); fix the rows or raise --max-rejected"
        )
    data.digest = dataset_digest(data.frame)
    return data


def _row_problem(row: dict[str, Any], limits: Limits) -> str | None:
    """The first rule a row breaks, or None."""
    text = row.get("text")
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return "missing text"
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string"
    if not text.strip():
        return "empty text"
    if len(text) > limits.max_text_chars:
        return f"text has {len(text)} characters, over the limit of {limits.max_text_chars}"
    for risk in RISKS:
        if risk not in row or row[risk] is None or (isinstance(row[risk], float) and np.isnan(row[risk])):
            return f"missing label '{risk}'"
        if row[risk] == "":
            return f"missing label '{risk}'"
        if parse_label(row[risk]) is None:
            return f"label '{risk}' is {str(row[risk])[:12]!r}, not 0/1, true/false, yes/no or a review word"
    return None


NEAR_COPY_MIN_CHARS = 20
"""Shorter wordings ("ok", "thanks") are not grouped: they repeat without being copies."""


def near_copy_group(text: str) -> str | None:
    """A group id shared by near-copies (same wording up to case, digits, punctuation), or None.

    Rows without a conversation id are grouped by it, so copies of one message never straddle
    the train/test split.
    """
    folded = normalise_text(text)
    if len(folded) < NEAR_COPY_MIN_CHARS:
        return None
    return "text-" + hashlib.sha256(folded.encode("utf-8")).hexdigest()[:12]


def near_copies_across_splits(frame: pd.DataFrame, split: pd.Series) -> int:
    """How many held-out rows have a near-copy in the training split (different conversations)."""
    keys = frame["text"].map(near_copy_group)
    train_keys = set(keys[(split == "train").to_numpy()].dropna())
    return int(sum(1 for key, part in zip(keys, split, strict=True) if part != "train" and key in train_keys))


def _labels(record: dict[str, Any]) -> str:
    return ", ".join(f"{risk}={record[risk]}" for risk in RISKS)


def _reason_counts(rejected: list[RejectedRow]) -> str:
    counts: dict[str, int] = {}
    for row in rejected:
        key = row.reason.split(" (")[0].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items(), key=lambda kv: -kv[1]))


def dataset_digest(frame: pd.DataFrame) -> str:
    """A stable digest of texts and labels, to tell datasets apart in MLflow."""
    hasher = hashlib.sha256()
    for text, *labels in frame[["text", *RISKS]].itertuples(index=False):
        hasher.update(text.encode("utf-8"))
        hasher.update(bytes(int(label) for label in labels))
    return hasher.hexdigest()[:16]


def label_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The (n, len(RISKS)) 0/1 label matrix in RISKS order."""
    return frame[list(RISKS)].to_numpy(dtype=np.int64)


def split_labeled(
    frame: pd.DataFrame, *, seed: int, test_share: float = 0.15, calibration_share: float = 0.15
) -> pd.Series:
    """Assign each row to train, calibration or test, keeping conversations whole.

    Strata are the label set crossed with the language, so every split sees each combination.
    """
    if not 0 < test_share < 0.5 or not 0 < calibration_share < 0.5:
        raise InvalidInputError("test_share and calibration_share must each be between 0 and 0.5")
    strata = frame[list(RISKS)].astype(str).agg("".join, axis=1) + "|" + frame["lang"].fillna("?").astype(str)
    groups = frame["conversation_id"].astype(str).to_numpy()
    assignment = pd.Series("train", index=frame.index, dtype=object)
    test_idx = _one_fold(strata.to_numpy(), groups, round(1 / test_share), seed)
    assignment.iloc[test_idx] = "test"
    rest = np.flatnonzero(assignment.to_numpy() == "train")
    calib_folds = round((1 - test_share) / calibration_share)
    calib_local = _one_fold(strata.to_numpy()[rest], groups[rest], calib_folds, seed + 1)
    assignment.iloc[rest[calib_local]] = "calibration"
    return assignment


def _one_fold(strata: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    splitter = StratifiedGroupKFold(n_splits=max(2, n_splits), shuffle=True, random_state=seed)
    # StratifiedGroupKFold warns when a stratum is smaller than n_splits; rare label sets are expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, held_out = next(iter(splitter.split(np.zeros(len(strata)), strata, groups)))
    return held_out
