"""Messages the monitor queues on its own, once: its trouble (announced once, cleared once)
and scheduled digests.

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
            rows = session.execute(select(Trouble.key, Trouble.since)
                                   .where(Trouble.active.is_(True)))
            return {key: since for key, since in rows}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read troubles: {exc}") from exc


def flip_trouble(
    sessions: sessionmaker[Session],
    key: str,
    *,
    active: bool,
    detail: str | None,
    since: datetime,
    now: datetime,
    announcements: Sequence[tuple[str, Message]],
) -> bool:
    """Open (``active``, trouble began at ``since``) or clear a trouble, and queue its
    announcements (channel, message) in the same transaction.

    Returns False when the trouble was already in that state (someone announced it).
    """
    try:
        with sessions.begin() as session:
            row = session.get(Trouble, key, with_for_update=True)
            if active:
                if row is not None and row.active:
                    return False
                if row is None:
                    row = Trouble(key=key, active=True, since=since, detail=detail)
                    session.add(row)
                else:
                    row.active, row.since, row.detail, row.cleared_at = True, since, detail, None
            else:
                if row is None or not row.active:
                    return False
                row.active, row.cleared_at = False, now
            session.flush()
            phase = "open" if active else "clear"
            session.execute(insert(Notification), [
                message_row(channel, message, kind="trouble" if active else "trouble_cleared",
                            dedupe_key=f"{key}@{row.since.isoformat()}:{phase}:{channel}",
                            now=now)
                for channel, message in announcements
            ])
            return True
    except IntegrityError:
        return False  # another replica announced it first
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record trouble {key}: {exc}") from exc


def queue_once(
    sessions: sessionmaker[Session], *, channel: str, kind: str, message: Message,
    dedupe_key: str, now: datetime,
) -> bool:
    """Queue a finished message (a digest) unless one with ``dedupe_key`` exists."""
    try:
        with sessions.begin() as session:
            if session.scalar(select(Notification.id)
                              .where(Notification.dedupe_key == dedupe_key)) is not None:
                return False
            session.execute(insert(Notification),
                            [message_row(channel, message, kind=kind, dedupe_key=dedupe_key,
                                         now=now)])
            return True
    except IntegrityError:
        return False  # queued by someone else a moment ago
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot queue {kind} for channel {channel}: {exc}") from exc


def message_row(channel: str, message: Message, *, kind: str, dedupe_key: str,
                now: datetime) -> dict[str, object]:
    """An outbox row carrying a finished message (not about one line, never grouped)."""
    return {"transition_id": None, "account": "", "line_id": "", "channel": channel,
            "kind": kind, "title": message.title, "body": message.body,
            "created_at": now, "state": "pending", "attempts": 0, "next_attempt_at": now,
            "payload": {"body_format": message.body_format}, "deferred": False,
            "dedupe_key": dedupe_key}
