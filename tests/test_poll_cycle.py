"""A poll cycle against the simulator over a real socket, on SQLite and PostgreSQL:
what it stores, how many rows it writes, and what a failed poll leaves alone."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from monitor.config import parse_config
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.store import queries
from monitor.store.schema import Base, Line, Notification, Poll, TransitionRow

# These touch SQL: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer, receiver) -> AsyncIterator[
        Runtime]:
    config = parse_config({
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                      "max_retries": 0}],
        "database": {"url": database_url},
        "alerts": {"channels": [{"name": "ops", "url": receiver.url("ops")},
                                {"name": "pager", "url": receiver.url("pager"),
                                 "min_status": "CRITICAL"}]},
    })
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as rt:
        yield rt


def row_counts(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as session:
        return {table.name: session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables}


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Rows added per table, tables that did not grow left out."""
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


async def poll(rt: Runtime):
    outcome = await rt.pollers["main"].poll()
    assert outcome.ok, outcome.error
    return outcome


async def test_a_steady_poll_writes_one_row_whatever_the_number_of_lines(
        runtime: Runtime, sim: Simulator) -> None:
    sim.add_lines(500)
    await poll(runtime)
    before = row_counts(runtime)
    await poll(runtime)
    await poll(runtime)
    after = row_counts(runtime)
    assert growth(before, after) == {"polls": 2}


async def test_a_change_writes_its_transition_and_one_notification_per_channel(
        runtime: Runtime, sim: Simulator) -> None:
    ids = sim.add_lines(50)
    await poll(runtime)
    before = row_counts(runtime)
    sim.set_status(ids[7], "CRITICAL")
    outcome = await poll(runtime)
    assert (outcome.transitions, outcome.notifications) == (1, 2)
    after = row_counts(runtime)
    assert after["transitions"] - before["transitions"] == 1
    assert after["notifications"] - before["notifications"] == 2
    with runtime.sessions() as session:
        line = session.get_one(Line, ("main", ids[7]))
        assert line.status == "CRITICAL" and sorted(line.told or {}) == ["ops", "pager"]
        assert {n.channel for n in session.scalars(select(Notification))} == {"ops", "pager"}


async def test_the_status_of_a_line_at_any_past_poll_is_answerable(
        runtime: Runtime, sim: Simulator) -> None:
    (line_id,) = sim.add_lines(1)
    other = sim.add_lines(3)
    story = ["HEALTHY", "AT_RISK", "AT_RISK", "CRITICAL", "HEALTHY", "HEALTHY"]
    for status in story:
        sim.set_status(line_id, status)
        sim.set_status(other[0], "AT_RISK" if status == "CRITICAL" else "HEALTHY")
        await poll(runtime)
    with runtime.sessions() as session:
        poll_ids = session.scalars(select(Poll.id).order_by(Poll.id)).all()
        replay = [queries.status_at_poll(session, account="main", line_id=line_id, poll_id=p)
                  for p in poll_ids]
    assert replay == story


async def test_a_failed_poll_changes_no_state_and_is_recorded(
        runtime: Runtime, sim: Simulator) -> None:
    ids = sim.add_lines(5)
    await poll(runtime)
    before = row_counts(runtime)
    sim.set_status(ids[0], "CRITICAL")
    for failure in (lambda: sim.queue_error(500), lambda: sim.queue_raw("<html>oops</html>"),
                    lambda: sim.queue_raw('{"data": []}')):
        failure()
        outcome = await runtime.pollers["main"].poll()
        assert not outcome.ok
    after = row_counts(runtime)
    assert growth(before, after) == {"polls": 3}
    with runtime.sessions() as session:
        assert session.get_one(Line, ("main", ids[0])).status == "HEALTHY"
        errors = session.scalars(select(Poll.error).where(Poll.outcome == "error")).all()
    assert errors[0].startswith("HTTP 500") and "not JSON" in errors[1]
    assert "phone_numbers" in errors[2]
    # The API comes back: the change is detected exactly once.
    outcome = await poll(runtime)
    assert outcome.transitions == 1


async def test_a_line_that_leaves_is_recorded_as_removed_and_its_series_go(
        runtime: Runtime, sim: Simulator) -> None:
    ids = sim.add_lines(3)
    await poll(runtime)
    assert ids[1].encode() in runtime.metrics.render()
    sim.remove_line(ids[1])
    await poll(runtime)
    assert ids[1].encode() not in runtime.metrics.render()
    with runtime.sessions() as session:
        kinds = session.scalars(select(TransitionRow.kind).where(
            TransitionRow.line_id == ids[1]).order_by(TransitionRow.id)).all()
        assert kinds == ["first_seen", "removed"]
        assert session.get_one(Line, ("main", ids[1])).present is False


async def test_a_skipped_item_keeps_its_last_known_state(
        runtime: Runtime, sim: Simulator) -> None:
    ids = sim.add_lines(2)
    sim.set_status(ids[0], "AT_RISK")
    await poll(runtime)
    good = sim.lines()[1]
    broken = {"id": ids[0], "phone_number": "x"}  # no reputation at all
    sim.queue_raw(json.dumps({"phone_numbers": [broken, good]}))
    outcome = await poll(runtime)
    assert (outcome.skipped, outcome.transitions) == (1, 0)
    with runtime.sessions() as session:
        line = session.get_one(Line, ("main", ids[0]))
        assert (line.present, line.status) == (True, "AT_RISK")


async def test_a_cold_start_logs_the_first_degraded_lines_and_counts_the_rest(
        runtime: Runtime, sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    from monitor.service.poller import FIRST_SEEN_LOGGED

    sim.add_lines(FIRST_SEEN_LOGGED + 7, status="AT_RISK")
    healthy = sim.add_lines(20, prefix="+1303")
    with caplog.at_level(logging.INFO, logger="monitor.service.poller"):
        await poll(runtime)
        sim.set_status(healthy[0], "CRITICAL")
        await poll(runtime)
    info = [r.getMessage() for r in caplog.records
            if r.name == "monitor.service.poller" and r.levelno == logging.INFO]
    first_seen = [m for m in info if m.startswith("transition") and " - -> " in m]
    assert len(first_seen) == FIRST_SEEN_LOGGED
    assert not any("HEALTHY" in m for m in first_seen)
    assert "7 more lines first seen degraded (each logged at DEBUG; `status` lists them)" in info
    # A change after the cold start is logged as before.
    assert [m for m in info if m.startswith("transition") and "CRITICAL" in m
            and " - -> " not in m]
