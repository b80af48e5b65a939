"""The outbox deliverer with Apprise's real json:// notifier posting to a local receiver."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.alerts.outbox import Deliverer, DeliveryPolicy
from monitor.metrics import Metrics
from monitor.store.schema import Notification
from tests.support.receiver import Receiver

# These touch SQL: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases

POLICY = DeliveryPolicy(timeout=timedelta(seconds=5), retry_initial=timedelta(seconds=0),
                        retry_max=timedelta(seconds=0), give_up_after=timedelta(hours=1))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def enqueue(sessions: sessionmaker[Session], *, channel: str, line: str, title: str,
            now: datetime) -> None:
    with sessions.begin() as session:
        session.execute(insert(Notification), [{
            "account": "main", "line_id": line, "channel": channel, "kind": "degraded",
            "title": title, "body": f"body of {title}", "created_at": now, "state": "pending",
            "attempts": 0, "next_attempt_at": now}])


def states(sessions: sessionmaker[Session]) -> list[tuple[str, str, int]]:
    with sessions() as session:
        return [(n.title, n.state, n.attempts) for n in
                session.scalars(select(Notification).order_by(Notification.id))]


def deliverer(sessions, receiver: Receiver, clock: Clock, policy: DeliveryPolicy = POLICY,
              metrics: Metrics | None = None) -> Deliverer:
    channels = {"ops": Channel("ops", receiver.url("ops"))}
    return Deliverer(sessions, channels, policy, metrics or Metrics(), clock=clock)


async def test_it_delivers_pending_rows_once_in_order(sessions, receiver: Receiver) -> None:
    clock = Clock()
    for i in range(3):
        enqueue(sessions, channel="ops", line=f"L{i % 2}", title=f"m{i}", now=clock.now)
    d = deliverer(sessions, receiver, clock)
    assert await d.run_once() == 3
    assert await d.run_once() == 0
    assert [m.title for m in receiver.wait_for(3)] == ["m0", "m1", "m2"]
    assert body_of(receiver, "m1") == "body of m1"
    assert states(sessions) == [("m0", "delivered", 1), ("m1", "delivered", 1),
                                ("m2", "delivered", 1)]


def body_of(receiver: Receiver, title: str) -> str:
    return next(m.message for m in receiver.messages if m.title == title)


async def test_a_failed_send_is_retried_after_backoff_and_keeps_line_order(
        sessions, receiver: Receiver) -> None:
    clock = Clock()
    policy = DeliveryPolicy(timeout=timedelta(seconds=5), retry_initial=timedelta(seconds=10),
                            retry_max=timedelta(minutes=5), give_up_after=timedelta(hours=1))
    metrics = Metrics()
    enqueue(sessions, channel="ops", line="L1", title="first", now=clock.now)
    enqueue(sessions, channel="ops", line="L1", title="second", now=clock.now)
    d = deliverer(sessions, receiver, clock, policy, metrics)
    receiver.set_status(500)
    assert await d.run_once() == 0
    assert states(sessions)[0][1:] == ("pending", 1)
    receiver.set_status(200)
    assert await d.run_once() == 0  # still inside the 10 s backoff
    clock.now += timedelta(seconds=11)
    assert await d.run_once() == 2
    assert [m.title for m in receiver.wait_for(2)] == ["first", "second"]
    assert metrics.notifications.labels("ops", "failed")._value.get() == 1
    assert metrics.notifications.labels("ops", "delivered")._value.get() == 2
    with sessions() as session:
        assert session.scalars(select(Notification.last_error)).first() is None


async def test_it_gives_up_after_the_configured_age_and_says_so(sessions,
                                                                receiver: Receiver) -> None:
    clock = Clock()
    enqueue(sessions, channel="ops", line="L1", title="doomed", now=clock.now)
    receiver.set_status(500)
    d = deliverer(sessions, receiver, clock)
    await d.run_once()
    clock.now += timedelta(hours=2)
    await d.run_once()
    ((_title, state, attempts),) = states(sessions)
    assert (state, attempts) == ("failed", 2)
    with sessions() as session:
        error = session.scalars(select(Notification.last_error)).one()
    assert "500" in error
    clock.now += timedelta(hours=1)
    receiver.set_status(200)
    assert await d.run_once() == 0  # failed rows are not retried forever


async def test_two_deliverers_never_send_the_same_row(sessions, receiver: Receiver) -> None:
    clock = Clock()
    for i in range(40):
        enqueue(sessions, channel="ops", line=f"L{i}", title=f"m{i}", now=clock.now)
    a, b = deliverer(sessions, receiver, clock), deliverer(sessions, receiver, clock)
    sent = await asyncio.gather(a.run_once(), b.run_once())
    assert sum(sent) == 40
    titles = [m.title for m in receiver.wait_for(40)]
    assert sorted(titles) == sorted(f"m{i}" for i in range(40))
    assert len(titles) == len(set(titles))


async def test_a_claim_left_by_a_crashed_deliverer_expires_and_is_sent(
        sessions, receiver: Receiver) -> None:
    clock = Clock()
    enqueue(sessions, channel="ops", line="L1", title="orphan", now=clock.now)
    with sessions.begin() as session:  # what a process killed mid-send leaves behind
        row = session.scalars(select(Notification)).one()
        row.claimed_until = clock.now + POLICY.claim_ttl
        row.attempts = 1
    d = deliverer(sessions, receiver, clock)
    assert await d.run_once() == 0
    clock.now += POLICY.claim_ttl + timedelta(seconds=1)
    assert await d.run_once() == 1
    assert [m.title for m in receiver.wait_for(1)] == ["orphan"]
