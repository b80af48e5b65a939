"""Webhooks through the daemon's own HTTP app and pipeline, on SQLite and PostgreSQL: the
answers, idempotency, ordering against polls, FLAGGED/ACTIVE alerts, unknown lines.

The app is called in-process (httpx's ASGI transport); the Linq API is the simulator on a
real socket and alerts go through Apprise's json:// to the local receiver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import Delivery, new_secret
from monitor.store.schema import Line, Notification, TransitionRow, WebhookEvent
from tests.support.receiver import Receiver
from tests.support.webhooks import app_client, channel, deliver, sender, webhook_config

# These touch SQL: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases

LINE = "+12025550101"


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer, receiver: Receiver
                  ) -> AsyncIterator[Runtime]:
    config = webhook_config(database_url, sim_server.url, channels=[
        channel("ops", receiver.url("ops")),
        channel("pager", receiver.url("pager"), min_status="CRITICAL")])
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as rt:
        yield rt


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(runtime) as c:
        yield c


async def poll(rt: Runtime) -> int:
    outcome = await rt.pollers["main"].poll()
    assert outcome.ok, outcome.error
    return outcome.notifications


def notifications(rt: Runtime) -> list[Notification]:
    with rt.sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def transitions(rt: Runtime) -> list[TransitionRow]:
    with rt.sessions() as session:
        return list(session.scalars(select(TransitionRow).where(TransitionRow.kind != "first_seen")
                                    .order_by(TransitionRow.id)))


def event_states(rt: Runtime) -> list[str]:
    with rt.sessions() as session:
        return list(session.scalars(select(WebhookEvent.state).order_by(WebhookEvent.id)))


async def test_a_signed_status_webhook_alerts_and_the_next_poll_sends_nothing_again(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    response = await deliver(client, runtime, sender.status_updated(
        LINE, previous_reputation="HEALTHY", new_reputation="CRITICAL"))
    assert response.status_code == 200
    assert [(t.from_status, t.to_status, t.source) for t in transitions(runtime)] == [
        ("HEALTHY", "CRITICAL", "webhook")]
    assert [n.channel for n in notifications(runtime)] == ["ops", "pager"]
    await runtime.audits.drain()  # CRITICAL: held for its audit, as after a poll
    await runtime.deliverer.run_once()
    message = receiver.wait_for(1, path="pager")[0]
    assert "HEALTHY → CRITICAL" in message.title and LINE in message.title
    assert "Primary driver: low_engagement" in message.message

    sim.set_status(LINE, "CRITICAL")  # Linq's list now agrees with the webhook
    assert await poll(runtime) == 0
    assert len(notifications(runtime)) == 2
    with runtime.sessions() as session:
        line = session.scalars(select(Line)).one()
    assert line.status == "CRITICAL"
    assert line.doc_url and "#critical" in line.doc_url  # the poll brought the exact doc_url


async def test_a_webhook_about_what_a_poll_already_saw_sends_nothing(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    changed_at = datetime.now(UTC)
    sim.set_status(LINE, "AT_RISK")
    assert await poll(runtime) == 1
    response = await deliver(client, runtime, sender.status_updated(
        LINE, previous_reputation="HEALTHY", new_reputation="AT_RISK", changed_at=changed_at))
    assert response.status_code == 200
    assert len(notifications(runtime)) == 1
    assert event_states(runtime) == ["ignored"]


async def test_an_older_event_never_rolls_a_line_back(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    now = datetime.now(UTC)
    await deliver(client, runtime, sender.status_updated(
        LINE, new_reputation="CRITICAL", new_status="FLAGGED", changed_at=now))
    # Delivered late: the AT_RISK that came before the CRITICAL, and the ACTIVE before FLAGGED.
    await deliver(client, runtime, sender.status_updated(
        LINE, new_reputation="AT_RISK", new_status="ACTIVE",
        changed_at=now - timedelta(minutes=1)))
    with runtime.sessions() as session:
        line = session.scalars(select(Line)).one()
    assert (line.status, line.service_status) == ("CRITICAL", "FLAGGED")
    assert event_states(runtime) == ["applied", "ignored"]
    assert runtime.pollers["main"].find(LINE).status == "CRITICAL"  # type: ignore[union-attr]


async def test_a_redelivered_event_changes_nothing(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    delivery = sender.status_updated(LINE, new_reputation="AT_RISK")
    first = await deliver(client, runtime, delivery)
    again = await deliver(client, runtime, delivery)
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert len(transitions(runtime)) == 1
    assert len(notifications(runtime)) == 1
    assert runtime.metrics.webhooks.labels("duplicate")._value.get() == 1


async def test_flagged_pages_every_channel_and_active_is_a_recovery(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    line_id = sim.add_line(LINE, status="AT_RISK")
    await poll(runtime)
    await runtime.deliverer.run_once()
    receiver.wait_for(1, path="ops")
    await deliver(client, runtime, sender.status_updated(
        LINE, previous_status="ACTIVE", new_status="FLAGGED"))
    await runtime.deliverer.run_once()
    flagged = receiver.wait_for(1, path="pager")[0]
    assert "FLAGGED" in flagged.title and LINE in flagged.title
    assert "pause outbound" in flagged.message
    assert len(receiver.wait_for(2, path="ops")) == 2
    gauge = runtime.metrics.line_flagged.labels("main", line_id, LINE)
    assert gauge._value.get() == 1

    await deliver(client, runtime, sender.status_updated(
        LINE, previous_status="FLAGGED", new_status="ACTIVE"))
    await runtime.deliverer.run_once()
    restored = receiver.wait_for(2, path="pager")[1]
    assert "FLAGGED → ACTIVE" in restored.title
    assert gauge._value.get() == 0
    assert [(t.kind, t.from_status, t.to_status) for t in transitions(runtime)] == [
        ("service", "ACTIVE", "FLAGGED"), ("service", "FLAGGED", "ACTIVE")]
    # Reputation untouched: AT_RISK all along.
    assert runtime.pollers["main"].find(LINE).status == "AT_RISK"  # type: ignore[union-attr]


async def test_an_event_for_an_unknown_line_is_kept_and_applied_once_a_poll_sees_the_line(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    await poll(runtime)
    response = await deliver(client, runtime, sender.status_updated(LINE, new_status="FLAGGED"))
    assert response.status_code == 200
    assert event_states(runtime) == ["unmatched"]
    sim.add_line(LINE)
    await poll(runtime)
    assert await runtime.webhooks.apply_pending("main") == 1
    assert event_states(runtime) == ["applied"]
    assert [t.to_status for t in transitions(runtime)] == ["FLAGGED"]


async def test_a_poll_in_flight_while_a_webhook_lands_does_not_undo_it(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    # The list answer is taken before the webhook arrives, but committed after it.
    sim.queue_delay(1.0)
    asked = sim.request_count
    in_flight = asyncio.create_task(runtime.pollers["main"].poll())
    while sim.request_count == asked:  # until the poll's request is being answered
        await asyncio.sleep(0.01)
    await deliver(client, runtime, sender.status_updated(LINE, new_reputation="CRITICAL"))
    outcome = await in_flight
    assert outcome.ok and outcome.transitions == 0
    assert runtime.pollers["main"].find(LINE).status == "CRITICAL"  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b"{not json", "signed", 400),
    (b'{"event_type": "phone_number.status_updated", "data": {}}', "signed", 400),
    (b'{"event_type": "message.received", "event_id": "e1", "data": {}}', "signed", 200),
    (b'{"event_type": "phone_number.status_updated"}', "none", 401),
    (b'{"event_type": "phone_number.status_updated"}', "forged", 401),
])
async def test_it_answers_each_kind_of_request_as_documented(
        runtime: Runtime, client: httpx.AsyncClient, body: bytes, headers: str, status: int
) -> None:
    delivery = Delivery(body, "evt-1")
    chosen = {"signed": sender.headers(delivery), "none": {},
              "forged": sender.headers(delivery, secret=new_secret())}[headers]
    response = await deliver(client, runtime, delivery, headers=chosen)
    assert response.status_code == status
    if status == 401:
        assert response.text == "unauthorized\n"  # no hint of which check failed
    assert notifications(runtime) == []


async def test_it_refuses_a_body_past_the_limit_with_413(
        runtime: Runtime, client: httpx.AsyncClient) -> None:
    delivery = Delivery(b'{"pad": "' + b"x" * (1 << 20) + b'"}', "evt-big")
    response = await deliver(client, runtime, delivery)
    assert response.status_code == 413
    assert event_states(runtime) == []


async def test_a_flagged_page_does_not_wait_for_its_audit_a_critical_one_does(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.audits.configure(delay=3600)  # audits outlast the test unless it finishes them
    flagged_id, critical_id = sim.add_line(LINE), sim.add_line("+12025550102")
    await poll(runtime)
    await deliver(client, runtime, sender.status_updated(
        LINE, new_reputation="CRITICAL", new_status="FLAGGED"))
    await deliver(client, runtime, sender.status_updated("+12025550102", new_reputation="CRITICAL"))
    now = datetime.now(UTC)
    waiting = {n.line_id for n in notifications(runtime) if n.next_attempt_at > now}
    assert waiting == {critical_id}  # both start an audit; only the CRITICAL alert waits
    assert {n.line_id for n in notifications(runtime)} == {flagged_id, critical_id}
    sim.audits.configure(delay=0)  # any audit not yet started finishes at once
    sim.audits.finish_running()
    await runtime.audits.drain()
