"""The write side of a poll: load the known lines, commit one poll's changes atomically.

``commit_poll`` is the heart of the outbox guarantee: the poll row, the lines that changed,
their transitions and the pending notifications for them are one transaction. Either all
of it is durable or none of it is, so a change is never recorded without its alerts (or
alerted without being recorded).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import LineState, Message, Notice, Transition
from monitor.errors import StoreError
from monitor.store.bulk import insert_rows
from monitor.store.schema import Line, Notification, Poll, TransitionRow

_T = TypeVar("_T")
_LINES: Table = Line.__table__  # type: ignore[assignment]
_TRANSITIONS: Table = TransitionRow.__table__  # type: ignore[assignment]
_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]
_UPDATE_LINE = (
    update(_LINES)
    .where(_LINES.c.account == bindparam("k_account"), _LINES.c.line_id == bindparam("k_line_id"))
    .values({c: bindparam(c) for c in ("phone_number", "status", "doc_url", "since", "present",
                                       "alerted_channels", "updated_at")})
)


@dataclass(frozen=True, slots=True)
class PollRecord:
    account: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    line_count: int | None = None
    skipped: int = 0
    error: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    notice: Notice
    message: Message
    # Held until then (e.g. waiting up to audit_wait for a diagnosis); None: send now.
    not_before: datetime | None = None


def load_lines(sessions: sessionmaker[Session], account: str) -> dict[str, LineState]:
    """Every line ever seen in ``account`` (removed ones too), keyed by line id."""
    try:
        with sessions() as session:
            rows = session.execute(select(Line).where(Line.account == account)).scalars()
            return {row.line_id: _to_state(row) for row in rows}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot load lines of account {account}: {exc}") from exc


def record_failed_poll(sessions: sessionmaker[Session], poll: PollRecord) -> None:
    try:
        with sessions.begin() as session:
            session.add(_poll_row(poll))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record failed poll of {poll.account}: {exc}") from exc


def commit_poll(
    sessions: sessionmaker[Session],
    poll: PollRecord,
    *,
    new_lines: Sequence[LineState],
    changed_lines: Sequence[LineState],
    transitions: Sequence[Transition],
    outgoing: Sequence[Outgoing],
    source: str = "poll",
) -> int:
    """Write one successful poll and everything it changed, in one transaction.

    Returns the poll id. Raises StoreError (and nothing is written) if the database fails.
    """
    now = poll.finished_at
    try:
        with sessions.begin() as session:
            poll_row = _poll_row(poll, changes=len(transitions))
            session.add(poll_row)
            session.flush()
            write_changes(session, now=now, new_lines=new_lines, changed_lines=changed_lines,
                          transitions=transitions, outgoing=outgoing, poll_id=poll_row.id,
                          source=source)
            return poll_row.id
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record poll of {poll.account}: {exc}") from exc


def write_changes(
    session: Session,
    *,
    now: datetime,
    new_lines: Sequence[LineState] = (),
    changed_lines: Sequence[LineState],
    transitions: Sequence[Transition],
    outgoing: Sequence[Outgoing],
    poll_id: int | None,
    source: str,
) -> None:
    """Lines, transitions and their notifications, inside the caller's transaction.

    Shared by polls and webhooks (``source`` tags which one saw the change), so both
    write exactly the same rows.
    """
    # Core executemany in chunks: a cold start writes 100k lines without holding
    # 100k parameter dicts, and without the ORM's per-row bookkeeping.
    connection = session.connection()
    for lines in _chunks(new_lines):
        insert_rows(connection, _LINES, _LINE_COLUMNS, [_line_row(s, now) for s in lines])
    for lines in _chunks(changed_lines):
        session.execute(_UPDATE_LINE, [_line_update(s, now) for s in lines])
    transition_ids = _insert_transitions(session, transitions, outgoing, poll_id, source)
    for batch in _chunks(outgoing):
        session.execute(_NOTIFICATIONS.insert(),
                        [_notification_values(o, transition_ids, now) for o in batch])


def _insert_transitions(
    session: Session,
    transitions: Sequence[Transition],
    outgoing: Sequence[Outgoing],
    poll_id: int | None,
    source: str,
) -> dict[int, int]:
    """Insert transitions; map those that have notifications (by identity) to their row id.

    Only transitions that notifications point at need their ids back (RETURNING); the
    rest (a cold start's first sightings, mostly) go in as plain executemany batches.
    """
    announced = {id(o.notice.transition) for o in outgoing}
    ids: dict[int, int] = {}
    with_ids = [t for t in transitions if id(t) in announced]
    if with_ids:
        rows = session.scalars(
            insert(TransitionRow).returning(TransitionRow.id, sort_by_parameter_order=True),
            [_transition_values(t, poll_id, source) for t in with_ids],
        ).all()
        ids = {id(t): row_id for t, row_id in zip(with_ids, rows, strict=True)}
    quiet = [t for t in transitions if id(t) not in announced]
    connection = session.connection()
    for chunk in _chunks(quiet):
        insert_rows(connection, _TRANSITIONS, _TRANSITION_COLUMNS,
                    [tuple(_transition_values(t, poll_id, source).values()) for t in chunk])
    return ids


def _transition_values(t: Transition, poll_id: int | None, source: str) -> dict[str, object]:
    return {
        "account": t.account,
        "line_id": t.line_id,
        "phone_number": t.phone_number,
        "kind": t.kind.value,
        "from_status": t.from_status,
        "to_status": t.to_status,
        "doc_url": t.doc_url,
        "at": t.at,
        "previous_since": t.previous_since,
        "poll_id": poll_id,
        "source": source,
    }


def _chunks(items: Sequence[_T], size: int = 5000) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _notification_values(
    outgoing: Outgoing, transition_ids: dict[int, int], now: datetime
) -> dict[str, object]:
    notice = outgoing.notice
    return {
        "transition_id": transition_ids[id(notice.transition)],
        "account": notice.transition.account,
        "line_id": notice.transition.line_id,
        "channel": notice.channel,
        "kind": notice.kind.value,
        "title": outgoing.message.title,
        "body": outgoing.message.body,
        "created_at": now,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": outgoing.not_before or now,
    }


def _poll_row(poll: PollRecord, *, changes: int = 0) -> Poll:
    return Poll(
        account=poll.account,
        started_at=poll.started_at,
        finished_at=poll.finished_at,
        outcome=poll.outcome,
        line_count=poll.line_count,
        changes=changes,
        skipped=poll.skipped,
        error=poll.error,
        trace_id=poll.trace_id,
    )


_LINE_COLUMNS = ("account", "line_id", "phone_number", "status", "doc_url", "since", "present",
                 "alerted_channels", "updated_at")
_TRANSITION_COLUMNS = ("account", "line_id", "phone_number", "kind", "from_status",
                       "to_status", "doc_url", "at", "previous_since", "poll_id", "source")


def _line_row(state: LineState, now: datetime) -> tuple[object, ...]:
    return (state.account, state.line_id, state.phone_number, state.status, state.doc_url,
            state.since, state.present, sorted(state.alerted_channels), now)


def _line_update(state: LineState, now: datetime) -> dict[str, object]:
    """Parameters for _UPDATE_LINE: the key columns under their bind names."""
    values = dict(zip(_LINE_COLUMNS, _line_row(state, now), strict=True))
    values["k_account"] = values.pop("account")
    values["k_line_id"] = values.pop("line_id")
    return values


def _to_state(row: Line) -> LineState:
    return LineState(
        account=row.account,
        line_id=row.line_id,
        phone_number=row.phone_number,
        status=row.status,
        doc_url=row.doc_url,
        since=row.since,
        present=row.present,
        alerted_channels=frozenset(row.alerted_channels or ()),
        service_status=row.service_status,
        service_changed_at=row.service_changed_at,
    )
