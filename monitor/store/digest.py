"""The digest's reads: what the database knows for one digest window, as plain values.

Lines not HEALTHY now, the status changes of the window, every line's history over it (for
the time accounting) and how each account's polls went. Names and labels live in the
config, not here: the values carry none, and the service fills them in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core import status as st
from monitor.core.digest import DegradedLine, DigestChange, PollHealth
from monitor.errors import StoreError
from monitor.store import queries
from monitor.store.queries import LineHistory
from monitor.store.schema import Line, Poll, TransitionRow, as_utc


@dataclass(frozen=True, slots=True)
class DigestRows:
    """One window's reads, for the accounts asked (every line, whatever its labels)."""

    degraded: list[DegradedLine]  # worst first, then the longest-degraded
    changes: list[DigestChange]  # newest first, at most the limit asked
    change_count: int  # every change of the window, beyond the limit too
    histories: list[LineHistory]
    polls: tuple[PollHealth, ...]  # per account, every account asked included


def read_digest(
    sessions: sessionmaker[Session], *, start: datetime, end: datetime,
    accounts: Collection[str] | None, max_changes: int | None,
) -> DigestRows:
    """Read ``[start, end]`` for ``accounts`` (None: all), keeping at most ``max_changes``
    changes (None: all). Raises StoreError if the database fails. Reads only."""
    wanted = None if accounts is None else set(accounts)
    try:
        with sessions() as session:
            degraded = _degraded_lines(session, wanted)
            changes, change_count = _changes(session, wanted, start, end, max_changes)
            histories = [h for h in queries.line_histories(session, start=start)
                         if wanted is None or h.account in wanted]
            polls = _poll_health(session, wanted, start, end)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the digest: {exc}") from exc
    return DigestRows(degraded=degraded, changes=changes, change_count=change_count,
                      histories=histories, polls=polls)


def _degraded_lines(session: Session, wanted: set[str] | None) -> list[DegradedLine]:
    query = select(Line).where(Line.present.is_(True), Line.status != st.HEALTHY)
    if wanted is not None:
        query = query.where(Line.account.in_(wanted))
    lines = [DegradedLine(line.account, line.line_id, line.phone_number, line.status,
                          line.since, line.doc_url)
             for line in session.scalars(query)]
    # Worst first, then the longest-degraded.
    lines.sort(key=lambda line: (-st.rank(line.status), line.since, line.account,
                                 line.phone_number))
    return lines


def _changes(session: Session, wanted: set[str] | None, start: datetime, end: datetime,
             limit: int | None) -> tuple[list[DigestChange], int]:
    """Status changes in the window, newest first (at most ``limit``; None: all), and how
    many there were; a first sighting counts if degraded."""
    condition = and_(
        TransitionRow.at >= start, TransitionRow.at <= end,
        or_(TransitionRow.kind == "changed",
            and_(TransitionRow.kind == "first_seen", TransitionRow.to_status != st.HEALTHY)),
    )
    if wanted is not None:
        condition = and_(condition, TransitionRow.account.in_(wanted))
    count = session.scalar(select(func.count()).select_from(TransitionRow).where(condition))
    rows = session.scalars(select(TransitionRow).where(condition)
                           .order_by(TransitionRow.at.desc(), TransitionRow.id.desc())
                           .limit(limit))
    changes = [DigestChange(row.at, row.account, row.line_id, row.phone_number,
                            row.from_status, row.to_status,
                            row.at - row.previous_since if row.previous_since else None,
                            row.doc_url)
               for row in rows]
    return changes, int(count or 0)


def _poll_health(session: Session, wanted: set[str] | None, start: datetime, end: datetime
                 ) -> tuple[PollHealth, ...]:
    in_window = and_(Poll.finished_at >= start, Poll.finished_at <= end)
    counts: dict[str, dict[str, int]] = {account: {} for account in wanted or ()}
    for account, outcome, n in session.execute(
            select(Poll.account, Poll.outcome, func.count()).where(in_window)
            .group_by(Poll.account, Poll.outcome)):
        counts.setdefault(account, {})[outcome] = n
    last_success = {account: at for account, at in session.execute(
        select(Poll.account, func.max(Poll.finished_at))
        .where(Poll.outcome == "success", Poll.finished_at <= end).group_by(Poll.account))}
    newest_error = (select(func.max(Poll.id)).where(in_window, Poll.outcome == "error")
                    .group_by(Poll.account))
    last_error = {account: error for account, error in session.execute(
        select(Poll.account, Poll.error).where(Poll.id.in_(newest_error)))}
    return tuple(
        PollHealth(account, successes=outcomes.get("success", 0),
                   errors=outcomes.get("error", 0),
                   last_success=as_utc(last_success.get(account)),
                   last_error=last_error.get(account))
        for account, outcomes in sorted(counts.items())
        if wanted is None or account in wanted)
