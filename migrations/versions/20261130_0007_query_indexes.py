"""Indexes for the audit path: notifications by transition, audits by line and by start

Revision ID: 20261130_0007
Revises: 20261127_0006
Create Date: 2026-11-30

Every audit read and updated its transition's notifications by ``transition_id``, which had
no index, so each audit scanned the whole outbox (delivered history included) and cost more
every day the daemon ran. ``audit show`` and the gate API look a line's latest audit up by
phone number or line id (an OR over two columns needs an index on each), and the audit
budget counts an account's audits started in the last hour.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261130_0007"
down_revision: str | None = "20261127_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_transition", ["transition_id"], unique=False)
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.create_index("ix_audits_line", ["line_id", "id"], unique=False)
        batch_op.create_index("ix_audits_account_started", ["account", "started_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.drop_index("ix_audits_account_started")
        batch_op.drop_index("ix_audits_line")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_transition")
