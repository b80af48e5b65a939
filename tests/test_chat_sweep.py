"""The chat sweep: every chat once per sweep under the request budget, Retry-After obeyed,
resumed after a restart, silent (no writes, no summaries) when nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.client import LinqClient
from monitor.core.chats import ChatHealthSummary
from monitor.core.model import LineState
from monitor.metrics import Metrics
from monitor.service.chat_health import ChatHealth
from monitor.service.chats import ChatSweeper, SweepSettings, Tick
from monitor.simulator import Simulator, SimulatorServer, load_scenario
from monitor.store.chats import SweepProgress, load_progress, save_progress
from monitor.store.schema import ChatRow
from monitor.webhooks.process import ALONE

T0 = datetime(2026, 11, 1, tzinfo=UTC)
LINES = ["+12025550001", "+12025550002", "+12025550003"]


class Poller:
    """The account poller's side of the junction: records what it is handed."""

    def __init__(self) -> None:
        self.calls: list[list[ChatHealthSummary]] = []

    def find(self, phone_or_id: str) -> LineState | None:
        # Every number is a known line: chat health hands a summary over again until the
        # poller knows its line (tests/test_watch_daemon.py).
        return LineState("main", phone_or_id, phone_or_id, "HEALTHY", None,
                         datetime(2026, 1, 1, tzinfo=UTC))

    async def apply_chat_health(self, summaries: Sequence[ChatHealthSummary],
                                now: datetime) -> None:
        self.calls.append(list(summaries))

    def handed(self) -> dict[str, ChatHealthSummary]:
        return {s.phone_number: s for call in self.calls for s in call}


@pytest.fixture
def sim() -> Simulator:
    sim = Simulator(token="sim-token")
    for line in LINES:
        sim.chats.add_chats(line, 90, at=T0)  # 270 chats: 3 pages of 100
    return sim


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[LinqClient]:
    with SimulatorServer(sim) as server:
        async with LinqClient(base_url=server.url, token="sim-token") as client:
            yield client


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(days=1)

    def __call__(self) -> datetime:
        return self.now


def sweeper(client: LinqClient, sessions: sessionmaker[Session], poller: Poller, clock: Clock,
            *, per_minute: int = 600, interval: timedelta = timedelta(hours=1)) -> ChatSweeper:
    health = ChatHealth(sessions, {"acme": poller}, Metrics(), window=timedelta(days=7),
                        clock=clock, leases=ALONE)
    return ChatSweeper("acme", client, sessions, health, Metrics(),
                       settings=SweepSettings(per_minute, interval))


async def sweep(s: ChatSweeper, clock: Clock, *, step: timedelta = timedelta(seconds=1)
                ) -> list[Tick]:
    ticks = []
    while not ticks or ticks[-1] != Tick.DONE:
        ticks.append(await s.tick(clock.now))
        clock.now += step
        assert len(ticks) < 100
    return ticks


def chat_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(ChatRow)) or 0


@pytest.mark.both_databases
async def test_a_sweep_stores_every_chat_and_hands_over_each_lines_summary(
        sim: Simulator, client: LinqClient, sessions: sessionmaker[Session]) -> None:
    sim.chats.set_counts(LINES[1], {"AT_RISK": 2, "OPTED_OUT": 1}, at=T0)
    poller, clock = Poller(), Clock()
    assert await sweep(sweeper(client, sessions, poller, clock), clock) == [
        Tick.PAGE, Tick.PAGE, Tick.DONE]
    assert chat_rows(sessions) == 270
    handed = poller.handed()
    assert set(handed) == set(LINES)
    assert (handed[LINES[0]].counts, handed[LINES[0]].active) == ({"HEALTHY": 90}, 90)
    bad = handed[LINES[1]]
    assert bad.counts == {"AT_RISK": 2, "HEALTHY": 87, "OPTED_OUT": 1}
    assert (bad.unhealthy, bad.opted_out) == (2, 1)
    assert [w.status for w in bad.worst] == ["AT_RISK", "AT_RISK", "OPTED_OUT"]
    progress = load_progress(sessions, "acme")
    assert (progress.cursor, progress.last_pages, progress.last_requests) == (None, 3, 3)


async def test_an_unchanged_sweep_writes_no_chat_and_hands_over_nothing(
        sim: Simulator, client: LinqClient, sessions: sessionmaker[Session]) -> None:
    poller, clock = Poller(), Clock()
    s = sweeper(client, sessions, poller, clock)
    await sweep(s, clock)
    poller.calls.clear()
    writes: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", note)
    try:
        assert await s.tick(clock.now) == Tick.RESTING  # the interval has not passed
        clock.now += timedelta(hours=1)
        assert await sweep(s, clock) == [Tick.PAGE, Tick.PAGE, Tick.DONE]
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert poller.calls == []
    # No chat row: only the progress at the end of the sweep.
    assert len(writes) == 1 and "chat_sweeps" in writes[0]
    # One chat changes: only its line is handed over, with its new summary.
    [chat_id, *_] = [c["id"] for c in sim.chats.chats_of(LINES[2])]
    sim.chats.set_status(chat_id, "CRITICAL", at=clock.now)
    clock.now += timedelta(hours=1)
    await sweep(s, clock)
    assert [[x.phone_number for x in call] for call in poller.calls] == [[LINES[2]]]
    assert poller.calls[0][0].counts == {"CRITICAL": 1, "HEALTHY": 89}


async def test_the_budget_caps_requests_per_minute(
        sim: Simulator, client: LinqClient, sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    s = sweeper(client, sessions, Poller(), clock, per_minute=2)
    assert s.interval == timedelta(seconds=30)
    ticks = [await s.tick(clock.now + timedelta(seconds=n)) for n in range(10)]
    assert ticks.count(Tick.BUDGET) == 8
    assert sim.chats.requests == 2
    assert await s.tick(clock.now + timedelta(seconds=61)) == Tick.DONE
    assert sim.chats.requests == 3


async def test_a_429_pauses_the_sweep_for_retry_after_then_asks_for_the_same_page(
        sim: Simulator, client: LinqClient, sessions: sessionmaker[Session]) -> None:
    sim.chats.set_rate_limit(1)  # the server allows less than our budget
    clock = Clock()
    s = sweeper(client, sessions, Poller(), clock)
    assert await s.tick(clock.now) == Tick.PAGE
    assert await s.tick(clock.now) == Tick.FAILED  # 429, Retry-After about 60 s
    for seconds in (1, 10, 50):
        assert await s.tick(clock.now + timedelta(seconds=seconds)) == Tick.PAUSED
    assert (sim.chats.requests, sim.chats.limited) == (2, 1)
    sim.chats.set_rate_limit(None)
    clock.now += timedelta(seconds=61)
    assert await sweep(s, clock) == [Tick.PAGE, Tick.DONE]
    assert chat_rows(sessions) == 270
    assert load_progress(sessions, "acme").last_requests == 4


@pytest.mark.both_databases
async def test_a_restarted_sweep_resumes_from_the_stored_cursor(
        sim: Simulator, client: LinqClient, sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    first = sweeper(client, sessions, Poller(), clock)
    assert await first.tick(clock.now) == Tick.PAGE
    assert await first.tick(clock.now) == Tick.PAGE
    assert load_progress(sessions, "acme").cursor == "200"
    # A new process: nothing in memory, the progress in the database.
    again = sweeper(client, sessions, Poller(), clock)
    assert await again.tick(clock.now) == Tick.DONE
    assert sim.chats.requests == 3  # no page fetched twice
    progress = load_progress(sessions, "acme")
    assert (progress.last_pages, progress.last_requests) == (3, 3)


async def test_a_cursor_the_api_refuses_restarts_the_sweep_from_the_top(
        sim: Simulator, client: LinqClient, sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    s = sweeper(client, sessions, Poller(), clock)
    await s.tick(clock.now)
    assert load_progress(sessions, "acme").cursor == "100"
    sim.chats.clear()
    sim.chats.add_chats(LINES[0], 5, at=T0)
    save_progress(sessions, "acme", SweepProgress(cursor="x", started_at=clock.now, pages=1,
                                                  requests=1))
    s.forget()
    assert await s.tick(clock.now) == Tick.FAILED  # 400 for the cursor
    assert await s.tick(clock.now) == Tick.DONE



async def test_in_the_souring_scenario_the_line_summaries_sour_before_the_line_does(
        sessions: sessionmaker[Session]) -> None:
    sim = Simulator(load_scenario("souring-chats"))
    line = "+12025550004"
    seen: list[tuple[int, int, int, str]] = []
    handed: list[set[str]] = []
    with SimulatorServer(sim) as server:
        async with LinqClient(base_url=server.url, token="sim-token") as client:
            poller, clock = Poller(), Clock()
            s = sweeper(client, sessions, poller, clock, interval=timedelta(0))
            for _ in range(14):  # a poll (one scenario step), then a full sweep
                items = orjson.loads(sim.next_response().body)["phone_numbers"]
                reputation = next(i["reputation"]["status"] for i in items
                                  if i["phone_number"] == line)
                clock.now = sim.scenario_time()
                poller.calls.clear()
                await sweep(s, clock, step=timedelta(0))
                handed.append(set(poller.handed()))
                if (summary := poller.handed().get(line)) is not None:
                    seen.append((summary.unhealthy, summary.opted_out, len(summary.worst),
                                 reputation))
    assert len(handed[0]) == 10  # the first sweep: every line
    assert all(lines <= {line} for lines in handed[1:])  # then only the souring one
    assert seen == [(0, 0, 0, "HEALTHY"),
                    (1, 0, 1, "HEALTHY"), (3, 0, 3, "HEALTHY"), (3, 1, 4, "HEALTHY"),
                    (4, 1, 5, "HEALTHY"), (5, 2, 7, "HEALTHY"), (7, 2, 9, "HEALTHY")]
