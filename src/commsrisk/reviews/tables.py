"""The review store's table, as SQLAlchemy Core sees it (the migrations in `migrations/` create it).

One row per reviewer decision, never updated or deleted (triggers refuse both): a later decision
on the same message supersedes an earlier one by its `decided_at`, and both stay.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from commsrisk.schema import RISKS

VERSION_TABLE = "commsrisk_reviews_version"
"""Alembic's version table for the review store (not `alembic_version`, which MLflow uses in a shared database)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps naive UTC text, PostgreSQL timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Any aware time as UTC (a naive one is taken as UTC); naive UTC for SQLite, which sorts it as text."""
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Back as an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

review_decisions = Table(
    "review_decisions",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("decision_id", String(128), nullable=False),
    Column("message_id", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("lang", String(8)),
    Column("business_unit", String(128)),
    Column("channel", String(64)),
    *(Column(risk, SmallInteger, CheckConstraint(f"{risk} IN (0, 1)", name=f"ck_review_{risk}")) for risk in RISKS),
    Column("reviewer", String(128), nullable=False),
    Column("reason", Text),
    Column("decided_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("source", String(256), nullable=False),
    Column("seen_model_version", String(128)),
    Column("seen_thresholds_version", String(128)),
    *(Column(f"seen_{risk}_score", Float) for risk in RISKS),
    UniqueConstraint("decision_id", name="uq_review_decisions_decision_id"),
    Index("ix_review_decisions_message_id", "message_id"),
    Index("ix_review_decisions_decided_at", "decided_at"),
    Index("ix_review_decisions_business_unit", "business_unit"),
    sqlite_autoincrement=True,
)
"""Per risk: 1, 0 or NULL (not reviewed); `seen_*` is the result the reviewer saw; `source` says which door
(`api:<key name>` or `import:<file name>`) the decision came through."""
