"""The webhook event log: record each event once, then apply it exactly once.

``record_event`` relies on the unique ``event_id``: of any number of deliveries of one
event (Linq's retries, or several replicas behind a load balancer), exactly one INSERT
wins; the rest are duplicates and change nothing.

``commit_event`` settles an event in the same transaction as the changes it causes
(lines, transitions tagged ``source='webhook'``, notifications), and only if the event is
still in the state the caller read (a conditional UPDATE, row count checked): if two
workers race on one pending event, one commits and the other's whole transaction is
rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import LineState, Transition
from monitor.errors import StoreError
from monitor.store.leases import Fence, check_fence
from monitor.store.schema import WebhookEvent
from monitor.store.state import Outgoing, write_changes

OPEN_STATES = ("pending", "unmatched")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    account: str
    state: str
    payload: bytes
    received_at: datetime


class _Settled(Exception):
    """Another worker settled the event first: roll this transaction back."""


def record_event(
    sessions: sessionmaker[Session],
    *,
    event_id: str,
    account: str,
    event_type: str,
    payload: bytes,
    received_at: datetime,
    state: str = "pending",
) -> int | None:
    """Insert the event; its row id, or None if this event id was recorded before."""
    try:
        with sessions.begin() as session:
            row = WebhookEvent(event_id=event_id, account=account, event_type=event_type,
                               payload=payload.decode("utf-8", errors="replace"),
                               received_at=received_at, state=state)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None  # the unique event_id: already recorded
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record webhook event: {type(exc).__name__}") from exc


def open_events(sessions: sessionmaker[Session], account: str, *, limit: int = 500
                ) -> list[StoredEvent]:
    """Events of ``account`` not yet applied (pending or unmatched), oldest first."""
    try:
        with sessions() as session:
            rows = session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.account == account, WebhookEvent.state.in_(OPEN_STATES))
                .order_by(WebhookEvent.id).limit(limit)
            ).all()
            return [StoredEvent(r.id, r.account, r.state, r.payload.encode(), r.received_at)
                    for r in rows]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read webhook events: {type(exc).__name__}") from exc


def commit_event(
    sessions: sessionmaker[Session],
    event: StoredEvent,
    *,
    state: str,
    note: str | None,
    now: datetime,
    line: LineState | None = None,
    transitions: Sequence[Transition] = (),
    outgoing: Sequence[Outgoing] = (),
    fence: Fence | None = None,
) -> bool:
    """Settle ``event`` as ``state`` and write what it changed, in one transaction.

    ``line`` is the line's new state (None: no line changed). Returns False (nothing
    written) if the event was no longer in the state it was read in. With ``fence`` (the
    account's lease), raises LeaseLost and writes nothing if another replica holds it.
    """
    try:
        with sessions.begin() as session:
            if fence is not None:
                check_fence(session, fence)
            claimed = session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id, WebhookEvent.state == event.state)
                .values(state=state, note=note, processed_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if claimed != 1:
                raise _Settled
            if line is not None:
                write_changes(session, now=now, changed_lines=[line], transitions=transitions,
                              outgoing=outgoing, poll_id=None, source="webhook")
            return True
    except _Settled:
        return False
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot apply webhook event: {type(exc).__name__}") from exc
