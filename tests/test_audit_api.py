"""The audit client against the simulator's audit endpoints over a real socket, held to what
linq-python 0.65.0 (generated from Linq's OpenAPI spec) documents: a start while an audit
runs is a 202 naming that audit, the cooldown after one is a 429 with Retry-After, and an
audit_id stays readable for 24 hours."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.api.audits import AuditClient, AuditCooldown, AuditNotFound
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.audits import AuditDesk

LINE = "+12025550101"
OTHER = "+12025550102"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(sim: Simulator) -> Clock:
    clock = Clock()
    sim.audits = AuditDesk(clock=clock)
    return clock


@pytest.fixture
async def api(sim_server: SimulatorServer) -> AsyncIterator[AuditClient]:
    client = AuditClient(base_url=sim_server.url, token="sim-token", timeout=5)
    yield client
    await client.aclose()


async def test_a_start_while_one_runs_is_a_202_naming_the_running_audit(
        sim: Simulator, sim_server: SimulatorServer, api: AuditClient, clock: Clock) -> None:
    sim.audits.configure(delay=60)
    first = await api.start(LINE)
    again = await api.start(LINE)  # a retried start, or someone else's
    assert again == first  # the same answer: follow the id given, nothing to tell apart
    assert (sim.audits.started, sim.audits.joined) == (1, 1)
    async with httpx.AsyncClient(base_url=sim_server.url,
                                 headers={"Authorization": "Bearer sim-token"}) as raw:
        response = await raw.post(f"/v3/phone_numbers/{LINE}/reputation_audit")
    assert response.status_code == 202
    assert response.json() == {"audit_id": first.audit_id, "status": "pending"}


async def test_the_cooldown_after_an_audit_is_a_429_with_its_retry_after(
        sim: Simulator, api: AuditClient, clock: Clock) -> None:
    sim.audits.configure(delay=60, cooldown=600)
    started = await api.start(LINE)
    clock.now += 61  # the audit ended a second ago
    assert (await api.get(LINE, started.audit_id))["status"] == "complete"
    with pytest.raises(AuditCooldown) as info:
        await api.start(LINE)
    assert info.value.status == 429 and info.value.retry_after == 599
    assert (await api.start(OTHER)).audit_id != started.audit_id  # per line
    clock.now += 600
    assert (await api.start(LINE)).audit_id != started.audit_id  # cooldown over


async def test_an_audit_stays_readable_for_24_hours_then_is_not_found(
        sim: Simulator, api: AuditClient, clock: Clock) -> None:
    started = await api.start(LINE)
    first = await api.get(LINE, started.audit_id)
    assert first["status"] == "complete" and first["report"]["primary_driver"]
    clock.now += 23 * 3600
    assert await api.get(LINE, started.audit_id) == first  # read again, much later
    with pytest.raises(AuditNotFound) as other_line:
        await api.get(OTHER, started.audit_id)
    clock.now += 3600 + 1
    with pytest.raises(AuditNotFound) as gone:
        await api.get(LINE, started.audit_id)
    for error in (other_line.value, gone.value):
        assert error.status == 404 and error.permanent
        assert "24 hours" in str(error) and started.audit_id in str(error)


async def test_an_audit_that_fails_says_why_in_the_sdk_s_error_field(
        sim: Simulator, api: AuditClient, clock: Clock) -> None:
    sim.audits.configure(fail=True)
    started = await api.start(LINE)
    found = await api.get(LINE, started.audit_id)
    assert found["status"] == "error" and isinstance(found["error"], str) and found["error"]
