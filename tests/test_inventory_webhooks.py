"""The account's inventory in real time: ``phone_number.released`` removes a line at once,
``phone_number.assigned`` brings the next poll forward, ``phone_number.forwarding_updated``
is recorded and changes nothing. SQLite and PostgreSQL; a real daemon for "assigned".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import Delivery
from monitor.store.schema import Line, Notification, TransitionRow, WebhookEvent
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.receiver import Receiver
from tests.support.webhooks import SECRET, app_client, channel, deliver, sender, webhook_config

pytestmark = pytest.mark.both_databases

LINE = "+12025550101"


@pytest.fixture
def polls_asked() -> list[str]:
    return []


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer, receiver: Receiver,
                  polls_asked: list[str]) -> AsyncIterator[Runtime]:
    config = webhook_config(database_url, sim_server.url,
                            channels=[channel("ops", receiver.url("ops"))])
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions, poll_now=polls_asked.append) as rt:
        yield rt


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(runtime) as c:
        yield c


async def post(client: httpx.AsyncClient, runtime: Runtime, delivery: Delivery) -> int:
    return (await deliver(client, runtime, delivery)).status_code


async def poll(rt: Runtime) -> None:
    outcome = await rt.pollers["main"].poll()
    assert outcome.ok, outcome.error


def event_states(rt: Runtime) -> list[tuple[str, str, str | None]]:
    with rt.sessions() as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(WebhookEvent.event_type, WebhookEvent.state, WebhookEvent.note)
            .order_by(WebhookEvent.id))]


async def test_a_released_line_is_removed_at_once_and_the_next_poll_agrees(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE, status="AT_RISK")
    await poll(runtime)
    with runtime.sessions() as session:
        paged = len(session.scalars(select(Notification)).all())  # the AT_RISK sighting
    assert await post(client, runtime, sender.released(LINE)) == 200

    assert (await client.get(f"/api/v1/lines/{LINE}")).status_code == 404
    with runtime.sessions() as session:
        assert session.scalars(select(Line.present)).all() == [False]
        removed = session.scalars(select(TransitionRow).where(
            TransitionRow.kind == "removed")).all()
        assert [(t.phone_number, t.source) for t in removed] == [(LINE, "webhook")]
        # A removal is not paged (as when a poll finds a line gone).
        assert len(session.scalars(select(Notification)).all()) == paged
    assert event_states(runtime) == [("phone_number.released", "applied", None)]

    sim.remove_line(LINE)
    await poll(runtime)
    with runtime.sessions() as session:  # the poll saw nothing new
        assert len(session.scalars(select(TransitionRow).where(
            TransitionRow.kind == "removed")).all()) == 1


async def test_a_release_older_than_what_a_poll_saw_since_is_ignored(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    old = sender.released(LINE, changed_at=datetime.now(UTC) - timedelta(days=1))
    assert await post(client, runtime, old) == 200
    assert runtime.pollers["main"].find(LINE) is not None
    assert event_states(runtime) == [
        ("phone_number.released", "ignored", "older than what is known")]


async def test_an_assigned_number_brings_the_next_poll_forward(
        runtime: Runtime, client: httpx.AsyncClient, polls_asked: list[str]) -> None:
    await poll(runtime)
    assert await post(client, runtime, sender.assigned(LINE)) == 200
    assert polls_asked == ["main"]
    assert event_states(runtime) == [
        ("phone_number.assigned", "applied", "poll brought forward")]


async def test_a_forwarding_update_is_recorded_and_alerts_no_one(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    delivery = sender.forwarding_updated(LINE, before=None, after="+14155550000")
    assert await post(client, runtime, delivery) == 200
    assert event_states(runtime) == [("phone_number.forwarding_updated", "other", None)]
    assert runtime.metrics.webhooks.labels("accepted")._value.get() == 1
    with runtime.sessions() as session:
        assert session.scalars(select(Notification)).all() == []


@pytest.mark.slow  # a real daemon, ~35 s on 2 cores
def test_the_daemon_records_an_assigned_line_without_waiting_for_its_poll_interval(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One database is enough here: the SQL is the same as above; this is about the process.
    monkeypatch.setenv("E2E_WEBHOOK_SECRET", SECRET)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
                          poll_interval="1h",
                          extra_account='webhook_secret_env = "E2E_WEBHOOK_SECRET"')
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_polls(1)
        sim.add_line(LINE)  # Linq assigns the number, then tells us
        assert sender.send(daemon.url + "/webhooks/linq",
                           sender.assigned(LINE)).status_code == 200
        found = wait_until(lambda: httpx.get(f"{daemon.url}/api/v1/lines/{LINE}",
                                             timeout=5).status_code == 200,
                           what="the assigned line in the gate API")
        assert found
        assert daemon.polls() == 2  # the poll interval is an hour: this one was asked for
    finally:
        daemon.stop()
