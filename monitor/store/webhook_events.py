"""The webhook event log: record each event once, then apply it exactly once.

``record_event`` relies on the unique ``event_id``: of any number of deliveries of one
event (Linq's retries, or several replicas behind a load balancer), exactly one INSERT
wins; the rest are duplicates and change nothing.

``commit_event`` settles an event in the same transaction as the changes it causes
(lines, transitions tagged ``source='webhook'``, notifications), and only if the event is
still in the state the caller read (a conditional UPDATE, row count checked): if two
workers race on one pending event, one commits and the other's whole transaction is
rolled back. ``commit_events`` does the same for a batch: one transaction, all or
nothing.

Reading is by index, so a backlog of events for numbers no poll has shown costs nothing
per new event: ``pending_events`` reads only events not yet tried (oldest first);
``unmatched_numbers`` and ``unmatched_for`` find the unmatched events a poll's new lines
can now take; ``expire_unmatched`` settles those too old to matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
    event_type: str = ""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one event is settled, and what it changed (``line`` None: no line changed)."""

    event: StoredEvent
    state: str
    note: str | None = None
    line: LineState | None = None
    transitions: Sequence[Transition] = ()
    outgoing: Sequence[Outgoing] = ()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A delivery to record (``record_events``)."""

    event_id: str
    account: str
    event_type: str
    payload: bytes
    received_at: datetime
    state: str = "pending"
    phone_number: str | None = None


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
    phone_number: str | None = None,
) -> int | None:
    """Insert the event; its row id, or None if this event id was recorded before."""
    try:
        with sessions.begin() as session:
            row = WebhookEvent(event_id=event_id, account=account, event_type=event_type,
                               payload=payload.decode("utf-8", errors="replace"),
                               received_at=received_at, state=state,
                               phone_number=phone_number)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None  # the unique event_id: already recorded
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record webhook event: {type(exc).__name__}") from exc


def record_events(sessions: sessionmaker[Session], events: Sequence[NewEvent]
                  ) -> list[int | None]:
    """Insert a batch of events in one transaction (group commit: a burst of deliveries
    costs one commit per batch, not one each). Per event, in order: its row id, or None if
    its event id was recorded before (or earlier in the same batch)."""
    seen: set[str] = set()
    fresh: list[NewEvent] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            fresh.append(event)
    try:
        with sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            # executemany of one cached statement (SQLAlchemy batches it as "insert many
            # values"): a multi-row VALUES literal would be compiled anew for each batch.
            statement = (insert(WebhookEvent).on_conflict_do_nothing(index_elements=["event_id"])
                         .returning(WebhookEvent.event_id, WebhookEvent.id))
            inserted: dict[str, int] = dict(session.execute(statement, [  # type: ignore[arg-type]
                {"event_id": e.event_id, "account": e.account, "event_type": e.event_type,
                 "payload": e.payload.decode("utf-8", errors="replace"),
                 "received_at": e.received_at, "state": e.state,
                 "phone_number": e.phone_number} for e in fresh]).all())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record webhook events: {type(exc).__name__}") from exc
    ids: list[int | None] = []
    for event in events:
        ids.append(inserted.pop(event.event_id, None))  # a repeat in the batch: None
    return ids


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
            return [_stored(r) for r in rows]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read webhook events: {type(exc).__name__}") from exc


def pending_events(sessions: sessionmaker[Session], account: str, *, limit: int = 500
                   ) -> list[StoredEvent]:
    """Events of ``account`` not tried yet, oldest first (unmatched ones are not read:
    a backlog of them never delays a new event)."""
    try:
        with sessions() as session:
            rows = session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.state == "pending", WebhookEvent.account == account)
                .order_by(WebhookEvent.id).limit(limit)
            ).all()
            return [_stored(r) for r in rows]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read webhook events: {type(exc).__name__}") from exc


def unmatched_numbers(sessions: sessionmaker[Session], account: str) -> set[str]:
    """The phone numbers unmatched events of ``account`` are waiting for."""
    try:
        with sessions() as session:
            found = session.scalars(
                select(WebhookEvent.phone_number).distinct()
                .where(WebhookEvent.account == account, WebhookEvent.state == "unmatched",
                       WebhookEvent.phone_number.is_not(None))
            ).all()
            return {number for number in found if number is not None}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read webhook events: {type(exc).__name__}") from exc


def unmatched_for(sessions: sessionmaker[Session], account: str, numbers: Sequence[str], *,
                  limit: int = 500) -> list[StoredEvent]:
    """Unmatched events of ``account`` for any of ``numbers``, oldest first."""
    found: list[StoredEvent] = []
    try:
        with sessions() as session:
            for start in range(0, len(numbers), 500):
                found += [_stored(r) for r in session.scalars(
                    select(WebhookEvent)
                    .where(WebhookEvent.account == account,
                           WebhookEvent.state == "unmatched",
                           WebhookEvent.phone_number.in_(numbers[start:start + 500]))
                    .order_by(WebhookEvent.id).limit(limit)
                ).all()]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read webhook events: {type(exc).__name__}") from exc
    return sorted(found, key=lambda e: e.id)[:limit]


def expire_unmatched(sessions: sessionmaker[Session], account: str, *, received_before: datetime,
                     now: datetime) -> int:
    """Settle unmatched events of ``account`` received before ``received_before`` as
    ``expired``; how many."""
    try:
        with sessions.begin() as session:
            return session.execute(  # type: ignore[attr-defined, no-any-return]
                update(WebhookEvent)
                .where(WebhookEvent.account == account, WebhookEvent.state == "unmatched",
                       WebhookEvent.received_at < received_before)
                .values(state="expired", note="no line with this number appeared in time",
                        processed_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot expire webhook events: {type(exc).__name__}") from exc


def _stored(row: WebhookEvent) -> StoredEvent:
    return StoredEvent(row.id, row.account, row.state, row.payload.encode(), row.received_at,
                       row.event_type)


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


def commit_events(
    sessions: sessionmaker[Session],
    settled: Sequence[Settlement],
    *,
    now: datetime,
    fence: Fence | None = None,
) -> bool:
    """Settle a batch of events and write what they changed, in one transaction.

    All or nothing: returns False (nothing written) if any event was no longer in the state
    it was read in (another worker settled it; the caller re-reads). With ``fence``,
    raises LeaseLost and writes nothing if another replica holds the account.
    """
    if not settled:
        return True
    try:
        with sessions.begin() as session:
            if fence is not None:
                check_fence(session, fence)
            # One conditional UPDATE per (from, to, note): a batch is a few statements.
            groups: dict[tuple[str, str, str | None], list[int]] = {}
            for item in settled:
                groups.setdefault((item.event.state, item.state, item.note),
                                  []).append(item.event.id)
            for (before, after, note), ids in groups.items():
                claimed = session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id.in_(ids), WebhookEvent.state == before)
                    .values(state=after, note=note, processed_at=now)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                if claimed != len(ids):
                    raise _Settled
            lines = {i.line.line_id: i.line for i in settled if i.line is not None}
            if lines:
                write_changes(session, now=now, changed_lines=list(lines.values()),
                              transitions=[t for i in settled for t in i.transitions],
                              outgoing=[o for i in settled for o in i.outgoing],
                              poll_id=None, source="webhook")
            return True
    except _Settled:
        return False
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot apply webhook events: {type(exc).__name__}") from exc
