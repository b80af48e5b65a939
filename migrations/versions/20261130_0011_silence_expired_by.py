"""Who ended a silence early (``silence expire``, the status page's Expire button)

Revision ID: 20261130_0011
Revises: 20261130_0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0011"
down_revision: str | None = "20261130_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: silences expired before this revision keep an unknown author.
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.drop_column("expired_by")
