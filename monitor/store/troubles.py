"""The monitor's own trouble, persisted: each trouble is announced once and cleared once.

A trouble row flips state and its announcements enter the outbox in one transaction, and
every announcement carries a dedupe key, so neither a restart nor a second replica can
announce the same trouble twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import Message
from monitor.errors import StoreError
from monitor.store.schema import Notification, Trouble


def active_troubles(sessions: sessionmaker[Session]) -> dict[str, datetime]:
    """Key → since, for every trouble announced and not yet cleared."""
    try:
        with sessions() as session:
            return dict(session.execute(select(Trouble.key, Trouble.since)
                                        .where(Trouble.active.is_(True))).tuples().all())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read troubles: {exc}") from exc


def flip_trouble(
    sessions: sessionmaker[Session],
    key: str,
    *,
    active: bool,
    detail: str | None,
    now: datetime,
    announcements: Sequence[tuple[str, Message]],
) -> bool:
    """Open (``active``) or clear a trouble and queue its announcements (channel, message).

    Returns False when the trouble was already in that state (someone announced it).
    """
    try:
        with sessions.begin() as session:
            row = session.get(Trouble, key, with_for_update=True)
            if active:
                if row is not None and row.active:
                    return False
                if row is None:
                    row = Trouble(key=key, active=True, since=now, detail=detail)
                    session.add(row)
                else:
                    row.active, row.since, row.detail, row.cleared_at = True, now, detail, None
            else:
                if row is None or not row.active:
                    return False
                row.active, row.cleared_at = False, now
            session.flush()
            phase = "open" if active else "clear"
            session.execute(insert(Notification), [
                {"transition_id": None, "account": "", "line_id": "", "channel": channel,
                 "kind": "trouble" if active else "trouble_cleared", "title": message.title,
                 "body": message.body, "created_at": now, "state": "pending", "attempts": 0,
                 "next_attempt_at": now, "payload": None, "deferred": False,
                 "dedupe_key": f"{key}@{row.since.isoformat()}:{phase}:{channel}"}
                for channel, message in announcements
            ])
            return True
    except IntegrityError:
        return False  # another replica announced it first
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record trouble {key}: {exc}") from exc
