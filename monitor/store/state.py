"""The write side of a poll: load the known lines, commit one poll's changes atomically.

``commit_poll`` is the heart of the outbox guarantee: the poll row, the lines that changed,
their transitions and the pending notifications for them are one transaction. Either all
of it is durable or none of it is, so a change is never recorded without its alerts (or
alerted without being recorded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import (
    NO_TOLD,
    Flap,
    LineState,
    Message,
    Notice,
    Pending,
    Told,
    Transition,
)
from monitor.errors import StoreError
from monitor.store.bulk import insert_rows
from monitor.store.leases import Fence, check_fence
from monitor.store.schema import Line, Notification, Poll, TransitionRow

_T = TypeVar("_T")
_LINES: Table = Line.__table__  # type: ignore[assignment]
_TRANSITIONS: Table = TransitionRow.__table__  # type: ignore[assignment]
_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]
_LINE_COLUMNS = ("account", "line_id", "phone_number", "status", "doc_url", "since", "present",
                 "updated_at", "told", "previous_status", "previous_since", "degraded_since",
                 "pending_status", "pending_count", "pending_since", "flap", "service_status",
                 "service_changed_at", "line_type")
_UPDATE_LINE = (
    update(_LINES)
    .where(_LINES.c.account == bindparam("k_account"), _LINES.c.line_id == bindparam("k_line_id"))
    .values({c: bindparam(c) for c in _LINE_COLUMNS[2:]})
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
    """A notice to queue; ``message`` is its text as one message (kept for ``history``)."""

    notice: Notice
    message: Message
    # Held until then (e.g. waiting up to audit_wait for a diagnosis); None: send now.
    not_before: datetime | None = None


def load_lines(sessions: sessionmaker[Session], account: str, *,
               updated_after: datetime | None = None) -> dict[str, LineState]:
    """Every line ever seen in ``account`` (removed ones too), keyed by line id; with
    ``updated_after``, only those written since then.

    Read as plain rows in batches rather than ORM objects (100k of those cost more than
    the states they become), with repeated values (status, doc URL, ``since``, channel
    set) shared between states instead of one copy per row: after a restart at 100k lines
    the states weigh the same as those built by polling.
    """
    query = (select(Line.line_id, Line.phone_number, Line.status, Line.doc_url, Line.since,
                    Line.present, Line.told, Line.previous_status, Line.previous_since,
                    Line.degraded_since, Line.pending_status, Line.pending_count,
                    Line.pending_since, Line.flap, Line.service_status,
                    Line.service_changed_at, Line.line_type)
             .where(Line.account == account).execution_options(yield_per=5000))
    if updated_after is not None:
        query = query.where(Line.updated_at > updated_after)
    shared: dict[Any, Any] = {}

    def share(value: Any) -> Any:
        return shared.setdefault(value, value)

    try:
        with sessions() as session:
            return {
                line_id: LineState(
                    account=account, line_id=line_id, phone_number=phone,
                    status=share(status), doc_url=share(doc_url), since=share(since),
                    present=present, told=_told(told) if told else NO_TOLD,
                    previous_status=share(prev_status), previous_since=share(prev_since),
                    degraded_since=share(degraded_since),
                    pending=(Pending(pending_status, pending_count or 0, pending_since)
                             if pending_status is not None and pending_since is not None
                             else None),
                    flap=None if flap is None else _flap(flap),
                    service_status=share(service_status), service_changed_at=service_at,
                    line_type=share(line_type))
                for (line_id, phone, status, doc_url, since, present, told, prev_status,
                     prev_since, degraded_since, pending_status, pending_count, pending_since,
                     flap, service_status, service_at, line_type) in session.execute(query)
            }
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
    fence: Fence | None = None,
) -> int:
    """Write one successful poll and everything it changed, in one transaction.

    With ``fence`` (the account's lease), the write happens only if that lease is still
    ours: a replica that lost it meanwhile gets LeaseLost and writes nothing.
    Returns the poll id. Raises StoreError (and nothing is written) if the database fails.
    """
    now = poll.finished_at
    try:
        with sessions.begin() as session:
            if fence is not None:
                check_fence(session, fence)
            poll_row = _poll_row(poll, changes=len(transitions))
            poll_row.replica = fence.holder if fence is not None else None
            session.add(poll_row)
            session.flush()
            write_changes(session, now=now, new_lines=new_lines, changed_lines=changed_lines,
                          transitions=transitions, outgoing=outgoing, poll_id=poll_row.id,
                          source=source)
            return poll_row.id
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record poll of {poll.account}: {exc}") from exc


def commit_notices(
    sessions: sessionmaker[Session],
    *,
    changed_lines: Sequence[LineState],
    outgoing: Sequence[Outgoing],
    now: datetime,
    fence: Fence | None = None,
) -> None:
    """Write what the policy tick decided (lines' ``told`` and the notices) atomically;
    with ``fence``, only while that lease is ours (else LeaseLost, nothing written)."""
    try:
        with sessions.begin() as session:
            if fence is not None:
                check_fence(session, fence)
            write_changes(session, now=now, changed_lines=changed_lines, transitions=(),
                          outgoing=outgoing, poll_id=None, source="policy")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record notices: {exc}") from exc


def commit_changes(
    sessions: sessionmaker[Session],
    *,
    changed_lines: Sequence[LineState],
    transitions: Sequence[Transition],
    outgoing: Sequence[Outgoing],
    now: datetime,
    source: str,
    fence: Fence | None = None,
) -> None:
    """Write changes no poll or webhook brought (``source`` "chats": the WATCH early
    warning): lines, their transitions and notifications in one transaction; with
    ``fence``, only while that lease is ours (else LeaseLost, nothing written). Raises
    StoreError (nothing written) if the database fails."""
    try:
        with sessions.begin() as session:
            if fence is not None:
                check_fence(session, fence)
            write_changes(session, now=now, changed_lines=changed_lines,
                          transitions=transitions, outgoing=outgoing, poll_id=None,
                          source=source)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record {source} changes: {exc}") from exc
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
    announced = {id(o.notice.transition) for o in outgoing if o.notice.transition is not None}
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
    transition = notice.transition
    return {
        "transition_id": None if transition is None else transition_ids.get(id(transition)),
        "account": notice.entry.account,
        "line_id": notice.entry.line_id,
        "channel": notice.channel,
        "kind": notice.kind.value,
        "title": outgoing.message.title,
        "body": outgoing.message.body,
        "created_at": now,
        "state": "silenced" if notice.silenced else "pending",
        "attempts": 0,
        "next_attempt_at": outgoing.not_before or now,
        "payload": notice.entry.to_json(),
        "deferred": False,
        "dedupe_key": None,
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


_TRANSITION_COLUMNS = ("account", "line_id", "phone_number", "kind", "from_status",
                       "to_status", "doc_url", "at", "previous_since", "poll_id", "source")


def _line_row(state: LineState, now: datetime) -> tuple[object, ...]:
    pending = state.pending
    return (state.account, state.line_id, state.phone_number, state.status, state.doc_url,
            state.since, state.present, now, _told_json(state.told), state.previous_status,
            state.previous_since, state.degraded_since,
            pending.status if pending else None, pending.count if pending else None,
            pending.since if pending else None, _flap_json(state.flap), state.service_status,
            state.service_changed_at, state.line_type)


def _told_json(told: Mapping[str, Told]) -> dict[str, Any] | None:
    if not told:
        return None
    return {name: {"status": t.status, "at": t.at.isoformat(), "silenced": t.silenced,
                   **({"recovery_owed": True} if t.recovery_owed else {})}
            for name, t in sorted(told.items())}


def _flap_json(flap: Flap | None) -> dict[str, Any] | None:
    if flap is None:
        return None
    return {"changes": [[at.isoformat(), status] for at, status in flap.changes],
            "flapping": flap.flapping, "channels": sorted(flap.channels)}


def _told(data: Mapping[str, Any]) -> dict[str, Told]:
    return {name: Told(t["status"], _moment(t["at"]), bool(t.get("silenced")),
                       bool(t.get("recovery_owed")))
            for name, t in data.items()}


def _flap(data: Mapping[str, Any]) -> Flap:
    return Flap(changes=tuple((_moment(at), status) for at, status in data["changes"]),
                flapping=bool(data["flapping"]), channels=frozenset(data.get("channels") or ()))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _line_update(state: LineState, now: datetime) -> dict[str, object]:
    """Parameters for _UPDATE_LINE: the key columns under their bind names."""
    values = dict(zip(_LINE_COLUMNS, _line_row(state, now), strict=True))
    values["k_account"] = values.pop("account")
    values["k_line_id"] = values.pop("line_id")
    return values

