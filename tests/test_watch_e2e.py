"""The WATCH early warning end to end, on SQLite and PostgreSQL: chat summaries handed to a
real poller (``apply_chat_health``), recorded with their notices in the store, delivered
through Apprise's json:// to the local receiver, seen by the gate API and /metrics, and
kept consistent with the polls of the simulated Linq API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor.config import load_config, parse_config
from monitor.core.chats import ChatHealthSummary, WorstChat
from monitor.core.silence import MatcherKind
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from monitor.store.schema import Line, Notification, TransitionRow
from monitor.store.silences import add_silence
from tests.support.daemon import cli, write_config
from tests.support.receiver import Receiver

pytestmark = pytest.mark.both_databases

LINE = "+12025550101"
OTHER = "+12025550102"
WORST = (WorstChat("chat-critical", "CRITICAL", datetime(2026, 11, 29, 22, 0, tzinfo=UTC),
                   "https://docs.linqapp.com/chats#critical"),
         WorstChat("chat-at-risk", "AT_RISK", datetime(2026, 11, 28, 8, 30, tzinfo=UTC), None))


def chats(phone: str, unhealthy: int, *, active: int = 40, account: str = "main"
          ) -> ChatHealthSummary:
    return ChatHealthSummary(
        account, phone, {"HEALTHY": active - unhealthy, "AT_RISK": unhealthy - 1,
                         "CRITICAL": 1}, active, WORST if unhealthy else (),
        datetime.now(UTC))


def config(database_url: str, sim_server: SimulatorServer, receiver: Receiver) -> dict:
    return {
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                      "max_retries": 0}],
        "database": {"url": database_url},
        "alerts": {"channels": [
            {"name": "early", "url": receiver.url("early"), "group_wait": "0s",
             "min_status": "WATCH"},
            {"name": "ops", "url": receiver.url("ops"), "group_wait": "0s"}]},
        # The levels these cases were written at (8 of 40 chats warns, no noise gate); the
        # defaults are argued and measured in docs/early-warning.md.
        "chats": {"watch": {"enter_share": 0.20, "rise_share": 0.15, "baseline_share": 0}},
    }


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer, receiver: Receiver
                  ) -> AsyncIterator[Runtime]:
    cfg = parse_config(config(database_url, sim_server, receiver), environ={})
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        yield rt


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(runtime, started_at=datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitor") as client:
        yield client


async def poll(rt: Runtime) -> int:
    outcome = await rt.pollers["main"].poll()
    assert outcome.ok, outcome.error
    return outcome.notifications


def changes(rt: Runtime) -> list[tuple[str | None, str, str]]:
    with rt.sessions() as session:
        rows = session.scalars(select(TransitionRow).where(TransitionRow.kind != "first_seen")
                               .order_by(TransitionRow.id))
        return [(r.from_status, r.to_status, r.source) for r in rows]


def queued(rt: Runtime) -> list[tuple[str, str, str]]:
    with rt.sessions() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id))
        return [(n.channel, n.kind, n.state) for n in rows]


def stored_status(rt: Runtime, phone: str = LINE) -> str:
    with rt.sessions() as session:
        return session.scalars(select(Line.status).where(Line.phone_number == phone)).one()


async def test_souring_chats_warn_a_watch_channel_and_clear_with_a_notice(
        runtime: Runtime, api: httpx.AsyncClient, sim: Simulator, receiver: Receiver) -> None:
    sim.add_line(LINE)
    sim.add_line(OTHER)
    await poll(runtime)
    poller = runtime.pollers["main"]

    await poller.apply_chat_health([chats(LINE, 8), chats(OTHER, 1)], datetime.now(UTC))
    assert changes(runtime) == [("HEALTHY", "WATCH", "chats")]
    assert stored_status(runtime) == "WATCH" and stored_status(runtime, OTHER) == "HEALTHY"
    assert queued(runtime) == [("early", "degraded", "pending")]  # not ops: it stays AT_RISK
    await runtime.deliverer.run_once()
    message = receiver.wait_for(1, path="early")[0]
    assert message.title.startswith(f"[WATCH] {LINE} degraded: HEALTHY → WATCH")
    assert "Why: 8 of 40 active chats AT_RISK or CRITICAL (20%; WATCH from 20%)." \
        in message.message
    assert "CRITICAL  chat chat-critical since 2026-11-29 22:00 UTC" in message.message
    assert "AT_RISK   chat chat-at-risk since 2026-11-28 08:30 UTC" in message.message
    assert "Recommended action: Slow outbound on these chats; check reply rate." \
        in message.message

    gate = (await api.get(f"/api/v1/lines/{LINE}")).json()
    assert (gate["status"], gate["severity"], gate["advice"]) == ("WATCH", 0.5, "slow_down")
    history = (await api.get(f"/api/v1/lines/{LINE}/history")).json()
    assert history["changes"][0]["source"] == "chats"
    exposed = (await api.get("/metrics")).text
    severity = next(x for x in exposed.splitlines()
                    if x.startswith("linq_reputation_line_severity{") and LINE in x)
    assert severity.endswith(" 0.5")
    assert f'phone_number="{LINE}",status="WATCH"}} 1' in exposed
    assert 'linq_reputation_lines{account="main",status="WATCH"} 1.0' in exposed
    assert 'from_status="HEALTHY",to_status="WATCH"} 1.0' in exposed

    # Linq still says HEALTHY: a poll does not undo the warning, nor repeat it.
    assert await poll(runtime) == 0
    assert stored_status(runtime) == "WATCH"

    # The same summary again: nothing new.
    await poller.apply_chat_health([chats(LINE, 8)], datetime.now(UTC))
    assert len(queued(runtime)) == 1

    await poller.apply_chat_health([chats(LINE, 2)], datetime.now(UTC))
    assert changes(runtime)[-1] == ("WATCH", "HEALTHY", "chats")
    assert queued(runtime)[-1] == ("early", "recovered", "pending")
    await runtime.deliverer.run_once()
    cleared = receiver.wait_for(2, path="early")[1]
    assert "recovered: WATCH → HEALTHY" in cleared.title
    assert "Its chats recovered: every WATCH signal is below its exit level." in cleared.message
    assert not [m for m in receiver.messages if m.path == "/ops"]
    gate = (await api.get(f"/api/v1/lines/{LINE}")).json()
    assert gate["advice"] == "send"


async def test_no_watch_for_a_line_linq_already_reports_at_risk(
        runtime: Runtime, sim: Simulator) -> None:
    sim.add_line(LINE, status="AT_RISK")
    await poll(runtime)
    poller = runtime.pollers["main"]
    await poller.apply_chat_health([chats(LINE, 12)], datetime.now(UTC))
    assert stored_status(runtime) == "AT_RISK"
    assert changes(runtime) == []

    # Linq lifts it while its chats are still bad: back to WATCH, not HEALTHY. The AT_RISK
    # channel hears the line is no longer AT_RISK; the WATCH channel that it improved.
    sim.set_status(LINE, "HEALTHY")
    await poll(runtime)
    assert stored_status(runtime) == "WATCH"
    assert changes(runtime) == [("AT_RISK", "WATCH", "poll")]
    assert [(c, k) for c, k, _ in queued(runtime)][-2:] == [("early", "improved"),
                                                           ("ops", "recovered")]


async def test_a_silenced_line_records_its_watch_without_sending_it(
        runtime: Runtime, sim: Simulator, receiver: Receiver) -> None:
    sim.add_line(LINE)
    await poll(runtime)
    now = datetime.now(UTC)
    add_silence(runtime.sessions, kind=MatcherKind.LINE, value=LINE, reason="campaign",
                created_by="test", starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=1), now=now)
    await runtime.pollers["main"].apply_chat_health([chats(LINE, 8)], now)
    assert stored_status(runtime) == "WATCH"
    assert queued(runtime) == [("early", "degraded", "silenced")]
    assert await runtime.deliverer.run_once() == 0
    assert receiver.messages == []


async def test_a_restart_keeps_the_line_on_watch_until_its_chats_clear(
        database_url: str, sim_server: SimulatorServer, sim: Simulator,
        receiver: Receiver) -> None:
    sim.add_line(LINE)
    cfg = parse_config(config(database_url, sim_server, receiver), environ={})
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        await poll(rt)
        await rt.pollers["main"].apply_chat_health([chats(LINE, 8)], datetime.now(UTC))
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        assert await poll(rt) == 0  # Linq says HEALTHY; the stored WATCH stands
        assert stored_status(rt) == "WATCH"
        await rt.pollers["main"].apply_chat_health([chats(LINE, 4)], datetime.now(UTC))
        assert stored_status(rt) == "WATCH"  # 10 %: not below the exit level yet
        await rt.pollers["main"].apply_chat_health([chats(LINE, 3)], datetime.now(UTC))
        assert stored_status(rt) == "HEALTHY"


async def test_status_and_history_show_watch(
        database_url: str, sim_server: SimulatorServer, sim: Simulator, receiver: Receiver,
        tmp_path: Path) -> None:
    sim.add_line(LINE)
    path = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                        database_url=database_url,
                        channels=[("early", receiver.url("early"), "WATCH")])
    cfg = load_config(path)
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        await poll(rt)
        await rt.pollers["main"].apply_chat_health([chats(LINE, 12)], datetime.now(UTC))
    status = cli("status", "--status", "watch", "--json", "--config", str(path))
    assert status.returncode == 0, status.stderr
    assert [(line["phone_number"], line["status"]) for line in json.loads(status.stdout)[
        "lines"]] == [(LINE, "WATCH")]
    history = cli("history", LINE, "--config", str(path))
    assert history.returncode == 0, history.stderr
    assert "HEALTHY → WATCH  changed     early:pending" in history.stdout
    recorded = json.loads(cli("history", LINE, "--json", "--config", str(path)).stdout)
    assert (recorded[0]["to_status"], recorded[0]["source"]) == ("WATCH", "chats")


async def test_a_webhook_lifting_a_line_whose_chats_are_bad_leaves_it_on_watch(
        database_url: str, sim_server: SimulatorServer, sim: Simulator,
        receiver: Receiver) -> None:
    secret = new_secret()
    raw = config(database_url, sim_server, receiver)
    raw["accounts"][0]["webhook_secret_env"] = "TEST_WEBHOOK_SECRET"
    cfg = parse_config(raw, environ={"TEST_WEBHOOK_SECRET": secret})
    sender = WebhookSender(secret)
    sim.add_line(LINE, status="AT_RISK")
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        app = build_app(rt, started_at=datetime.now(UTC))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://monitor") as client:
            await poll(rt)
            await rt.pollers["main"].apply_chat_health([chats(LINE, 12)], datetime.now(UTC))
            for _ in range(2):  # Linq says HEALTHY, twice: WATCH once, then nothing new
                delivery = sender.status_updated(LINE, previous_reputation="AT_RISK",
                                                 new_reputation="HEALTHY")
                response = await client.post("/webhooks/linq", content=delivery.body,
                                             headers=sender.headers(delivery))
                assert response.status_code == 200
                await rt.webhooks.drain()
            assert stored_status(rt) == "WATCH"
            assert changes(rt) == [("AT_RISK", "WATCH", "webhook")]
