"""The read side, for the CLI: current lines, history, last polls, outbox health."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from monitor.core.report import Change
from monitor.store.schema import (
    Line,
    Notification,
    Poll,
    PollSummary,
    TransitionRow,
    as_utc,
)


@dataclass(frozen=True, slots=True)
class LastPoll:
    account: str
    finished_at: datetime
    outcome: str
    line_count: int | None
    error: str | None
    last_success_at: datetime | None


def current_lines(session: Session, *, include_removed: bool = False) -> list[Line]:
    query = select(Line).order_by(Line.account, Line.phone_number)
    if not include_removed:
        query = query.where(Line.present.is_(True))
    return list(session.scalars(query))


def history(
    session: Session, *, line: str | None = None, since: datetime | None = None,
    limit: int = 1000,
) -> list[TransitionRow]:
    """Recorded changes, newest first. ``line`` matches a phone number or a line id."""
    query = select(TransitionRow).order_by(TransitionRow.id.desc()).limit(limit)
    return list(session.scalars(_history_where(query, line=line, since=since)))


def history_count(session: Session, *, line: str | None = None,
                  since: datetime | None = None) -> int:
    """How many changes ``history`` would return without a limit."""
    query = select(func.count()).select_from(TransitionRow)
    return int(session.scalar(_history_where(query, line=line, since=since)) or 0)


def _history_where(query: Any, *, line: str | None, since: datetime | None) -> Any:
    if line:
        query = query.where(or_(TransitionRow.phone_number == line, TransitionRow.line_id == line))
    if since:
        query = query.where(TransitionRow.at >= since)
    return query


def alerts_for(session: Session, transition_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """Per recorded change: (channel, state) of each notification it caused: ``delivered``,
    ``pending``, ``failed``, ``silenced`` (recorded, not sent) or ``dropped``."""
    found: dict[int, list[tuple[str, str]]] = {}
    for start in range(0, len(transition_ids), 500):
        rows = session.execute(
            select(Notification.transition_id, Notification.channel, Notification.state)
            .where(Notification.transition_id.in_(transition_ids[start:start + 500]))
            .order_by(Notification.id)
        ).all()
        for transition_id, channel, state in rows:
            if transition_id is not None:
                found.setdefault(transition_id, []).append((channel, state))
    return found


def status_at_poll(session: Session, *, account: str, line_id: str, poll_id: int) -> str | None:
    """The line's status as of poll ``poll_id`` (None if not yet seen, or removed then)."""
    row = session.scalars(
        select(TransitionRow)
        .where(TransitionRow.account == account, TransitionRow.line_id == line_id,
               TransitionRow.poll_id <= poll_id, TransitionRow.kind != "service")
        .order_by(TransitionRow.id.desc())
        .limit(1)
    ).first()
    if row is None or row.kind == "removed":
        return None
    return row.to_status


def last_polls(session: Session) -> list[LastPoll]:
    latest = select(Poll.account, func.max(Poll.id).label("id")).group_by(Poll.account).subquery()
    success = (
        select(Poll.account, func.max(Poll.finished_at).label("at"))
        .where(Poll.outcome == "success").group_by(Poll.account).subquery()
    )
    rows = session.execute(
        select(Poll, success.c.at)
        .join(latest, Poll.id == latest.c.id)
        .outerjoin(success, success.c.account == Poll.account)
        .order_by(Poll.account)
    ).all()
    return [
        LastPoll(p.account, p.finished_at, p.outcome, p.line_count, p.error,
                 as_utc(at))
        for p, at in rows
    ]


def outbox_counts(session: Session) -> dict[str, int]:
    """Notifications per state: pending, delivered, failed (gave up)."""
    rows = session.execute(
        select(Notification.state, func.count()).group_by(Notification.state)
    ).all()
    return {state: count for state, count in rows}


def failed_notifications(session: Session, *, limit: int = 20) -> list[Notification]:
    return list(session.scalars(
        select(Notification).where(Notification.state == "failed")
        .order_by(Notification.id.desc()).limit(limit)
    ))



@dataclass(frozen=True, slots=True)
class LineHistory:
    account: str
    line_id: str
    phone_number: str
    current: str | None  # None once removed from the account
    initial: str | None  # status at the window start
    changes: list[Change]


def line_histories(session: Session, *, start: datetime) -> list[LineHistory]:
    """Every line's status at ``start`` and its changes since, for the report."""
    before = (
        select(func.max(TransitionRow.id))
        .where(TransitionRow.at < start, TransitionRow.kind != "service")
        .group_by(TransitionRow.account, TransitionRow.line_id)
    )
    initial = {
        (r.account, r.line_id): None if r.kind == "removed" else r.to_status
        for r in session.scalars(select(TransitionRow).where(TransitionRow.id.in_(before)))
    }
    changes: dict[tuple[str, str], list[Change]] = {}
    for r in session.scalars(select(TransitionRow)
                             .where(TransitionRow.at >= start, TransitionRow.kind != "service")
                             .order_by(TransitionRow.id)):
        changes.setdefault((r.account, r.line_id), []).append(
            Change(r.at, None if r.kind == "removed" else r.to_status))
    return [
        LineHistory(line.account, line.line_id, line.phone_number,
                    line.status if line.present else None,
                    initial.get((line.account, line.line_id)),
                    changes.get((line.account, line.line_id), []))
        for line in current_lines(session, include_removed=True)
        if (line.account, line.line_id) in initial or (line.account, line.line_id) in changes
    ]


def first_polls(session: Session) -> dict[str, datetime]:
    """Per account, when the monitor first watched it: the end of its first successful
    poll (when its first statuses were recorded), or the UTC day of the oldest pruned
    one (retention keeps only the day)."""
    first = {account: as_utc(at) for account, at in session.execute(
        select(Poll.account, func.min(Poll.finished_at))
        .where(Poll.outcome == "success").group_by(Poll.account))}
    for account, day in session.execute(
            select(PollSummary.account, func.min(PollSummary.day))
            .where(PollSummary.successes > 0).group_by(PollSummary.account)):
        pruned = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
        at = first.get(account)
        first[account] = pruned if at is None or pruned < at else at
    return {account: at for account, at in first.items() if at is not None}
