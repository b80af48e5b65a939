"""Retention: history_summaries and poll_summaries keep what pruning condenses

Revision ID: 20261127_0002
Revises: 20261127_0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "20261127_0002"
down_revision: str | None = "20261127_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "history_summaries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_by_status", sa.JSON(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("degradations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_summaries")),
    )
    with op.batch_alter_table("history_summaries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_history_summaries_line", ["account", "line_id", "period_end"], unique=False
        )
    op.create_table(
        "poll_summaries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_summaries")),
    )


def downgrade() -> None:
    op.drop_table("poll_summaries")
    with op.batch_alter_table("history_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_history_summaries_line")
    op.drop_table("history_summaries")
