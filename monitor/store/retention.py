"""Retention: prune history older than ``[database] retention``, keeping a summary.

What is kept, so nothing is silently lost:
- every line's current row (``lines``) and, per line, the newest change before the cutoff,
  so the status of any line at any moment inside the retention window stays answerable;
- per line and pruned period, a ``history_summaries`` row: time in each status, number of
  changes and of degradations;
- per account and UTC day, a ``poll_summaries`` row: successful and failed polls;
- every notification still pending, and the changes they announce.
What goes: older ``polls`` rows, older ``transitions`` rows (beyond the one kept per line),
delivered or given-up ``notifications`` created before the cutoff, and settled
``webhook_events`` received before it (applied, ignored, expired, other, and unmatched:
those expire long before any retention; a redelivery of a pruned event is long past
Linq's retry window).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.report import Change, account_line
from monitor.errors import StoreError
from monitor.store.schema import (
    HistorySummary,
    Notification,
    Poll,
    PollSummary,
    TransitionRow,
    WebhookEvent,
    as_utc,
)


@dataclass(frozen=True, slots=True)
class PruneResult:
    polls: int
    transitions: int
    notifications: int
    summaries: int
    webhook_events: int = 0

    def summary(self) -> str:
        return (f"pruned {self.polls} polls, {self.transitions} changes, "
                f"{self.notifications} settled notifications and {self.webhook_events} "
                f"webhook events; wrote {self.summaries} line summaries")


def prune(sessions: sessionmaker[Session], *, cutoff: datetime) -> PruneResult:
    """Condense and delete history older than ``cutoff``, in one transaction."""
    try:
        with sessions.begin() as session:
            notifications = session.execute(
                delete(Notification).where(Notification.created_at < cutoff,
                                           Notification.state.in_(("delivered", "failed")))
            ).rowcount  # type: ignore[attr-defined]
            summaries, transitions = _condense_transitions(session, cutoff)
            polls = _condense_polls(session, cutoff)
            events = session.execute(
                delete(WebhookEvent).where(WebhookEvent.received_at < cutoff,
                                           WebhookEvent.state != "pending")
            ).rowcount  # type: ignore[attr-defined]
            return PruneResult(polls, transitions, notifications, summaries, events)
    except SQLAlchemyError as exc:
        raise StoreError(f"pruning failed: {exc}") from exc


def _condense_transitions(session: Session, cutoff: datetime) -> tuple[int, int]:
    rows = session.execute(
        select(TransitionRow.id, TransitionRow.account, TransitionRow.line_id,
               TransitionRow.phone_number, TransitionRow.kind, TransitionRow.to_status,
               TransitionRow.at)
        # Service-status changes (webhooks) are not reputation: kept, never summarised.
        .where(TransitionRow.at < cutoff, TransitionRow.kind != "service")
        .order_by(TransitionRow.account, TransitionRow.line_id, TransitionRow.id)
    ).all()
    by_line: dict[tuple[str, str], list[tuple[int, str, str, str, datetime]]] = defaultdict(
        list)
    for row_id, account, line_id, phone, kind, to_status, at in rows:
        by_line[(account, line_id)].append((row_id, phone, kind, to_status, at))
    summarised_until = {
        (account, line_id): end for account, line_id, end in session.execute(
            select(HistorySummary.account, HistorySummary.line_id,
                   func.max(HistorySummary.period_end))
            .group_by(HistorySummary.account, HistorySummary.line_id)
        )
    }
    announced = select(Notification.transition_id).where(Notification.transition_id.is_not(None))
    summaries: list[dict[str, object]] = []
    doomed: list[int] = []
    for (account, line_id), changes in by_line.items():
        start = as_utc(summarised_until.get((account, line_id))) or changes[0][4]
        initial = None
        inside: list[Change] = []
        for _, _, kind, to_status, at in changes:
            status = None if kind == "removed" else to_status
            if at < start:
                initial = status
            else:
                inside.append(Change(at, status))
        if start < cutoff and (inside or initial is not None):
            report = account_line(initial, inside, start=start, end=cutoff)
            summaries.append({
                "account": account, "line_id": line_id, "phone_number": changes[-1][1],
                "period_start": start, "period_end": cutoff,
                "seconds_by_status": report.seconds, "changes": report.changes,
                "degradations": report.degradations,
            })
        doomed += [row_id for row_id, *_ in changes[:-1]]  # the newest one stays
    if summaries:
        session.execute(HistorySummary.__table__.insert(), summaries)  # type: ignore[attr-defined]
    deleted = 0
    for start_index in range(0, len(doomed), 5000):
        batch = doomed[start_index:start_index + 5000]
        deleted += session.execute(
            delete(TransitionRow).where(TransitionRow.id.in_(batch),
                                        TransitionRow.id.not_in(announced))
        ).rowcount  # type: ignore[attr-defined]
    return len(summaries), deleted


def _condense_polls(session: Session, cutoff: datetime) -> int:
    old = Poll.finished_at < cutoff
    days = session.execute(
        select(Poll.account, Poll.finished_at, Poll.outcome).where(old)
    ).all()
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for account, finished_at, outcome in days:
        counts[(account, finished_at.strftime("%Y-%m-%d"))][outcome != "success"] += 1
    if counts:
        session.execute(PollSummary.__table__.insert(), [  # type: ignore[attr-defined]
            {"account": a, "day": d, "successes": ok, "errors": bad}
            for (a, d), (ok, bad) in sorted(counts.items())
        ])
    # Kept changes may point at pruned polls: they keep their time, lose the poll link.
    session.execute(
        update(TransitionRow)
        .where(TransitionRow.poll_id.in_(select(Poll.id).where(old)))
        .values(poll_id=None)
    )
    return session.execute(delete(Poll).where(old)).rowcount  # type: ignore[attr-defined, no-any-return]



