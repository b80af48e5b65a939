"""The outbox's bookkeeping: read a channel's pending rows, claim them, record the outcome.

The deliverer (monitor/alerts/outbox.py) decides when and what to send; every statement it
needs is here, each one short transaction.

Claims: a row is claimed with a conditional UPDATE (``state = 'pending'`` and no live claim,
i.e. ``claimed_until`` unset or past) that returns the ids it changed; only those rows are
the claimant's to send, so two deliverers never send the same row at once. A claim lasts
until ``claimed_until``: a claimant that dies leaves a claim that expires back into
``pending``. Parking a row for quiet hours, or dropping it as moot, likewise touches only
pending rows under no live claim, so it never takes a row out from under a send.

Every function raises StoreError when the database fails (its transaction not committed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import Entry, Message
from monitor.core.timing import DueRow
from monitor.errors import StoreError
from monitor.store.schema import Notification

# Rows read per channel and round: the oldest; the rest wait for the next round.
BATCH = 200


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed send, as recorded: the most attempts any of its rows has had, and whether
    any row was given up (marked ``failed``)."""

    attempts: int
    gave_up: bool


def pending_rows(sessions: sessionmaker[Session], channel: str, *,
                 limit: int = BATCH) -> list[DueRow]:
    """The channel's pending rows, oldest first, at most ``limit`` (claimed ones included:
    the caller's plan waits for them)."""
    with _mapped("cannot read pending notifications"), sessions() as session:
        rows = session.execute(
            select(Notification.id, Notification.line_id, Notification.created_at,
                   Notification.payload, Notification.title, Notification.body,
                   Notification.next_attempt_at, Notification.claimed_until,
                   Notification.deferred)
            .where(Notification.state == "pending", Notification.channel == channel)
            .order_by(Notification.id)
            .limit(limit)
        ).all()
    return [
        DueRow(id=row_id, line_id=line_id, created_at=created, entry=entry,
               message=None if entry else Message(
                   title=title, body=body,
                   body_format=(payload or {}).get("body_format", "text")),
               next_attempt_at=next_at, claimed_until=claimed, deferred=deferred)
        for row_id, line_id, created, payload, title, body, next_at, claimed, deferred
        in rows
        # A line notice's payload is its Entry; a finished message's only its format.
        for entry in [Entry.from_json(payload) if payload and "kind" in payload else None]
    ]


def hold(sessions: sessionmaker[Session], *, defer: Sequence[int], until: datetime | None,
         drop: Sequence[int], now: datetime) -> None:
    """Park the ``defer`` rows until ``until`` (quiet hours), and retire the ``drop`` rows
    as moot; rows claimed meanwhile or no longer pending are left alone."""
    with _mapped("cannot hold notifications"), sessions.begin() as session:
        if defer and until is not None:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(defer), Notification.state == "pending",
                       _unclaimed(now))
                .values(deferred=True, next_attempt_at=until)
                .execution_options(synchronize_session=False))
        if drop:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(drop), Notification.state == "pending",
                       _unclaimed(now))
                .values(state="dropped", last_error="moot after quiet hours")
                .execution_options(synchronize_session=False))


def claim(sessions: sessionmaker[Session], row_ids: Sequence[int], *, now: datetime,
          ttl: timedelta) -> set[int]:
    """Claim those of ``row_ids`` that are pending and under no live claim, until
    ``now + ttl``, counting an attempt; returns the ids now claimed (the UPDATE's own
    rows: anything another deliverer holds is not among them)."""
    with _mapped("cannot claim notifications"), sessions.begin() as session:
        claimed = session.scalars(
            update(Notification)
            .where(Notification.id.in_(row_ids), Notification.state == "pending",
                   _unclaimed(now))
            .values(claimed_until=now + ttl, attempts=Notification.attempts + 1)
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        ).all()
        return set(claimed)


def record_success(sessions: sessionmaker[Session], row_ids: Sequence[int], *,
                   now: datetime) -> None:
    """Mark the rows ``delivered`` at ``now``: they are never sent again."""
    with _mapped("cannot record a delivery"), sessions.begin() as session:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(row_ids))
            .values(state="delivered", delivered_at=now, claimed_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        )


def record_failure(
    sessions: sessionmaker[Session], row_ids: Sequence[int], *, error: str, now: datetime,
    backoff: Callable[[int], timedelta], give_up_after: timedelta,
) -> Failure:
    """Release the rows' claim with ``error``, due again after ``backoff(attempts)``; a row
    created ``give_up_after`` or longer before ``now`` is marked ``failed`` instead."""
    attempts, gave_up = 0, False
    with _mapped("cannot record a failed delivery"), sessions.begin() as session:
        for row in session.scalars(select(Notification).where(Notification.id.in_(row_ids))):
            attempts = max(attempts, row.attempts)
            row.last_error = error[:2000]
            row.claimed_until = None
            row.next_attempt_at = now + backoff(row.attempts)
            if now - row.created_at >= give_up_after:
                row.state = "failed"
                gave_up = True
    return Failure(attempts=attempts, gave_up=gave_up)


def count_pending(sessions: sessionmaker[Session]) -> int:
    """Pending rows over every channel."""
    with _mapped("cannot count pending notifications"), sessions() as session:
        return session.scalar(
            select(func.count()).select_from(Notification)
            .where(Notification.state == "pending")
        ) or 0


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(Notification.claimed_until.is_(None), Notification.claimed_until <= now)


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    """SQLAlchemy appends the statement and its parameters; the first line says what failed."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
