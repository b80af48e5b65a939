"""Message and chat webhook events carrying chat.health_status: applied at once to the
chats table and the line's summary, through the daemon's own HTTP app; on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import Delivery
from monitor.store.chats import line_chats
from monitor.webhooks.chats import chat_record
from tests.support.daemon import cli, migrated_config, parse_metrics, sample_value
from tests.support.webhooks import app_client, deliver, sender, webhook_config

pytestmark = pytest.mark.both_databases

LINE = "+12025550101"
T0 = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture
async def runtime(database_url: str, sim: Simulator, sim_server: SimulatorServer
                  ) -> AsyncIterator[Runtime]:
    sim.add_line(LINE)
    config = webhook_config(database_url, sim_server.url)
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as rt:
        assert (await rt.pollers["main"].poll()).ok  # the line is known, with its id
        yield rt


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(runtime) as c:
        yield c


async def post(client: httpx.AsyncClient, runtime: Runtime, delivery: Delivery) -> int:
    return (await deliver(client, runtime, delivery)).status_code


def shown(rt: Runtime) -> list[tuple[str, str]]:
    with rt.sessions() as session:
        return [(c.chat_id, c.status) for c in line_chats(session, LINE)]


async def unhealthy_metric(client: httpx.AsyncClient) -> float | None:
    samples = parse_metrics((await client.get("/metrics")).text)
    return sample_value(samples, "linq_reputation_line_unhealthy_chats", account="main",
                        phone_number=LINE)


async def test_a_message_event_applies_its_chats_health_at_once(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    [healthy, souring] = sim.chats.add_chats(LINE, 2, at=T0)
    sim.chats.set_status(souring, "AT_RISK", at=T0 + timedelta(hours=1))
    assert await post(client, runtime, sender.message_event(sim.chats.chat(healthy))) == 200
    assert shown(runtime) == []  # stored, HEALTHY
    assert await unhealthy_metric(client) is None
    assert await post(client, runtime, sender.message_event(
        sim.chats.chat(souring), event_type="message.sent")) == 200
    assert shown(runtime) == [(souring, "AT_RISK")]
    assert await unhealthy_metric(client) == 1
    line_id = runtime.pollers["main"].find(LINE)
    assert line_id is not None
    samples = parse_metrics((await client.get("/metrics")).text)
    assert sample_value(samples, "linq_reputation_line_unhealthy_chats",
                        line_id=line_id.line_id) == 1
    # It recovers: the series goes (absent means none).
    sim.chats.set_status(souring, "HEALTHY", at=T0 + timedelta(hours=2))
    assert await post(client, runtime, sender.message_event(sim.chats.chat(souring))) == 200
    assert shown(runtime) == []
    assert await unhealthy_metric(client) is None


async def test_a_chat_event_applies_and_an_older_one_changes_nothing(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    [chat_id] = sim.chats.add_chats(LINE, 1, at=T0)
    sim.chats.set_status(chat_id, "OPTED_OUT", at=T0 + timedelta(hours=1))
    stale = sender.message_event(sim.chats.chat(chat_id))  # built now, delivered late
    sim.chats.set_status(chat_id, "CRITICAL", at=T0 + timedelta(hours=2))
    assert await post(client, runtime, sender.chat_event(sim.chats.chat(chat_id))) == 200
    assert shown(runtime) == [(chat_id, "CRITICAL")]
    assert await post(client, runtime, stale) == 200
    assert shown(runtime) == [(chat_id, "CRITICAL")]


async def test_a_redelivered_event_or_one_without_a_chat_is_harmless(
        runtime: Runtime, client: httpx.AsyncClient, sim: Simulator) -> None:
    [chat_id] = sim.chats.add_chats(LINE, 1, at=T0, status="CRITICAL")
    delivery = sender.message_event(sim.chats.chat(chat_id))
    assert await post(client, runtime, delivery) == 200
    assert await post(client, runtime, delivery) == 200
    assert shown(runtime) == [(chat_id, "CRITICAL")]
    typing = sender.event("chat.typing_indicator.started", {"chat_id": chat_id})
    assert await post(client, runtime, typing) == 200
    assert chat_record(typing.body) is None


def test_webhook_register_with_chats_subscribes_the_message_and_chat_events(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    config = migrated_config(tmp_path, base_url=sim_server.url)
    done = cli("webhook", "register", "--url", "https://m.example.com/webhooks/linq",
               "--chats", "--config", str(config))
    assert done.returncode == 0, done.stderr
    [subscription] = sim.subscriptions.list()["subscriptions"]
    assert {"phone_number.status_updated", "message.received", "message.sent",
            "chat.created"} <= set(subscription["subscribed_events"])
