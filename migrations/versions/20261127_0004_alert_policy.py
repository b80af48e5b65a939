"""Alert policy: what each channel heard per line, debounce and flapping state, outbox payloads

Revision ID: 20261127_0004
Revises: 20261127_0003
Create Date: 2026-11-27

``lines.alerted_channels`` (a list of channel names) becomes ``lines.told`` (channel → the
status it heard and when); existing episodes are carried over as heard at ``updated_at``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261127_0004"
down_revision: str | None = "20261127_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("told", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("previous_status", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("previous_since", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("degraded_since", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("pending_status", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("pending_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pending_since", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("flap", sa.JSON(), nullable=True))
    _carry_over_alerted_channels()
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.drop_column("alerted_channels")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("deferred", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=200), nullable=True))
        batch_op.create_index("uq_notifications_dedupe_key", ["dedupe_key"], unique=True)

    op.create_table(
        "troubles",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_troubles")),
    )


def _carry_over_alerted_channels() -> None:
    bind = op.get_bind()
    lines = sa.table("lines", sa.column("account"), sa.column("line_id"), sa.column("status"),
                     sa.column("updated_at"), sa.column("alerted_channels", sa.JSON()),
                     sa.column("told", sa.JSON()))
    rows = bind.execute(sa.select(lines.c.account, lines.c.line_id, lines.c.status,
                                  lines.c.updated_at, lines.c.alerted_channels)).all()
    for account, line_id, status, updated_at, alerted in rows:
        names = json.loads(alerted) if isinstance(alerted, str) else (alerted or [])
        at = updated_at if isinstance(updated_at, str) else updated_at.isoformat()
        told = {name: {"status": status, "at": at} for name in names}
        bind.execute(sa.update(lines)
                     .where(lines.c.account == account, lines.c.line_id == line_id)
                     .values(told=told))


def downgrade() -> None:
    op.drop_table("troubles")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("uq_notifications_dedupe_key")
        batch_op.drop_column("dedupe_key")
        batch_op.drop_column("deferred")
        batch_op.drop_column("payload")
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alerted_channels", sa.JSON(), nullable=True))
        for column in ("flap", "pending_since", "pending_count", "pending_status",
                       "degraded_since", "previous_since", "previous_status", "told"):
            batch_op.drop_column(column)
