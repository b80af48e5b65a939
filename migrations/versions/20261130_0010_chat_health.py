"""Chat health: the chats table (one row per chat, written only when it changes) and the
sweep's progress per account

Revision ID: 20261130_0010
Revises: 20261130_0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0010"
down_revision: str | None = "20261130_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("chat_id", sa.String(length=255), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("doc_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("account", "chat_id", name=op.f("pk_chats")),
    )
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.create_index("ix_chats_line", ["account", "phone_number", "updated_at"],
                              unique=False)
        batch_op.create_index("ix_chats_status", ["account", "status", "phone_number"],
                              unique=False)
    op.create_table(
        "chat_sweeps",
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_duration", sa.Float(), nullable=True),
        sa.Column("last_pages", sa.Integer(), nullable=True),
        sa.Column("last_requests", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_chat_sweeps")),
    )


def downgrade() -> None:
    op.drop_table("chat_sweeps")
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_index("ix_chats_status")
        batch_op.drop_index("ix_chats_line")
    op.drop_table("chats")
