"""The status page's database reads: a line's recent past, and the monitor's own health.

Each function is one read-only unit of work, called from a worker thread (the page never
runs a query on the event loop), and raises StoreError if the database fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError
from monitor.store.schema import (
    Audit,
    Lease,
    Notification,
    Poll,
    Replica,
    TransitionRow,
    WebhookEvent,
)

TRANSITIONS_LIMIT = 500
AUDITS_LIMIT = 10
POLLS_PER_ACCOUNT = 5


@dataclass(frozen=True, slots=True)
class Sent:
    """One notification a change produced, on one channel."""

    channel: str
    state: str  # pending | delivered | failed | silenced | dropped
    attempts: int
    deferred: bool
    delivered_at: datetime | None
    last_error: str | None

    @property
    def outcome(self) -> str:
        """For people: delivered, retried, gave up, silenced, deferred, dropped, pending."""
        if self.state == "delivered":
            return "delivered" if self.attempts <= 1 else f"delivered after {self.attempts} tries"
        if self.state == "failed":
            return "gave up"
        if self.state == "pending":
            if self.deferred:
                return "deferred"
            return "retrying" if self.attempts else "pending"
        return self.state


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    kind: str
    from_status: str | None
    to_status: str
    source: str
    sent: list[Sent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuditRow:
    started_at: datetime
    state: str
    severity: str | None
    primary_driver: str | None
    report: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class LinePast:
    initial: str | None  # the status at the window's start (None: not watched yet)
    changes: list[Change]  # oldest first
    audits: list[AuditRow]  # newest first


def line_past(sessions: sessionmaker[Session], *, account: str, line_id: str,
              phone_number: str, since: datetime) -> LinePast:
    """The line's changes since ``since`` (at most 500, the newest), what each sent, the
    status before them, and its latest audits."""
    with _reading(sessions, "cannot read the line's history") as session:
        rows = list(session.scalars(
            select(TransitionRow)
            .where(TransitionRow.account == account, TransitionRow.line_id == line_id,
                   TransitionRow.at >= since)
            .order_by(TransitionRow.id.desc()).limit(TRANSITIONS_LIMIT)))
        rows.reverse()
        before = session.scalars(
            select(TransitionRow)
            .where(TransitionRow.account == account, TransitionRow.line_id == line_id,
                   TransitionRow.at < since, TransitionRow.kind != "service")
            .order_by(TransitionRow.id.desc()).limit(1)).first()
        sent: dict[int, list[Sent]] = {}
        if rows:
            for n in session.scalars(select(Notification)
                                     .where(Notification.transition_id.in_([r.id for r in rows]))
                                     .order_by(Notification.id)):
                assert n.transition_id is not None
                sent.setdefault(n.transition_id, []).append(
                    Sent(n.channel, n.state, n.attempts, n.deferred, n.delivered_at,
                         n.last_error))
        audits = [AuditRow(a.started_at, a.state, a.severity, a.primary_driver, a.report, a.error)
                  for a in session.scalars(
                      select(Audit).where(Audit.account == account,
                                          Audit.phone_number == phone_number)
                      .order_by(Audit.id.desc()).limit(AUDITS_LIMIT))]
    initial = None if before is None or before.kind == "removed" else before.to_status
    return LinePast(initial, [Change(r.at, r.kind, r.from_status, r.to_status, r.source,
                                     sent.get(r.id, [])) for r in rows], audits)


@dataclass(frozen=True, slots=True)
class PollRow:
    finished_at: datetime
    outcome: str
    line_count: int | None
    changes: int
    error: str | None
    trace_id: str | None
    replica: str | None


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    replica: str
    host: str
    pid: int
    heartbeat_at: datetime
    holds: list[str]


@dataclass(frozen=True, slots=True)
class Health:
    polls: dict[str, list[PollRow]]  # account -> newest first
    outbox: dict[str, Counter[str]]  # channel -> pending | retrying | deferred | failed
    replicas: list[ReplicaRow]
    unheld: list[str]  # leases nobody holds now
    webhooks: dict[datetime, Counter[str]]  # hour -> state -> events recorded


def health(sessions: sessionmaker[Session], *, accounts: Sequence[str], now: datetime,
           webhook_hours: int = 24) -> Health:
    """The last polls per account, the outbox per channel, replicas and their leases, and
    the webhook events recorded per hour over the last ``webhook_hours``."""
    with _reading(sessions, "cannot read the monitor's health") as session:
        polls = {account: [PollRow(p.finished_at, p.outcome, p.line_count, p.changes, p.error,
                                   p.trace_id, p.replica)
                           for p in session.scalars(
                               select(Poll).where(Poll.account == account)
                               .order_by(Poll.id.desc()).limit(POLLS_PER_ACCOUNT))]
                 for account in accounts}
        outbox: dict[str, Counter[str]] = {}
        retried = func.sum(case((Notification.attempts > 0, 1), else_=0))
        for channel, state, deferred, count, retrying in session.execute(
                select(Notification.channel, Notification.state, Notification.deferred,
                       func.count(), retried)
                .where(Notification.state.in_(("pending", "failed")))
                .group_by(Notification.channel, Notification.state, Notification.deferred)):
            counts = outbox.setdefault(channel, Counter())
            if state == "failed":
                counts["gave up"] += count
            elif deferred:
                counts["deferred"] += count
            else:
                counts["retrying"] += int(retrying or 0)
                counts["pending"] += count - int(retrying or 0)
        holds: dict[str, list[str]] = {}
        unheld: list[str] = []
        for name, holder, expires_at in session.execute(
                select(Lease.name, Lease.holder, Lease.expires_at).order_by(Lease.name)):
            if holder is None or expires_at is None or expires_at <= now:
                unheld.append(name)
            else:
                holds.setdefault(holder, []).append(name)
        replicas = [ReplicaRow(r.replica, r.host, r.pid, r.heartbeat_at,
                               holds.get(r.replica, []))
                    for r in session.scalars(select(Replica).order_by(Replica.replica))]
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(
            hours=webhook_hours - 1)
        webhooks: dict[datetime, Counter[str]] = {}
        for at, state in session.execute(select(WebhookEvent.received_at, WebhookEvent.state)
                                         .where(WebhookEvent.received_at >= start)):
            hour = at.replace(minute=0, second=0, microsecond=0)
            webhooks.setdefault(hour, Counter())[state] += 1
    return Health(polls, outbox, replicas, unheld, dict(sorted(webhooks.items(), reverse=True)))


@contextmanager
def _reading(sessions: sessionmaker[Session], what: str) -> Iterator[Session]:
    try:
        with sessions() as session:
            yield session
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {type(exc).__name__}") from exc
