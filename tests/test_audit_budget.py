"""Audits start within the account's budget, worst lines first; the alerts of lines left
out go out at once saying why, instead of waiting for an audit that will not come.

Real parts: the simulator's audit endpoints over a socket (its ``requested`` counts every
start request, 429s included), the database, Apprise's json:// to a local receiver.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from monitor.core.audit import AuditBudget, Candidate, SkipReason, choose
from monitor.service.runtime import Runtime
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.schema import Audit, Notification
from tests.support.audits import audit_runtimes, deliver_until
from tests.support.receiver import Receiver

RuntimeFactory = Callable[..., Any]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
async def make_runtime(database_url: str, sim_server: SimulatorServer, receiver: Receiver
                       ) -> AsyncIterator[RuntimeFactory]:
    def document(**account: Any) -> dict[str, Any]:
        return {
            "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                          "max_retries": 0, "audit_wait": "10m", **account}],
            "database": {"url": database_url},
            "alerts": {"channels": [{"name": "pager", "url": receiver.url("pager"),
                                     "group_wait": "0s", "min_status": "CRITICAL"}]},
        }

    async with audit_runtimes(document) as make:
        yield make


def skipped(rt: Runtime, reason: str) -> float | None:
    return rt.metrics.registry.get_sample_value(
        "linq_reputation_audits_skipped_total", {"account": "main", "reason": reason})


def held_rows(rt: Runtime) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(Notification).where(
            Notification.state == "pending",
            Notification.next_attempt_at > datetime.now(UTC) + timedelta(minutes=1))) or 0


# The mass event (5,000 lines) costs ~15 s a database here, so the fast suite runs
# 1,200 lines (still more than one IN-list chunk) and the full size runs with the slow tests.
@pytest.mark.both_databases  # one transaction annotates thousands of rows: chunked IN lists
# Over a thousand lines through the real daemon code: both sizes run in .ci/run's slow suite.
@pytest.mark.slow
@pytest.mark.parametrize("lines", [1200, 5000])
async def test_it_starts_at_most_the_budget_in_a_mass_event_and_sends_every_alert(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver, lines: int) -> None:
    sim.audits.configure(delay=3600)  # the audits that start keep running
    rt = await make_runtime()  # the defaults: 4 at once, 60 per hour
    phones = sim.add_lines(lines)
    assert (await rt.pollers["main"].poll()).ok
    sim.set_many(dict.fromkeys(phones, "CRITICAL"))
    assert (await rt.pollers["main"].poll()).ok
    # Every alert was written held for its audit: the first message comes only once the
    # alerts of the lines left out are released.
    message = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "no audit: budget (4 audits of this account already running" in message.message
    assert sim.audits.requested == 4
    assert skipped(rt, "running") == lines - 4
    assert held_rows(rt) == 4  # only the audited lines' alerts wait for their diagnosis


async def test_it_audits_the_worst_line_first(make_runtime: RuntimeFactory, sim: Simulator,
                                            receiver: Receiver) -> None:
    # FLAGGED as a reputation (a status Linq does not document: ranked above CRITICAL).
    sim.audits.configure(delay=3600)
    rt = await make_runtime(audit_on=["CRITICAL", "FLAGGED"], audit_max_running=1)
    sim.add_line("+12025550101")
    sim.add_line("+12025550102")
    assert (await rt.pollers["main"].poll()).ok
    sim.set_many({"+12025550101": "CRITICAL", "+12025550102": "FLAGGED"})
    assert (await rt.pollers["main"].poll()).ok
    async with asyncio.timeout(20):
        while sim.audits.requested < 1:
            await asyncio.sleep(0.02)
    message = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "+12025550101" in message.message and "no audit: budget" in message.message
    with rt.sessions() as session:
        assert session.scalars(select(Audit.phone_number)).all() == ["+12025550102"]


def candidate(phone: str, status: str = "CRITICAL", *, flagged: bool = False,
              turned_minutes_ago: int = 0) -> Candidate:
    return Candidate(phone, status, flagged, NOW - timedelta(minutes=turned_minutes_ago))


def test_it_orders_flagged_then_status_then_the_longest_turned() -> None:
    choice = choose([candidate("+1new"), candidate("+1old", turned_minutes_ago=30),
                     candidate("+1odd", "UNDOCUMENTED"), candidate("+1flag", flagged=True)],
                    AuditBudget(max_running=3), running=0, started_last_hour=0,
                    audited_at={}, now=NOW)
    assert [c.phone_number for c in choice.audit] == ["+1flag", "+1odd", "+1old"]
    assert [(c.phone_number, r) for c, r in choice.skip] == [("+1new", SkipReason.RUNNING)]


def test_it_skips_lines_in_the_cooldown_before_counting_the_budget() -> None:
    choice = choose([candidate("+1recent", flagged=True), candidate("+1other")],
                    AuditBudget(max_running=1, cooldown=timedelta(hours=6)), running=0,
                    started_last_hour=0, audited_at={"+1recent": NOW - timedelta(hours=5)},
                    now=NOW)
    assert [c.phone_number for c in choice.audit] == ["+1other"]
    assert choice.skip == [(candidate("+1recent", flagged=True), SkipReason.COOLDOWN)]


def test_it_counts_the_hour_and_the_running_audits() -> None:
    many = [candidate(f"+1{i}") for i in range(5)]
    by_hour = choose(many, AuditBudget(max_running=10, max_per_hour=60), running=0,
                     started_last_hour=58, audited_at={}, now=NOW)
    assert len(by_hour.audit) == 2 and {r for _, r in by_hour.skip} == {SkipReason.PER_HOUR}
    busy = choose(many, AuditBudget(max_running=4), running=4, started_last_hour=0,
                  audited_at={}, now=NOW)
    assert busy.audit == [] and {r for _, r in busy.skip} == {SkipReason.RUNNING}


@pytest.mark.slow  # two runtimes per database: .ci/run's slow suite
@pytest.mark.both_databases  # the cooldown and the hour are read back from stored audits
async def test_it_does_not_audit_a_line_again_within_the_cooldown_even_after_a_restart(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    line = "+12025550101"
    rt = await make_runtime()
    sim.add_line(line)
    assert (await rt.pollers["main"].poll()).ok
    sim.set_status(line, "CRITICAL")
    assert (await rt.pollers["main"].poll()).ok
    await rt.audits.drain()
    first = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "Primary driver: low_engagement" in first.message
    await rt.audits.cancel()
    await rt.__aexit__(None, None, None)

    restarted = await make_runtime()
    assert (await restarted.pollers["main"].poll()).ok
    sim.set_status(line, "HEALTHY")
    assert (await restarted.pollers["main"].poll()).ok
    await deliver_until(restarted, receiver, 2, "pager")  # the recovery
    sim.set_status(line, "CRITICAL")
    assert (await restarted.pollers["main"].poll()).ok
    await restarted.audits.drain()
    messages = await deliver_until(restarted, receiver, 3, "pager")
    assert re.search(r"no audit: this line was audited \d+s ago, within the audit cooldown "
                     rf"\(6h\); its latest report: reputation-monitor audit show \{line}",
                     messages[-1].message), messages[-1].message
    assert sim.audits.requested == 1
    assert skipped(restarted, "cooldown") == 1


@pytest.mark.slow  # two runtimes per database: .ci/run's slow suite
@pytest.mark.both_databases
async def test_the_hourly_budget_survives_a_restart(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    rt = await make_runtime(audit_max_per_hour=2)
    phones = sim.add_lines(3)
    assert (await rt.pollers["main"].poll()).ok
    sim.set_many({phones[0]: "CRITICAL", phones[1]: "CRITICAL"})
    assert (await rt.pollers["main"].poll()).ok
    await rt.audits.drain()
    await deliver_until(rt, receiver, 1, "pager")
    await rt.audits.cancel()
    await rt.__aexit__(None, None, None)

    restarted = await make_runtime(audit_max_per_hour=2)
    assert (await restarted.pollers["main"].poll()).ok
    sim.set_status(phones[2], "CRITICAL")
    assert (await restarted.pollers["main"].poll()).ok
    await restarted.audits.drain()
    messages = await deliver_until(restarted, receiver, 2, "pager")
    assert "no audit: budget (2 audits of this account started in the last hour" in (
        messages[-1].message)
    assert sim.audits.requested == 2
    assert skipped(restarted, "per_hour") == 1
