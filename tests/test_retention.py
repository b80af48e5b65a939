"""Retention pruning on both databases: what goes, what is kept, and the summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import (
    Entry,
    LineState,
    Message,
    Notice,
    NoticeKind,
    Transition,
    TransitionKind,
)
from monitor.store.retention import prune
from monitor.store.schema import HistorySummary, Notification, Poll, PollSummary, TransitionRow
from monitor.store.state import Outgoing, PollRecord, commit_poll

# These touch SQL: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=400)


def record(sessions: sessionmaker[Session], when: datetime, status: str | None, *,
           previous: str | None, notify: bool = False, outcome: str = "success") -> None:
    """One poll at ``when``; with a status, line L1 changes to it."""
    poll = PollRecord("main", when, when, outcome, 1)
    if status is None:
        commit_poll(sessions, poll, new_lines=[], changed_lines=[], transitions=[],
                    outgoing=[])
        return
    state = LineState("main", "L1", "+12025550001", status, None, when)
    kind = TransitionKind.FIRST_SEEN if previous is None else TransitionKind.CHANGED
    transition = Transition("main", "L1", "+12025550001", kind, previous, status, None, when,
                            None)
    entry = Entry(NoticeKind.DEGRADED, "main", "L1", "+12025550001", previous, status, when,
                  None, None)
    outgoing = [Outgoing(Notice("ops", entry, transition), Message("t", "b"))] if notify else []
    commit_poll(sessions, poll, new_lines=[state] if previous is None else [],
                changed_lines=[] if previous is None else [state], transitions=[transition],
                outgoing=outgoing)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_it_condenses_old_history_and_keeps_the_recent_and_the_pending(sessions) -> None:
    record(sessions, days_ago(500), "HEALTHY", previous=None)
    record(sessions, days_ago(450), "AT_RISK", previous="HEALTHY", notify=True)
    record(sessions, days_ago(449), None, previous=None, outcome="error")
    record(sessions, days_ago(440), "HEALTHY", previous="AT_RISK")
    record(sessions, days_ago(420), "CRITICAL", previous="HEALTHY", notify=True)
    record(sessions, days_ago(10), "HEALTHY", previous="CRITICAL")
    with sessions.begin() as session:  # the 450-day-old alert was delivered long ago
        session.execute(update(Notification).where(Notification.id == 1)
                        .values(state="delivered"))

    result = prune(sessions, cutoff=CUTOFF)

    with sessions() as session:
        kept = session.execute(select(TransitionRow.to_status, TransitionRow.at)
                               .order_by(TransitionRow.id)).all()
        # The newest change before the cutoff stays (status at the cutoff: CRITICAL), and
        # so does everything after it.
        assert [status for status, _ in kept] == ["CRITICAL", "HEALTHY"]
        assert session.scalar(select(func.count()).select_from(Poll)) == 1
        days = session.execute(select(PollSummary.successes, PollSummary.errors)).all()
        assert (sum(d[0] for d in days), sum(d[1] for d in days)) == (4, 1)
        # The delivered old notification is gone; the pending one stays with its change.
        assert session.scalars(select(Notification.state)).all() == ["pending"]
        (summary,) = session.scalars(select(HistorySummary)).all()
        assert summary.period_start == days_ago(500) and summary.period_end == CUTOFF
        assert summary.seconds_by_status == {
            "HEALTHY": pytest.approx((50 + 20) * 86400),
            "AT_RISK": pytest.approx(10 * 86400),
            "CRITICAL": pytest.approx(20 * 86400),
        }
        assert (summary.changes, summary.degradations) == (3, 2)
    assert (result.polls, result.transitions, result.notifications) == (5, 3, 1)


def test_pruning_again_continues_where_the_last_summary_ended(sessions) -> None:
    record(sessions, days_ago(500), "HEALTHY", previous=None)
    record(sessions, days_ago(450), "AT_RISK", previous="HEALTHY")
    prune(sessions, cutoff=CUTOFF)
    later = CUTOFF + timedelta(days=30)
    record(sessions, days_ago(380), "HEALTHY", previous="AT_RISK")
    prune(sessions, cutoff=later)
    with sessions() as session:
        summaries = session.scalars(select(HistorySummary)
                                    .order_by(HistorySummary.period_end)).all()
    assert [(s.period_start, s.period_end) for s in summaries] == [
        (days_ago(500), CUTOFF), (CUTOFF, later)]
    second = summaries[1].seconds_by_status
    assert second == {"AT_RISK": pytest.approx(20 * 86400),
                      "HEALTHY": pytest.approx(10 * 86400)}
