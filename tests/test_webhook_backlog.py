"""A backlog of webhook events for numbers no poll has shown never delays an event for a
known line; unmatched events are retried only when their number appears, and expire.

In-process app and runtime (httpx's ASGI transport), the simulator on a real socket,
alerts through Apprise's json:// to the local receiver; SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select

from monitor.config import Config
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.retention import prune
from monitor.store.schema import WebhookEvent
from tests.support.receiver import Receiver
from tests.support.webhooks import app_client, channel, sender, webhook_config

pytestmark = pytest.mark.both_databases

LINE = "+12025550101"
BACKLOG = 10_000


def make_config(database_url: str, sim_url: str, receiver: Receiver, **account: object
                ) -> Config:
    return webhook_config(database_url, sim_url, **account, channels=[
        channel("pager", receiver.url("pager"), min_status="CRITICAL")])


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer, receiver: Receiver
                  ) -> AsyncIterator[Runtime]:
    config = make_config(database_url, sim_server.url, receiver)
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as rt:
        yield rt


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(runtime) as c:
        yield c


def store_unmatched(rt: Runtime, count: int, *, received_at: datetime | None = None) -> None:
    """``count`` events for numbers no poll has shown, as a flood of them would leave."""
    at = received_at or datetime.now(UTC)
    rows = []
    for i in range(count):
        number = f"+1999{i:07d}"
        body = sender.status_updated(number, new_status="FLAGGED").body.decode()
        rows.append({"event_id": f"backlog-{i}", "account": "main",
                     "event_type": "phone_number.status_updated", "received_at": at,
                     "payload": body, "state": "unmatched", "phone_number": number})
    with rt.sessions.begin() as session:
        for start in range(0, len(rows), 2000):
            session.execute(insert(WebhookEvent), rows[start:start + 2000])


def states(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as session:
        return dict(session.execute(select(WebhookEvent.state, func.count())
                                    .group_by(WebhookEvent.state)).all())  # type: ignore[arg-type]


async def poll(rt: Runtime) -> None:
    outcome = await rt.pollers["main"].poll()
    assert outcome.ok, outcome.error


async def test_a_flagged_event_for_a_known_line_is_applied_and_alerted_despite_a_backlog(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    store_unmatched(runtime, BACKLOG)

    delivery = sender.status_updated(LINE, previous_status="ACTIVE", new_status="FLAGGED")
    response = await client.post("/webhooks/linq", content=delivery.body,
                                 headers=sender.headers(delivery))
    assert response.status_code == 200
    await runtime.webhooks.drain()

    line = (await client.get(f"/api/v1/lines/{LINE}")).json()
    assert line["advice"] == "pause"
    await runtime.deliverer.run_once()
    (message,) = receiver.wait_for(1, path="pager")
    assert LINE in message.title and "FLAGGED" in message.title
    assert states(runtime) == {"unmatched": BACKLOG, "applied": 1}


async def test_after_a_restart_the_first_poll_applies_a_pending_event_behind_the_backlog(
        database_url: str, sim_server: SimulatorServer, sim: Simulator, receiver: Receiver
) -> None:
    sim.add_line(LINE)
    config = make_config(database_url, sim_server.url, receiver)
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as before:
        await poll(before)
        store_unmatched(before, BACKLOG)
        # Recorded, then the process died before applying it.
        delivery = sender.status_updated(LINE, new_status="FLAGGED")
        with before.sessions.begin() as session:
            session.add(WebhookEvent(event_id=delivery.event_id, account="main",
                                     event_type="phone_number.status_updated",
                                     received_at=datetime.now(UTC), state="pending",
                                     payload=delivery.body.decode(), phone_number=LINE))

    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as after:
        await poll(after)
        assert await after.webhooks.apply_pending("main") == 1  # what the daemon runs
        assert after.directory.find(LINE) is not None
        assert after.pollers["main"].find(LINE).service_status == "FLAGGED"  # type: ignore[union-attr]
        await after.deliverer.run_once()
        assert len(receiver.wait_for(1, path="pager")) == 1


async def test_an_unmatched_event_is_applied_when_a_poll_brings_its_number_and_old_ones_expire(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    await poll(runtime)
    store_unmatched(runtime, 3, received_at=datetime.now(UTC) - timedelta(days=2))
    delivery = sender.status_updated(LINE, new_status="FLAGGED")
    await client.post("/webhooks/linq", content=delivery.body, headers=sender.headers(delivery))
    await runtime.webhooks.drain()
    assert states(runtime) == {"unmatched": 4}

    sim.add_line(LINE)
    await poll(runtime)
    runtime.webhooks.schedule("main", retry_unmatched=True)  # as the daemon does after a poll
    await runtime.webhooks.drain()
    assert states(runtime) == {"applied": 1, "expired": 3}  # expired: older than 1 day
    assert runtime.metrics.webhook_events_expired.labels("main")._value.get() == 3


async def test_wakes_while_the_applier_runs_are_coalesced_into_one_task_per_account(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    numbers = sim.add_lines(50)
    await poll(runtime)
    for number in numbers:
        delivery = sender.status_updated(number, new_reputation="CRITICAL")
        response = await client.post("/webhooks/linq", content=delivery.body,
                                      headers=sender.headers(delivery))
        assert response.status_code == 200
        assert len([t for t in asyncio.all_tasks()
                    if t.get_name().startswith("webhooks:")]) <= 1
    await runtime.webhooks.drain()
    assert states(runtime) == {"applied": 50}
    assert all(runtime.pollers["main"].find(n).status == "CRITICAL"  # type: ignore[union-attr]
               for n in numbers)


async def test_a_webhook_body_past_64_kb_is_refused_with_413_and_one_below_is_taken(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    padded = sender.event("phone_number.status_updated", {
        "phone_number": LINE, "new_status": "FLAGGED",
        "changed_at": datetime.now(UTC).isoformat(), "pad": "x" * 60_000})
    response = await client.post("/webhooks/linq", content=padded.body,
                                 headers=sender.headers(padded))
    assert response.status_code == 200
    too_big = sender.event("phone_number.status_updated", {
        "phone_number": LINE, "pad": "x" * (64 * 1024)})
    response = await client.post("/webhooks/linq", content=too_big.body,
                                 headers=sender.headers(too_big))
    assert response.status_code == 413
    await runtime.webhooks.drain()
    assert states(runtime) == {"applied": 1}


async def test_retention_prunes_settled_webhook_events_and_keeps_pending_ones(
        runtime: Runtime) -> None:
    old = datetime.now(UTC) - timedelta(days=500)
    with runtime.sessions.begin() as session:
        for i, state in enumerate(["applied", "ignored", "expired", "other", "pending"]):
            session.add(WebhookEvent(event_id=f"old-{i}", account="main", event_type="x",
                                     received_at=old, payload="{}", state=state))
        session.add(WebhookEvent(event_id="new", account="main", event_type="x",
                                 received_at=datetime.now(UTC), payload="{}",
                                 state="applied"))
    result = prune(runtime.sessions, cutoff=datetime.now(UTC) - timedelta(days=400))
    assert result.webhook_events == 4
    assert "4 webhook events" in result.summary()
    assert states(runtime) == {"pending": 1, "applied": 1}


async def test_the_same_event_delivered_twice_at_once_is_recorded_once(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    delivery = sender.status_updated(LINE, new_reputation="CRITICAL")
    answers = await asyncio.gather(*(
        client.post("/webhooks/linq", content=delivery.body, headers=sender.headers(delivery))
        for _ in range(2)))
    assert sorted(r.json()["duplicate"] for r in answers) == [False, True]
    await runtime.webhooks.drain()
    assert states(runtime) == {"applied": 1}
