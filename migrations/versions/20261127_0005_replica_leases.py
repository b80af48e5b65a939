"""Replicas: lease rows (fencing generation), replica heartbeats, the poll's writer

Revision ID: 20261127_0005
Revises: 20261127_0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261127_0005"
down_revision: str | None = "20261127_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_key", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "replicas",
        sa.Column("replica", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_replicas_heartbeat_at"), ["heartbeat_at"],
                              unique=False)
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.drop_column("replica")
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replicas_heartbeat_at"))
    op.drop_table("replicas")
    op.drop_table("leases")
