"""The API fault matrix: every way the Linq API can fail, against a real poll cycle.

Each fault hides a real change (a line turned CRITICAL) behind it. Invariant: while the
fault lasts no transition is recorded and nothing is alerted, the lines' stored state and
their series are unchanged, every failed poll is recorded and counted; once the API is
back, the next poll finds the hidden change exactly once. Connection-level faults go
through tests/support/faultproxy.py, answer-level ones through the simulator; both are
real sockets. (A body trickling one byte a second is in tests/test_client.py; 401 and
500 beyond retries, end to end with the daemon, in tests/test_daemon_e2e.py.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.config import parse_config
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.schema import Base, Line, Notification, Poll
from tests.support.daemon import TOKEN, parse_metrics, sample_value
from tests.support.faultproxy import FaultProxy
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

DRIFT = Path(__file__).parent / "fixtures" / "drift"


@dataclass(frozen=True)
class Fault:
    inject: Callable[[Simulator, FaultProxy], None]
    heal: Callable[[Simulator, FaultProxy], None] = lambda sim, proxy: None
    polls: int = 1  # failed polls in a row (a storm is several)
    retry_after: tuple[float, float] | None = None  # bounds of the advice handed on
    timeout: str = "2s"  # the account's timeout: short, so timeouts are quick to reach


def proxy_mode(mode: str) -> Fault:
    def inject(sim: Simulator, proxy: FaultProxy) -> None:
        proxy.mode = mode

    def heal(sim: Simulator, proxy: FaultProxy) -> None:
        proxy.mode = "pass"

    return Fault(inject, heal, polls=2)


def raw(make_body: Callable[[Simulator], bytes], *, polls: int = 1, timeout: str = "2s"
        ) -> Fault:
    # A 200 answer is not retried: one attempt per poll.
    return Fault(lambda sim, proxy: sim.queue_raw(make_body(sim), times=polls), polls=polls,
                 timeout=timeout)


def gateway_errors(sim: Simulator) -> None:
    for status in (502, 503, 504):
        sim.queue_error(status, times=2)  # one poll's two attempts each


def truncated(sim: Simulator) -> bytes:
    body = json.dumps({"phone_numbers": sim.lines()}).encode()
    return body[: len(body) // 2]


FAULTS: dict[str, Fault] = {
    "connect_timeout": proxy_mode("blackhole"),
    "read_timeout": proxy_mode("hang"),
    "connection_refused": proxy_mode("refuse"),
    "connection_cut_mid_answer": proxy_mode("cut"),
    "5xx_burst": Fault(lambda sim, proxy: gateway_errors(sim), polls=3),
    "429_storm_retry_after_seconds": Fault(
        lambda sim, proxy: sim.queue_error(429, retry_after=1, times=6), polls=3,
        retry_after=(1, 1)),
    "429_storm_retry_after_http_date": Fault(
        lambda sim, proxy: sim.queue_error(429, retry_after=2, retry_after_date=True, times=6),
        polls=3, retry_after=(0, 3)),
    "429_long_retry_after_goes_to_the_scheduler": Fault(
        lambda sim, proxy: sim.queue_error(429, retry_after=600), retry_after=(599, 600)),
    "401_token_rejected": Fault(lambda sim, proxy: sim.set_token("rotated-elsewhere"),
                                lambda sim, proxy: sim.set_token(TOKEN), polls=2),
    "403_forbidden": Fault(lambda sim, proxy: sim.queue_error(403, times=2), polls=2),
    "non_json": raw(lambda sim: b"<html><body>502 Bad Gateway</body></html>", polls=2),
    "truncated_json": raw(truncated, polls=2),
    # Long enough for 50 MB to arrive on a busy machine: the body, not a timeout, must fail.
    "50_MB_body": raw(lambda sim: b'{"phone_numbers": "' + b"x" * 50_000_000 + b'"}',
                      timeout="120s"),
    "drift_wrong_shape": raw(lambda sim: (DRIFT / "wrong_shape.json").read_bytes()),
    # Should the list ever page, the lines on later pages must not be taken as removed.
    "one_page_of_several": raw(lambda sim: json.dumps(
        {"phone_numbers": sim.lines()[:1], "next_cursor": "c2", "has_more": True}).encode()),
}


@pytest.fixture
def proxy(sim_server: SimulatorServer) -> Iterator[FaultProxy]:
    with FaultProxy(sim_server.port) as front:
        yield front


RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def open_runtime(database_url: str, proxy: FaultProxy, receiver: Receiver
                       ) -> AsyncIterator[RuntimeFactory]:
    """Opens the monitor's runtime against the proxied simulator, with a given timeout."""
    async with AsyncExitStack() as stack:
        async def open_(timeout: str = "2s") -> Runtime:
            config = parse_config({
                "accounts": [{"name": "main", "base_url": proxy.url, "token": TOKEN,
                              "max_retries": 1, "timeout": timeout, "audit_on": []}],
                "database": {"url": database_url},
                "alerts": {"channels": [{"name": "ops", "url": receiver.url("ops"),
                                         "group_wait": "0s"}]},
            })
            engine, sessions = open_database(config)
            return await stack.enter_async_context(Runtime(config, engine, sessions))

        yield open_


def row_counts(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as session:
        return {table.name: session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables}


def stored_lines(rt: Runtime) -> dict[str, tuple[str, bool]]:
    with rt.sessions() as session:
        return {row.line_id: (row.status, row.present) for row in session.scalars(select(Line))}


def line_series(rt: Runtime) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every per-line and per-status sample: what a dashboard shows about the lines."""
    samples = parse_metrics(rt.metrics.render().decode())
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in samples
                  if "line_id" in s.labels or s.name == "linq_reputation_lines")


def counted(rt: Runtime, name: str, **labels: str) -> float:
    return sample_value(parse_metrics(rt.metrics.render().decode()), name, **labels) or 0


@pytest.mark.parametrize("name", list(FAULTS))
async def test_a_failing_api_changes_nothing_and_the_next_good_poll_catches_up(
    open_runtime: RuntimeFactory, sim: Simulator, proxy: FaultProxy, receiver: Receiver,
    name: str,
) -> None:
    fault = FAULTS[name]
    runtime = await open_runtime(fault.timeout)
    poller = runtime.pollers["main"]
    ids = sim.add_lines(5)
    assert (await poller.poll()).ok
    before = (row_counts(runtime), stored_lines(runtime), line_series(runtime))
    errors_before = counted(runtime, "linq_reputation_polls_total", account="main",
                            outcome="error")

    sim.set_status(ids[0], "CRITICAL")  # the real change, hidden behind the fault
    fault.inject(sim, proxy)
    for _ in range(fault.polls):
        outcome = await poller.poll()
        assert not outcome.ok, f"{name}: the poll succeeded"
        if fault.retry_after is not None:
            low, high = fault.retry_after
            assert outcome.retry_after is not None and low <= outcome.retry_after <= high
    print(f"\n{name}: {outcome.error}")

    counts, lines, series = before
    assert growth(counts, row_counts(runtime)) == {"polls": fault.polls}
    assert stored_lines(runtime) == lines
    assert line_series(runtime) == series
    assert counted(runtime, "linq_reputation_polls_total", account="main",
                   outcome="error") == errors_before + fault.polls
    assert counted(runtime, "linq_reputation_up", account="main") == 0
    with runtime.sessions() as session:
        recorded = session.scalars(select(Poll.error).where(Poll.outcome == "error")).all()
    assert len(recorded) == fault.polls and all(recorded)
    assert await runtime.deliverer.run_once() == 0 and receiver.messages == []

    fault.heal(sim, proxy)
    outcome = await poller.poll()
    assert outcome.ok and outcome.transitions == 1, outcome
    assert stored_lines(runtime)[ids[0]] == ("CRITICAL", True)
    assert await runtime.deliverer.run_once() == 1
    assert len(receiver.messages) == 1 and "HEALTHY → CRITICAL" in receiver.messages[0].title


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


@pytest.mark.parametrize("fixture", ["item_without_id", "no_reputation"])
async def test_a_drifted_item_is_skipped_counted_and_its_line_keeps_its_state(
    open_runtime: RuntimeFactory, sim: Simulator, receiver: Receiver, fixture: str,
) -> None:
    runtime = await open_runtime()
    body = json.loads((DRIFT / f"{fixture}.json").read_text())
    # The fleet the fixture is a drifted view of: its lines, with ids, CRITICAL.
    for index, item in enumerate(body["phone_numbers"]):
        sim.add_line(item["phone_number"], line_id=item.get("id") or f"line-{index}",
                     status="CRITICAL" if "id" not in item or "reputation" not in item
                     else item["reputation"]["status"])
    poller = runtime.pollers["main"]
    assert (await poller.poll()).ok
    await runtime.deliverer.run_once()
    alerted = len(receiver.messages)
    with runtime.sessions() as session:
        queued = session.scalar(select(func.count()).select_from(Notification))
    before = (stored_lines(runtime), line_series(runtime))

    sim.queue_raw(json.dumps(body))
    outcome = await poller.poll()
    assert outcome.ok and outcome.skipped == 1 and outcome.transitions == 0, outcome
    assert (stored_lines(runtime), line_series(runtime)) == before
    assert counted(runtime, "linq_reputation_skipped_items_total", account="main") == 1
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == queued
    assert await runtime.deliverer.run_once() == 0 and len(receiver.messages) == alerted
