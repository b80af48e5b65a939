"""A notification channel that answers 500, hangs, or refuses connections for a while.

The daemon runs as a subprocess with two channels: ``flaky`` (behind a fault proxy in
front of its own receiver) and ``ops`` (healthy). While ``flaky`` fails, several changes
happen, some to the same line. Invariant: ``ops`` gets each at once and polls go on;
``flaky``'s messages are retried (with backoff: tests/test_outbox.py steps through the
delays) and, once it recovers, all arrive exactly once and in per-line order, as the
audit (tests/support/audit.py) checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.simulator import Simulator, SimulatorServer
from monitor.store.engine import make_engine, make_sessionmaker
from tests.support.audit import announced, audit
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.faultproxy import FaultProxy
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(180)

CHANNELS = {"flaky": "AT_RISK", "ops": "AT_RISK"}
LINE_A = "+12025550101"
LINE_B = "+12025550102"


@pytest.fixture
def flaky() -> Iterator[tuple[Receiver, FaultProxy]]:
    with Receiver() as receiver, FaultProxy(receiver.port) as proxy:
        yield receiver, proxy


def failures(daemon: DaemonProcess) -> float:
    return daemon.value("linq_reputation_notifications_total", channel="flaky",
                        outcome="failed") or 0


def outbox_settled(sessions: sessionmaker[Session]) -> bool:
    return audit(sessions, [], CHANNELS).unsettled == 0


@pytest.mark.parametrize("fault", ["answers_500", "hangs", "refuses_connections"])
def test_a_failing_channel_gets_everything_in_order_once_it_recovers_and_delays_nothing_else(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver, flaky: tuple[Receiver, FaultProxy], fault: str,
) -> None:
    flaky_receiver, proxy = flaky
    sim.add_line(LINE_A)
    sim.add_line(LINE_B)
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url, database_url=database_url,
        channels=[("flaky", f"json://127.0.0.1:{proxy.port}/flaky", "AT_RISK"),
                  ("ops", receiver.url("ops"), "AT_RISK")],
        extra_alerts='delivery_timeout = "2s"')
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start(timeout=90)
    engine = make_engine(database_url)
    try:
        daemon.wait_for_polls(1)
        if fault == "answers_500":
            flaky_receiver.set_status(500)
        else:
            proxy.mode = "hang" if fault == "hangs" else "refuse"

        story = [{LINE_A: "AT_RISK"}, {LINE_A: "CRITICAL", LINE_B: "AT_RISK"},
                 {LINE_A: "AT_RISK"}, {LINE_B: "HEALTHY"}]
        for step, changes in enumerate(story):
            sim.set_many(changes)
            # The healthy channel hears each poll's changes (one message) while the other
            # one is failing.
            receiver.wait_for(step + 1, path="ops")
        wait_until(lambda: failures(daemon) >= 3, timeout=60,
                   what="the failing channel to be tried again and again")
        polls = daemon.polls()
        daemon.wait_for_polls(polls + 2)  # polls go on too
        assert flaky_receiver.messages == []

        flaky_receiver.set_status(200)
        proxy.mode = "pass"
        healed = time.monotonic()
        flaky_receiver.wait_for(1, path="flaky", timeout=60)
        sessions = make_sessionmaker(engine)
        wait_until(lambda: outbox_settled(sessions), timeout=60, what="the outbox to settle")
        recovered = time.monotonic() - healed  # a figure for the closing note, not asserted
        result = audit(sessions, [*receiver.messages, *flaky_receiver.messages], CHANNELS)
        print(f"\n{fault}: {result.summary()}, failed attempts {failures(daemon):.0f}, "
              f"all delivered {recovered:.1f}s after the channel came back")
        assert result.clean and result.duplicates == 0, result.summary()
        assert result.delivered == result.expected == 10
        # Held back changes arrive grouped, each line's in the order they happened.
        line_a = [(before, after) for m in flaky_receiver.messages
                  for phone, before, after, _ in announced(m) if phone == LINE_A]
        assert line_a == [("HEALTHY", "AT_RISK"), ("AT_RISK", "CRITICAL"),
                          ("CRITICAL", "AT_RISK")]
    finally:
        daemon.stop()
        engine.dispose()
