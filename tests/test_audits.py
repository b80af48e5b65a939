"""Reputation audits enrich CRITICAL alerts, on SQLite and PostgreSQL, against the simulator's
audit endpoints over a real socket; alerts delivered through Apprise's json:// receiver."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from monitor.service.runtime import Runtime
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.schema import Audit, Notification
from tests.support.audits import audit_runtimes, deliver_until
from tests.support.receiver import Receiver

LINE = "+12025550101"
RuntimeFactory = Callable[..., Any]


@pytest.fixture
async def make_runtime(database_url: str, sim_server: SimulatorServer, receiver: Receiver
                       ) -> AsyncIterator[RuntimeFactory]:
    def document(*, audit_wait: str = "10s") -> dict[str, Any]:
        return {
            "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                          "max_retries": 0, "audit_wait": audit_wait}],
            "database": {"url": database_url},
            "alerts": {"channels": [{"name": "ops", "url": receiver.url("ops"),
                                     "group_wait": "0s"},
                                    {"name": "pager", "url": receiver.url("pager"),
                                     "group_wait": "0s",
                                     "min_status": "CRITICAL"}]},
        }

    async with audit_runtimes(document) as make:
        yield make


async def degrade(rt: Runtime, sim: Simulator, status: str = "CRITICAL") -> None:
    sim.add_line(LINE)
    assert (await rt.pollers["main"].poll()).ok
    sim.set_status(LINE, status)
    assert (await rt.pollers["main"].poll()).ok


def stored_audits(rt: Runtime) -> list[Audit]:
    with rt.sessions() as session:
        return list(session.scalars(select(Audit)))


async def test_a_critical_alert_waits_for_the_audit_and_carries_its_diagnosis(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    rt = await make_runtime()
    await degrade(rt, sim)
    with rt.sessions() as session:
        held = session.scalars(select(Notification)).all()
    assert all(n.next_attempt_at > datetime.now(UTC) for n in held)  # held for the audit
    await rt.audits.drain()
    message = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "HEALTHY → CRITICAL" in message.title
    assert "Primary driver: low_engagement (reply rate 1.8% over 7 days)" in message.message
    assert "1. Pause cold outreach on this line" in message.message
    assert "3. Review opt-out handling" in message.message
    assert "Check chat health weekly" not in message.message  # top three only
    assert f"reputation-monitor audit show {LINE}" in message.message
    [audit] = stored_audits(rt)
    assert (audit.state, audit.primary_driver) == ("complete", "low_engagement")
    assert rt.directory.view(rt.directory.find(LINE))["last_audit"]["primary_driver"] == (  # type: ignore[arg-type]
        "low_engagement")

    restarted = await make_runtime()  # the gate shows stored audits after a restart too
    assert (await restarted.pollers["main"].poll()).ok
    shown = restarted.directory.view(restarted.directory.find(LINE))  # type: ignore[arg-type]
    assert shown["last_audit"]["state"] == "complete"


async def test_a_slow_audit_follows_the_alert_as_a_diagnosis_message(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    sim.audits.configure(delay=3600)  # until the test lets it finish
    rt = await make_runtime(audit_wait="1s")
    await degrade(rt, sim)
    alert = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "Diagnosis" not in alert.message  # sent at audit_wait, without waiting longer
    sim.audits.finish_running()
    await rt.audits.drain()
    diagnosis = (await deliver_until(rt, receiver, 2, "pager"))[1]
    assert diagnosis.title.startswith(f"[DIAGNOSIS] {LINE} CRITICAL")
    assert "Primary driver: low_engagement" in diagnosis.message
    # The ops channel got the alert and then the diagnosis too, in that order.
    ops = await deliver_until(rt, receiver, 2, "ops")
    assert "→ CRITICAL" in ops[0].title and ops[1].title.startswith("[DIAGNOSIS]")


async def test_an_audit_already_running_is_followed_not_started_again(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    sim.audits.configure(delay=3600)
    status, _, _ = sim.audits.start(LINE)  # someone else started one a moment ago
    assert status == 202
    rt = await make_runtime()
    await degrade(rt, sim)
    async with asyncio.timeout(10):
        while sim.audits.joined < 1:  # Linq answered 202 with the running audit's id
            await asyncio.sleep(0.02)
    sim.audits.finish_running()
    await rt.audits.drain()
    message = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "Primary driver: low_engagement" in message.message
    assert sim.audits.started == 1


async def test_two_runners_following_one_audit_both_get_its_report(
        make_runtime: RuntimeFactory, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon audits a line that just went CRITICAL while on-call runs
    # `reputation-monitor audit` on it: Linq runs one audit, and its report stays readable
    # for both (24 h), whoever reads the finished audit first.
    monkeypatch.setattr("monitor.service.audits.POLL_EVERY", 0.02)
    sim.audits.configure(delay=3600)
    rt = await make_runtime()
    sim.add_line(LINE)
    both = asyncio.gather(rt.audits.run("main", LINE, None), rt.audits.run("main", LINE, None))
    async with asyncio.timeout(10):
        while sim.audits.started + sim.audits.joined < 2:
            await asyncio.sleep(0.02)
    sim.audits.finish_running()
    outcomes = await both
    assert [o.state for o in outcomes] == ["complete", "complete"]
    assert outcomes[0].audit_id == outcomes[1].audit_id and sim.audits.started == 1
    assert outcomes[0].report == outcomes[1].report


async def test_an_audit_in_cooldown_is_skipped_and_the_alert_says_so_without_waiting(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    sim.audits.start_cooldown(LINE, 3600)
    rt = await make_runtime(audit_wait="10m")
    await degrade(rt, sim)
    await rt.audits.drain()
    message = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "cooldown" in message.message
    assert re.search(r"next one is possible in (1h|59m)", message.message), message.message
    assert [a.state for a in stored_audits(rt)] == ["skipped"]


async def test_a_failed_audit_never_blocks_or_loses_the_alert(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    sim.audits.configure(fail=True)
    rt = await make_runtime(audit_wait="10m")
    await degrade(rt, sim)
    await rt.audits.drain()
    message = (await deliver_until(rt, receiver, 1, "pager"))[0]
    assert "→ CRITICAL" in message.title
    assert "did not complete" in message.message
    # Linq's own reason (the SDK's ``error`` field), so on-call knows why.
    assert "Linq reported an error: The audit could not be completed" in message.message
    assert [a.state for a in stored_audits(rt)] == ["error"]


async def test_a_line_at_risk_is_not_audited_and_not_held(
        make_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver) -> None:
    rt = await make_runtime(audit_wait="10m")
    await degrade(rt, sim, "AT_RISK")
    await rt.audits.drain()
    await rt.deliverer.run_once()
    assert len(receiver.wait_for(1, path="ops", timeout=5)) == 1
    assert stored_audits(rt) == [] and sim.audits.started == 0
