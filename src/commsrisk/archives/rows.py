"""One output row per scored message: the columns of an archive run's Parquet results.

A row has two parts. The message's own columns (its key, where it came from, sender, time,
channel, unit) and the scored columns (scores, flags, thresholds, PII types, the evidence as
JSON, versions), which depend only on the message's `SCORED_FIELDS`: identical messages share
the scored part, so it can be reused, and reused exactly, across chunks and reruns.

No message text is written unless asked for (`include_text`); PII values are always masked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import pyarrow as pa

from commsrisk.schema import RISKS, Message, ScoreResult
from commsrisk.scoring import SCORED_FIELDS

MESSAGE_COLUMNS: tuple[str, ...] = (
    "message_id",
    "source",
    "position",
    "conversation_id",
    "sender",
    "sent_at",
    "channel",
    "business_unit",
)
"""The message's own columns, first in every row."""

SCHEMA = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("conversation_id", pa.string()),
        pa.field("sender", pa.string()),
        pa.field("sent_at", pa.timestamp("us", tz="UTC")),
        pa.field("channel", pa.string()),
        pa.field("business_unit", pa.string()),
        pa.field("content_key", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("languages", pa.list_(pa.string())),
        *(
            field
            for risk in RISKS
            for field in (
                pa.field(f"score_{risk}", pa.float64()),
                pa.field(f"flag_{risk}", pa.bool_()),
                pa.field(f"threshold_{risk}", pa.float64()),
            )
        ),
        pa.field("pii_types", pa.list_(pa.string())),
        pa.field("evidence", pa.string()),
        pa.field("thresholds_source", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("thresholds_version", pa.string()),
        pa.field("warnings", pa.list_(pa.string())),
    ]
)
"""Every result file's columns, in order (plus `text` when asked for)."""

SCORED_COLUMNS: tuple[str, ...] = tuple(name for name in SCHEMA.names if name not in MESSAGE_COLUMNS)
"""The part of a row that identical messages share."""

TEXT_FIELD = pa.field("text", pa.string())


def content_key(message: Message) -> str:
    """The hash of the fields a score depends on: equal keys, equal scored columns."""
    values = [getattr(message, name) for name in SCORED_FIELDS]
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def scored_columns(result: ScoreResult, key: str) -> dict[str, Any]:
    """The shared part of a row, from the result of the first message with this key."""
    evidence = {
        "pii": [finding.model_dump(exclude={"value"}) for finding in result.pii],
        "entities": [entity.model_dump(exclude={"text"}) for entity in result.entities],
        "risks": {risk: decision.explanation.model_dump() for risk, decision in result.risks.items()},
    }
    row: dict[str, Any] = {
        "content_key": key,
        "language": result.language,
        "languages": list(result.languages),
        "pii_types": sorted({finding.entity_type for finding in result.pii}),
        "evidence": json.dumps(evidence, ensure_ascii=False, sort_keys=True),
        "thresholds_source": result.thresholds_source,
        "model_version": result.model_version,
        "thresholds_version": result.thresholds_version,
        "warnings": list(result.warnings),
    }
    for risk in RISKS:
        decision = result.risks[risk]
        row[f"score_{risk}"] = decision.score
        row[f"flag_{risk}"] = decision.flagged
        row[f"threshold_{risk}"] = decision.threshold
    return row


def message_columns(message: Message, source: str, position: int) -> dict[str, Any]:
    """A message's own part of its row."""
    sent_at = message.sent_at
    if sent_at is not None:
        sent_at = sent_at.replace(tzinfo=UTC) if sent_at.tzinfo is None else sent_at.astimezone(UTC)
    return {
        "message_id": message.message_id,
        "source": source,
        "position": position,
        "conversation_id": message.conversation_id,
        "sender": message.sender,
        "sent_at": sent_at,
        "channel": message.channel,
        "business_unit": message.business_unit,
    }


def schema_for(include_text: bool) -> pa.Schema:
    """The results' schema, with the text column when it was asked for."""
    return SCHEMA.append(TEXT_FIELD) if include_text else SCHEMA


def rows_table(rows: Sequence[dict[str, Any]], include_text: bool) -> pa.Table:
    """Rows as an Arrow table of the results' schema (its column order, its types)."""
    schema = schema_for(include_text)
    return pa.Table.from_pylist(list(rows), schema=schema)
