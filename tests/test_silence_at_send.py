"""Once ``silence add`` (or ``silence expire``) has returned, a running monitor applies it to
the next change, on SQLite and PostgreSQL: the silences are re-read when a poll, a policy
round or a batch of webhook events decides, not only every ``policy_interval``.

The monitor is the daemon's Runtime in-process (its own policy loop never runs here, so
nothing but the planning step itself can have re-read the silences); the silence is stored
by the CLI as on-call runs it; alerts go through Apprise's json:// to the local receiver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from monitor.config import load_config
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from monitor.store.schema import Notification
from tests.support.daemon import cli, write_config
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.both_databases, pytest.mark.timeout(120)]

PHONE = "+12025550101"
SECRET = new_secret()
RuntimeFactory = Callable[[], Any]


@pytest.fixture
def config(tmp_path: Path, database_url: str, sim_server: SimulatorServer,
           receiver: Receiver) -> Path:
    return write_config(
        tmp_path / "config.toml", base_url=sim_server.url, database_url=database_url,
        channels=[("ops", receiver.url("ops"), "AT_RISK"),
                  ("pager", receiver.url("pager"), "CRITICAL")],
        extra_account='webhook_secret_env = "TEST_WEBHOOK_SECRET"')


@pytest.fixture
async def make_runtime(config: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[RuntimeFactory]:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    opened: list[Runtime] = []

    async def make() -> Runtime:
        loaded = load_config(config)
        engine, sessions = open_database(loaded)
        rt = await Runtime(loaded, engine, sessions).__aenter__()
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        await rt.__aexit__(None, None, None)


def silence(config: Path, *args: str) -> None:
    result = cli("silence", *args, "--config", str(config))
    assert result.returncode == 0, result.stderr


def outbox(rt: Runtime) -> list[tuple[str, str]]:
    with rt.sessions() as session:
        return [(n.channel, n.state) for n in session.scalars(
            select(Notification).order_by(Notification.id))]


async def test_a_silence_added_just_before_a_critical_stops_its_page(
        make_runtime: RuntimeFactory, config: Path, sim: Simulator,
        receiver: Receiver) -> None:
    sim.add_line(PHONE)
    rt = await make_runtime()
    assert (await rt.pollers["main"].poll()).ok  # the line is known, HEALTHY

    silence(config, "add", "--line", PHONE, "--for", "1h", "--reason", "porting")
    sim.set_status(PHONE, "CRITICAL")
    outcome = await rt.pollers["main"].poll()
    await rt.deliverer.run_once()

    assert outcome.ok and outcome.transitions == 1 and outcome.notifications == 0
    assert receiver.messages == []
    assert outbox(rt) == [("ops", "silenced"), ("pager", "silenced")]
    history = cli("history", PHONE, "--config", str(config))
    assert "ops:silenced" in history.stdout and "pager:silenced" in history.stdout


async def test_a_silence_expired_just_before_a_critical_no_longer_holds_it(
        make_runtime: RuntimeFactory, config: Path, sim: Simulator,
        receiver: Receiver) -> None:
    sim.add_line(PHONE)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    silence(config, "add", "--line", PHONE, "--for", "1h", "--reason", "porting")
    rt = await make_runtime()  # reads the silence as it starts
    assert (await rt.pollers["main"].poll()).ok

    silence(config, "expire", "1")
    sim.set_status(PHONE, "CRITICAL")
    assert (await rt.pollers["main"].poll()).notifications == 2
    await rt.deliverer.run_once()

    (page,) = receiver.wait_for(1, path="pager")
    assert PHONE in page.title and "CRITICAL" in page.title
    assert outbox(rt) == [("ops", "delivered"), ("pager", "delivered")]


async def test_a_silence_added_just_before_a_webhook_stops_its_page(
        make_runtime: RuntimeFactory, config: Path, sim: Simulator,
        receiver: Receiver) -> None:
    sim.add_line(PHONE)
    rt = await make_runtime()
    assert (await rt.pollers["main"].poll()).ok

    silence(config, "add", "--line", PHONE, "--for", "1h", "--reason", "porting")
    sender = WebhookSender(SECRET)
    delivery = sender.status_updated(PHONE, previous_reputation="HEALTHY",
                                     new_reputation="CRITICAL")
    app = build_app(rt, started_at=datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitor") as client:
        answer = await client.post("/webhooks/linq", content=delivery.body,
                                   headers=sender.headers(delivery))
    await rt.webhooks.drain()
    await rt.deliverer.run_once()

    assert answer.status_code == 200
    assert receiver.messages == []
    assert outbox(rt) == [("ops", "silenced"), ("pager", "silenced")]
