"""After a restart, a line the database holds as WATCH gets its reasons and worst chats
back from the stored chats at the chat sweep's first tick (before any page is fetched),
so its reminders say why again; before that, a reminder says honestly that they are
missing. On SQLite and PostgreSQL: the rebuild reads the stored chats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import monitor.service.runtime as runtime_module
from monitor.config import parse_config
from monitor.core.model import NoticeKind
from monitor.service.chats import Tick
from monitor.service.runtime import Runtime, open_database
from monitor.service.watch import RESTORED
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.schema import Notification

pytestmark = pytest.mark.both_databases

LINE = "+12020000001"


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def config(database_url: str, sim_server: SimulatorServer) -> dict[str, Any]:
    return {
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                      "max_retries": 0}],
        "database": {"url": database_url},
        "alerts": {"channels": [{"name": "early", "url": "json://127.0.0.1:9/early",
                                 "group_wait": "0s", "min_status": "WATCH",
                                 "repeat_interval": "1h"}]},
        "chats": {"enabled": True, "requests_per_minute": 600, "interval": "1d",
                  "watch": {"enter_unhealthy": 3, "exit_unhealthy": 1, "min_active": 1000,
                            "rise_share": 0, "baseline_share": 0}},
    }


def reminders(rt: Runtime) -> list[str]:
    with rt.sessions() as session:
        return list(session.scalars(select(Notification.body).where(
            Notification.kind == NoticeKind.REMINDER.value).order_by(Notification.id)))


@pytest.mark.slow  # two runtimes per database: .ci/run's slow suite
async def test_a_line_kept_on_watch_gets_its_reasons_back_from_the_stored_chats(
        database_url: str, sim: Simulator, sim_server: SimulatorServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(runtime_module, "utcnow", clock)
    sim.add_lines(1)
    sim.chats.add_chats(LINE, 10, at=clock.at)
    sim.chats.set_counts(LINE, {"CRITICAL": 1, "AT_RISK": 3}, at=clock.at)
    cfg = parse_config(config(database_url, sim_server), environ={})

    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        assert (await rt.pollers["main"].poll()).ok
        assert await rt.sweepers["main"].tick(clock.at) == Tick.DONE
        assert rt.pollers["main"].find(LINE).status == "WATCH"  # type: ignore[union-attr]

    # Restarted, an hour later: the reminder before the sweep's first tick says the
    # reasons are missing and why; the one after it has them, and no page was fetched.
    clock.at += timedelta(hours=1, minutes=1)
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        poller = rt.pollers["main"]
        assert (await poller.poll()).ok
        assert poller.find(LINE).status == "WATCH"  # type: ignore[union-attr]
        assert await poller.review() == 1
        (before,) = reminders(rt)
        assert f"Why: {RESTORED}." in before, before
        assert "Worst chats" not in before

        requests = sim.chats.requests
        assert await rt.sweepers["main"].tick(clock.at) == Tick.RESTING  # interval: 1 day
        assert sim.chats.requests == requests
        clock.at += timedelta(hours=1, minutes=1)
        assert await poller.review() == 1
        after = reminders(rt)[1]
        assert "Why: 4 chats AT_RISK or CRITICAL (WATCH from 3)." in after, after
        assert "Worst chats (4):" in after
        assert poller.find(LINE).status == "WATCH"  # type: ignore[union-attr]


@pytest.mark.slow  # two runtimes per database: .ci/run's slow suite
async def test_a_line_whose_stored_chats_cleared_leaves_watch_at_the_first_tick(
        database_url: str, sim: Simulator, sim_server: SimulatorServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The store holds chats below the exit level but the line as WATCH (the process
    stopped between storing the chats and recording what they changed): the first tick
    after the restart clears it, with the recovery notice."""
    clock = Clock()
    monkeypatch.setattr(runtime_module, "utcnow", clock)
    sim.add_lines(1)
    sim.chats.add_chats(LINE, 10, at=clock.at)
    sim.chats.set_counts(LINE, {"AT_RISK": 3}, at=clock.at)
    raw = config(database_url, sim_server)
    raw["chats"]["watch"]["exit_unhealthy"] = 3
    cfg = parse_config(raw, environ={})
    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        assert (await rt.pollers["main"].poll()).ok
        assert await rt.sweepers["main"].tick(clock.at) == Tick.DONE
        assert rt.pollers["main"].find(LINE).status == "WATCH"  # type: ignore[union-attr]
        # One chat recovers and is stored, but the poller never hears of it.
        sim.chats.set_counts(LINE, {"AT_RISK": 2}, at=clock.at)
        monkeypatch.setattr(rt.chat_health, "_targets", {})
        clock.at += timedelta(days=1, minutes=1)
        assert await rt.sweepers["main"].tick(clock.at) == Tick.DONE
        assert rt.pollers["main"].find(LINE).status == "WATCH"  # type: ignore[union-attr]

    engine, sessions = open_database(cfg)
    async with Runtime(cfg, engine, sessions) as rt:
        assert (await rt.pollers["main"].poll()).ok
        requests = sim.chats.requests
        assert await rt.sweepers["main"].tick(clock.at) == Tick.RESTING
        assert sim.chats.requests == requests
        assert rt.pollers["main"].find(LINE).status == "HEALTHY"  # type: ignore[union-attr]
        with rt.sessions() as session:
            kinds = list(session.scalars(select(Notification.kind).order_by(Notification.id)))
        assert kinds[-1] == NoticeKind.RECOVERED.value
