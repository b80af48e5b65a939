"""Lines' line_type (iMessage | RCS), as linq-python 0.65.0's list item reports it

Revision ID: 20261130_0009
Revises: 20261130_0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0009"
down_revision: str | None = "20261130_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing lines learn their type at the next poll.
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_type", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.drop_column("line_type")
