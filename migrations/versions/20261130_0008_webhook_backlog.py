"""Webhook backlog: the phone number of each event, to match open events by index

Revision ID: 20261130_0008
Revises: 20261130_0007
Create Date: 2026-11-30

Unmatched events are retried after each poll only for the numbers that poll brought in;
that needs the number as a column (indexed with the account and state), not inside the
payload. Open events already stored get theirs from their payload.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0008"
down_revision: str | None = "20261130_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_number", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_webhook_events_phone", ["account", "state", "phone_number"],
                              unique=False)
    events = sa.table("webhook_events", sa.column("id", sa.Integer()),
                      sa.column("state", sa.String()), sa.column("payload", sa.Text()),
                      sa.column("phone_number", sa.String()))
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.id, events.c.payload)
                              .where(events.c.state.in_(("pending", "unmatched")))).all()
    for row_id, payload in rows:
        phone = _phone(payload)
        if phone is not None:
            connection.execute(sa.update(events).where(events.c.id == row_id)
                               .values(phone_number=phone))


def _phone(payload: str) -> str | None:
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    phone = data.get("phone_number") if isinstance(data, dict) else None
    return phone if isinstance(phone, str) and 0 < len(phone) <= 255 else None


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_phone")
        batch_op.drop_column("phone_number")
