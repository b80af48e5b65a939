"""Leases, fencing and run-once jobs on the real databases; outbox claims under concurrency.

Each test runs on SQLite and PostgreSQL unless it is about concurrent processes, which
only PostgreSQL supports (several engines stand in for several replicas).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.alerts.outbox import Deliverer, DeliveryPolicy
from monitor.core.balance import fair_share, rebalance
from monitor.core.identity import Identity
from monitor.core.model import (
    Entry,
    LineState,
    Message,
    Notice,
    NoticeKind,
    Told,
    Transition,
    TransitionKind,
)
from monitor.errors import LeaseLost, StoreError
from monitor.ha.coordinator import Coordinator
from monitor.metrics import Metrics
from monitor.store import leases, migrate
from monitor.store.engine import make_engine, make_sessionmaker
from monitor.store.leases import Fence
from monitor.store.schema import Line, Notification, Poll
from monitor.store.state import Outgoing, PollRecord, commit_notices, commit_poll
from monitor.store.webhook_events import commit_event, open_events, record_event
from tests.support.receiver import Receiver
from tests.test_outbox import enqueue

# These touch SQL: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases

MINUTE = timedelta(minutes=1)
EXPIRED = timedelta(0)  # a lease that is free for the taking as soon as it is granted
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def first_sighting(status: str) -> tuple[LineState, Transition]:
    state = LineState(account="main", line_id="L1", phone_number="+12025550101",
                      status=status, doc_url=None, since=NOW)
    transition = Transition(account="main", line_id="L1", phone_number="+12025550101",
                            kind=TransitionKind.FIRST_SEEN, from_status=None,
                            to_status=status, doc_url=None, at=NOW, previous_since=None)
    return state, transition


def write_poll(sessions: sessionmaker[Session], fence: Fence, status: str) -> int:
    state, transition = first_sighting(status)
    record = PollRecord(account="main", started_at=NOW, finished_at=NOW, outcome="success",
                        line_count=1)
    return commit_poll(sessions, record, new_lines=[state], changed_lines=[],
                       transitions=[transition], outgoing=[], fence=fence)


def test_a_free_lease_goes_to_one_replica_with_a_new_generation(sessions) -> None:
    name = leases.account_lease("main")
    leases.ensure(sessions, [name])
    (grant,) = leases.acquire(sessions, [name], holder="a", limit=5, ttl=MINUTE)
    assert grant.fence == Fence(name, "a", 1)
    assert leases.acquire(sessions, [name], holder="b", limit=5, ttl=MINUTE) == []
    assert [g.fence for g in leases.renew(sessions, [grant.fence], ttl=MINUTE)] == [grant.fence]


def test_a_replaced_holder_cannot_write_and_loses_its_renewal(sessions) -> None:
    name = leases.account_lease("main")
    leases.ensure(sessions, [name])
    (old,) = leases.acquire(sessions, [name], holder="a", limit=1, ttl=EXPIRED)
    (new,) = leases.acquire(sessions, [name], holder="b", limit=1, ttl=MINUTE)
    assert new.fence.generation == old.fence.generation + 1

    write_poll(sessions, new.fence, "CRITICAL")
    with pytest.raises(LeaseLost):
        write_poll(sessions, old.fence, "AT_RISK")  # the paused holder wakes up

    with sessions() as session:
        assert session.scalars(select(Line.status)).all() == ["CRITICAL"]
        assert session.scalars(select(Poll.replica)).all() == ["b"]
    assert leases.renew(sessions, [old.fence], ttl=MINUTE) == []


def test_a_given_back_lease_fences_its_former_holder(sessions) -> None:
    name = leases.account_lease("main")
    leases.ensure(sessions, [name])
    (grant,) = leases.acquire(sessions, [name], holder="a", limit=1, ttl=MINUTE)
    leases.release(sessions, [grant.fence])
    with pytest.raises(LeaseLost):
        write_poll(sessions, grant.fence, "AT_RISK")
    (again,) = leases.acquire(sessions, [name], holder="b", limit=1, ttl=MINUTE)
    assert again.fence.generation == 2


def test_a_run_once_job_runs_once_per_slot_and_again_after_a_failed_run(sessions) -> None:
    name = leases.job_lease("prune")
    first = leases.try_once(sessions, name, holder="a", key="2026-11-27", ttl=MINUTE)
    assert first is not None
    assert leases.try_once(sessions, name, holder="b", key="2026-11-27", ttl=MINUTE) is None
    leases.release(sessions, [first.fence], done_key="2026-11-27")
    assert leases.try_once(sessions, name, holder="b", key="2026-11-27", ttl=MINUTE) is None

    failed = leases.try_once(sessions, name, holder="b", key="2026-11-28", ttl=MINUTE)
    assert failed is not None
    leases.release(sessions, [failed.fence])  # an error: the slot is not marked done
    assert leases.try_once(sessions, name, holder="c", key="2026-11-28", ttl=MINUTE)


def test_heartbeats_count_the_live_replicas(sessions) -> None:
    for replica in ("a", "b", "c"):
        live = leases.heartbeat(sessions, replica=replica, host="h", pid=1, started_at=NOW,
                                ttl=MINUTE)
    assert live == 3
    leases.leave(sessions, replica="b")
    assert leases.heartbeat(sessions, replica="a", host="h", pid=1, started_at=NOW,
                            ttl=MINUTE) == 2


def test_the_fair_share_is_the_ceiling_of_accounts_over_live_replicas() -> None:
    assert [fair_share(10, n) for n in (0, 1, 2, 3, 4, 10, 11)] == [10, 10, 5, 4, 3, 1, 1]
    assert rebalance(10, accounts=10, live_replicas=3) == (6, 0)
    assert rebalance(1, accounts=10, live_replicas=3) == (0, 3)


# -- several replicas at once: PostgreSQL ------------------------------------------------------


@pytest.fixture
def replica_sessions(postgres_url: str) -> Iterator[list[sessionmaker[Session]]]:
    """Three independent engines on one migrated PostgreSQL database: three replicas."""
    engines = [make_engine(postgres_url) for _ in range(3)]
    migrate.upgrade(engines[0])
    yield [make_sessionmaker(e) for e in engines]
    for engine in engines:
        engine.dispose()


def test_replicas_acquiring_at_once_never_share_a_lease(
        replica_sessions: list[sessionmaker[Session]]) -> None:
    names = [leases.account_lease(f"acc{i}") for i in range(30)]
    leases.ensure(replica_sessions[0], names)
    got: dict[str, list[str]] = {}
    start = threading.Barrier(len(replica_sessions) * 2)

    def grab(sessions: sessionmaker[Session], holder: str) -> None:
        start.wait()
        taken: list[str] = []
        for _ in range(10):
            taken += [g.fence.lease for g in
                      leases.acquire(sessions, names, holder=holder, limit=2, ttl=MINUTE)]
        got[holder] = taken

    threads = [threading.Thread(target=grab, args=(s, f"r{i}-{j}"))
               for i, s in enumerate(replica_sessions) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [name for taken in got.values() for name in taken]
    assert sorted(everything) == sorted(names)  # each lease exactly once, none left over
    holders = {name: holder for name, holder, _, _ in leases.holders(replica_sessions[0])}
    assert all(holders[name] == holder for holder, taken in got.items() for name in taken)


async def test_three_deliverers_send_each_notification_exactly_once(
        replica_sessions: list[sessionmaker[Session]], receiver: Receiver) -> None:
    for i in range(60):
        enqueue(replica_sessions[0], channel="ops", line=f"L{i}", title=f"m{i}",
                now=datetime.now(UTC))
    policy = DeliveryPolicy(timeout=timedelta(seconds=5), retry_initial=timedelta(0),
                            retry_max=timedelta(0), give_up_after=timedelta(hours=1))
    deliverers = [Deliverer(s, {"ops": Channel("ops", receiver.url("ops"))}, policy, Metrics(),
                            clock=lambda: datetime.now(UTC)) for s in replica_sessions]
    rounds = await asyncio.gather(*(d.run_once() for d in deliverers for _ in range(2)))
    assert sum(rounds) == 60
    titles = [m.title for m in receiver.wait_for(60)]
    assert sorted(titles) == sorted(f"m{i}" for i in range(60))  # no duplicate, none lost


def coordinators(replica_sessions: list[sessionmaker[Session]], accounts: int,
                 lease: timedelta = MINUTE) -> list[Coordinator]:
    names = [f"acc{i}" for i in range(accounts)]
    return [Coordinator(s, Identity(f"r{i}", "host", i), names, lease=lease, tick=0.1,
                        metrics=Metrics(), started_at=datetime.now(UTC))
            for i, s in enumerate(replica_sessions)]


async def test_coordinators_spread_ten_accounts_over_three_replicas(
        replica_sessions: list[sessionmaker[Session]]) -> None:
    replicas = coordinators(replica_sessions, 10)
    for _ in range(3):  # a round each, in turn, three times: joins, give-backs, takes
        for replica in replicas:
            await replica.step()
    held = [{f"acc{i}" for i in range(10) if r.holds(f"acc{i}")} for r in replicas]
    assert set().union(*held) == {f"acc{i}" for i in range(10)}
    assert sum(len(h) for h in held) == 10  # nobody shares an account
    assert max(len(h) for h in held) <= 4  # ceil(10 / 3)
    assert all(held)


async def test_only_one_replica_runs_a_job_slot(
        replica_sessions: list[sessionmaker[Session]]) -> None:
    replicas = coordinators(replica_sessions, 1)
    ran: list[str] = []

    async def daily_job(replica: Coordinator) -> None:
        async with replica.hold("prune", once="2026-11-27") as lease:
            if lease is not None:
                ran.append(replica.replica)
                await asyncio.sleep(0.2)  # still running while the others try

    await asyncio.gather(*(daily_job(r) for r in replicas))
    await asyncio.gather(*(daily_job(r) for r in replicas))  # the slot is done: nobody
    assert len(ran) == 1


def test_a_replaced_holder_cannot_write_a_policy_round_or_a_webhook_event(sessions) -> None:
    """Every write about an account's lines is fenced, not only polls: the policy tick's
    reminders and escalations, and applying a webhook event."""
    name = leases.account_lease("main")
    leases.ensure(sessions, [name])
    (old,) = leases.acquire(sessions, [name], holder="a", limit=1, ttl=EXPIRED)
    (new,) = leases.acquire(sessions, [name], holder="b", limit=1, ttl=MINUTE)
    write_poll(sessions, new.fence, "CRITICAL")
    state, _ = first_sighting("CRITICAL")
    reminded = replace(state, told={"ops": Told("CRITICAL", NOW)})
    entry = Entry(kind=NoticeKind.REMINDER, account="main", line_id="L1",
                  phone_number=state.phone_number, from_status=None, to_status="CRITICAL",
                  at=NOW, previous_since=None, doc_url=None)
    reminder = Outgoing(Notice("ops", entry), Message("t", "b"))

    with pytest.raises(LeaseLost):
        commit_notices(sessions, changed_lines=[reminded], outgoing=[reminder], now=NOW,
                       fence=old.fence)
    event_row = record_event(sessions, event_id="evt-1", account="main",
                             event_type="phone_number.status_updated", payload=b"{}",
                             received_at=NOW)
    assert event_row is not None
    (event,) = open_events(sessions, "main")
    with pytest.raises(LeaseLost):
        commit_event(sessions, event, state="applied", note=None, now=NOW, line=reminded,
                     outgoing=[reminder], fence=old.fence)
    with sessions() as session:  # the old holder wrote nothing
        assert session.scalars(select(Notification)).all() == []
        assert session.scalars(select(Line.told)).all() == [None]
    assert [e.state for e in open_events(sessions, "main")] == ["pending"]

    commit_notices(sessions, changed_lines=[reminded], outgoing=[reminder], now=NOW,
                   fence=new.fence)
    with sessions() as session:
        assert session.scalars(select(Notification.kind)).all() == ["reminder"]
@pytest.mark.parametrize("alone", [False, True])
async def test_a_failed_lease_round_drops_an_account_only_where_another_process_could_poll(
        sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, alone: bool) -> None:
    # Alone (the SQLite one-daemon lock), losing an account would make the daemon cancel a
    # poll whose commit still lands, with no fence to refuse it: a change recorded twice.
    told: list[str] = []

    class Listener:
        def lease_acquired(self, account: str) -> None:
            told.append(f"acquired {account}")

        def lease_lost(self, account: str) -> None:
            told.append(f"lost {account}")

    coordinator = Coordinator(sessions, Identity("solo", "host", 1), ["main"], lease=EXPIRED,
                              tick=0.1, metrics=Metrics(), started_at=NOW, alone=alone,
                              listener=Listener())
    await coordinator.step()

    def locked(*args: object, **kwargs: object) -> int:
        raise StoreError("cannot record the replica heartbeat: database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(leases, "heartbeat", locked)
        await coordinator.step()  # fails past the (zero-length) lease
    await coordinator.step()  # the database is back

    generation = {name: g for name, _, g, _ in leases.holders(sessions)}["account:main"]
    if alone:
        assert told == []  # polled from the start, never cancelled, memory never dropped
        assert coordinator.holds("main") and coordinator.fence("main") is None
        assert generation == 1  # renewed once the database was back, not taken anew
    else:
        assert told == ["acquired main", "lost main", "acquired main"]
        assert generation == 2
