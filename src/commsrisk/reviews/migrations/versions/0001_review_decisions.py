"""The review_decisions table: one row per reviewer decision, append-only.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Columns are written out (not read from `commsrisk.reviews.tables`), so this revision builds the
same table whatever the code becomes; a new risk is a new revision. Triggers refuse UPDATE and
DELETE (and TRUNCATE on PostgreSQL), so a decision, once stored, stays as it was stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RISKS = ("leakage", "misconduct", "off_channel")
APPEND_ONLY = "review_decisions is append-only: a decision is never changed or deleted; store a new decision instead"
SQLITE_TRIGGERS = {
    "review_decisions_no_update": "UPDATE",
    "review_decisions_no_delete": "DELETE",
}


def upgrade() -> None:
    """Create the table, its indexes and the append-only triggers."""
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise RuntimeError(f"the review store runs on SQLite or PostgreSQL, not {dialect}")
    op.create_table(
        "review_decisions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(8)),
        sa.Column("business_unit", sa.String(128)),
        sa.Column("channel", sa.String(64)),
        *(
            sa.Column(risk, sa.SmallInteger(), sa.CheckConstraint(f"{risk} IN (0, 1)", name=f"ck_review_{risk}"))
            for risk in RISKS
        ),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("seen_model_version", sa.String(128)),
        sa.Column("seen_thresholds_version", sa.String(128)),
        *(sa.Column(f"seen_{risk}_score", sa.Float()) for risk in RISKS),
        sa.UniqueConstraint("decision_id", name="uq_review_decisions_decision_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_review_decisions_message_id", "review_decisions", ["message_id"])
    op.create_index("ix_review_decisions_decided_at", "review_decisions", ["decided_at"])
    op.create_index("ix_review_decisions_business_unit", "review_decisions", ["business_unit"])
    if dialect == "sqlite":
        for name, event in SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON review_decisions "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION review_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        op.execute(
            "CREATE TRIGGER review_decisions_no_update_delete BEFORE UPDATE OR DELETE ON review_decisions "
            "FOR EACH ROW EXECUTE FUNCTION review_decisions_append_only()"
        )
        op.execute(
            "CREATE TRIGGER review_decisions_no_truncate BEFORE TRUNCATE ON review_decisions "
            "FOR EACH STATEMENT EXECUTE FUNCTION review_decisions_append_only()"
        )


def downgrade() -> None:
    """Refused: going below this revision would drop the firm's labeled data."""
    raise RuntimeError("the review store has no downgrade below its first revision (it would drop every decision)")
