"""The daily digest's content, read from the database: ``build_digest``.

Four questions over the last 24 hours: which lines are not HEALTHY now and since when,
what changed, how long each line spent AT_RISK or CRITICAL, and how the polls of each
account went. The time accounting is the ``report`` command's (``core.report``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core import status as st
from monitor.core.digest import DegradedLine, Digest, DigestChange, LineTime, PollHealth
from monitor.core.labels import selector_matches
from monitor.core.model import LineMeta
from monitor.core.report import account_line
from monitor.errors import StoreError
from monitor.store import queries
from monitor.store.schema import Line, Poll, TransitionRow, as_utc
from monitor.store.troubles import queue_once

if TYPE_CHECKING:
    from monitor.service.runtime import Runtime

__all__ = ["Digest", "LineMetaLookup", "build_digest"]

DIGEST_WINDOW = timedelta(hours=24)
# (account, line_id, phone_number) -> the line's name and labels from the config.
LineMetaLookup = Callable[[str, str, str], LineMeta | None]


def build_digest(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    accounts: Collection[str] | None = None,
    window: timedelta = DIGEST_WINDOW,
    max_changes: int = 200,
    line_meta: LineMetaLookup | None = None,
    labels: Mapping[str, str] | None = None,
) -> Digest:
    """Read one digest over ``[now - window, now]``, for ``accounts`` (None: all) and the
    lines carrying all of ``labels`` (a channel's selector; None or empty: every line).

    Every account in ``accounts`` appears in the poll health, even with no polls. At most
    ``max_changes`` changes are kept (newest first); the total is counted. Raises
    StoreError if the database fails. Reads only.
    """
    start = now - window
    wanted = None if accounts is None else set(accounts)

    def meta(account: str, line_id: str, phone_number: str) -> LineMeta | None:
        return line_meta(account, line_id, phone_number) if line_meta else None

    def selected(account: str, line_id: str, phone_number: str) -> bool:
        if not labels:
            return True
        found = meta(account, line_id, phone_number)
        return found is not None and selector_matches(labels, found.labels)

    try:
        with sessions() as session:
            degraded = [line for line in _degraded_lines(session, wanted)
                        if selected(line.account, line.line_id, line.phone_number)]
            # Labels live in the config, not the database: with a selector, every change
            # of the window is read and filtered here before the cap.
            changes, change_count = _changes(session, wanted, start, now,
                                             None if labels else max_changes)
            if labels:
                changes = [row for row in changes
                           if selected(row.account, row.line_id, row.phone_number)]
                change_count = len(changes)
                changes = changes[:max_changes]
            histories = [h for h in queries.line_histories(session, start=start)
                         if (wanted is None or h.account in wanted)
                         and selected(h.account, h.line_id, h.phone_number)]
            polls = _poll_health(session, wanted, start, now)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the digest: {exc}") from exc

    def name(account: str, line_id: str, phone_number: str) -> str | None:
        found = meta(account, line_id, phone_number)
        return found.name if found else None

    times: list[LineTime] = []
    for history in histories:
        report = account_line(history.initial, history.changes, start=start, end=now)
        other = sum(s for status, s in report.seconds.items() if not st.is_known(status))
        spent = LineTime(history.account, history.line_id, history.phone_number,
                         at_risk=timedelta(seconds=report.seconds.get(st.AT_RISK, 0.0)),
                         critical=timedelta(seconds=report.seconds.get(st.CRITICAL, 0.0)),
                         other=timedelta(seconds=other),
                         name=name(history.account, history.line_id, history.phone_number))
        if spent.degraded > timedelta(0):
            times.append(spent)
    times.sort(key=lambda t: (-t.critical - t.other, -t.at_risk, t.account, t.phone_number))

    return Digest(
        start=start, end=now,
        degraded=tuple(
            DegradedLine(line.account, line.line_id, line.phone_number, line.status,
                         line.since, line.doc_url,
                         name(line.account, line.line_id, line.phone_number))
            for line in degraded),
        changes=tuple(
            DigestChange(row.at, row.account, row.line_id, row.phone_number, row.from_status,
                         row.to_status,
                         row.at - row.previous_since if row.previous_since else None,
                         row.doc_url, name(row.account, row.line_id, row.phone_number))
            for row in changes),
        change_count=change_count,
        time_degraded=tuple(times),
        polls=polls,
    )


def _degraded_lines(session: Session, wanted: set[str] | None) -> list[Line]:
    query = select(Line).where(Line.present.is_(True), Line.status != st.HEALTHY)
    if wanted is not None:
        query = query.where(Line.account.in_(wanted))
    lines = list(session.scalars(query))
    # Worst first, then the longest-degraded.
    lines.sort(key=lambda line: (-st.rank(line.status), line.since, line.account,
                                 line.phone_number))
    return lines


def _changes(session: Session, wanted: set[str] | None, start: datetime, end: datetime,
             limit: int | None) -> tuple[list[TransitionRow], int]:
    """Status changes in the window, newest first (at most ``limit``; None: all); a first
    sighting counts if degraded."""
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
    return list(rows), int(count or 0)


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


async def send_digest(runtime: Runtime, channel: str, *, now: datetime) -> bool:
    """Build and queue one channel's digest; once per channel and local day, whoever runs it
    (a restart inside the minute, or a second replica, finds it already queued)."""
    config = next(c for c in runtime.config.alerts.channels if c.name == channel)
    accounts = config.accounts or [a.name for a in runtime.config.accounts]
    digest = await asyncio.to_thread(build_digest, runtime.sessions, now=now, accounts=accounts,
                                     line_meta=runtime.line_meta, labels=config.labels)
    message = runtime.renderers[channel].render_digest(digest, now=now)
    day = now.astimezone(config.zone).date().isoformat()
    return await asyncio.to_thread(queue_once, runtime.sessions, channel=channel, kind="digest",
                                   message=message, dedupe_key=f"digest:{channel}:{day}", now=now)
