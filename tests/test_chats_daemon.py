"""The chat sweep in the real daemon (``reputation-monitor run`` in a subprocess) against
the simulator on a real socket: it sweeps when [chats] is enabled, exposes the line's
unhealthy chats and its progress, and ``chats PHONE`` shows what it stored; it resumes
from the stored cursor after a restart. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.simulator import Simulator, SimulatorServer
from monitor.store.chats import load_progress
from monitor.store.engine import make_engine, make_sessionmaker
from tests.support.daemon import DaemonProcess, cli, wait_until, write_config

# Real daemons, one per database (~25-50 s each on 2 cores): .ci/run's slow suite.
pytestmark = [pytest.mark.both_databases, pytest.mark.timeout(120), pytest.mark.slow]

LINE = "+12020000002"  # the second of Simulator.add_lines' numbers


@pytest.fixture
def daemon(tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer
           ) -> Iterator[DaemonProcess]:
    sim.add_lines(3)
    at = datetime.now(UTC)
    for item in sim.lines():
        sim.chats.add_chats(item["phone_number"], 150, at=at)  # 450 chats: 5 pages
    sim.chats.set_counts(LINE, {"AT_RISK": 2, "CRITICAL": 1, "OPTED_OUT": 1}, at=at)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=database_url,
                          extra='\n[chats]\nenabled = true\nrequests_per_minute = 600\n'
                                'interval = "1h"\n')
    process = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    yield process
    process.stop()


def test_the_daemon_sweeps_every_chat_and_exposes_the_lines_unhealthy_chats(
        daemon: DaemonProcess, sim: Simulator, database_url: str) -> None:
    wait_until(lambda: daemon.value(
        "linq_reputation_chat_sweep_last_completed_timestamp_seconds", account="main"),
        what="a full chat sweep")
    assert daemon.value("linq_reputation_chat_sweep_pages_total", account="main") == 5
    assert daemon.value("linq_reputation_chat_sweep_requests_total", account="main",
                        outcome="ok") == 5
    assert daemon.value("linq_reputation_line_chats", account="main", status="AT_RISK") == 2
    assert daemon.value("linq_reputation_line_chats", account="main", status="HEALTHY") == 446
    wait_until(lambda: daemon.value("linq_reputation_line_unhealthy_chats", account="main",
                                    phone_number=LINE) == 3, what="the line's unhealthy chats")
    assert sim.chats.requests == 5  # resting until the interval has passed
    shown = cli("chats", LINE, "--json", "--config", str(daemon.config))
    assert shown.returncode == 0, shown.stderr
    assert '"CRITICAL"' in shown.stdout and '"OPTED_OUT"' in shown.stdout
    assert daemon.terminate() == 0
    # Restarted, it does not sweep again before the interval: the progress was stored.
    engine = make_engine(database_url)
    assert load_progress(make_sessionmaker(engine), "main").last_pages == 5
    engine.dispose()
    daemon.start()
    daemon.wait_for_polls(2)
    assert sim.chats.requests == 5
