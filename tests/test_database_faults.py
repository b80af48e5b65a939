"""Database faults with the daemon as a subprocess: PostgreSQL restarted and down for a
minute, the SQLite file locked by another process, the disk full.

Each test: the daemon keeps running, says what is wrong (its log and /readyz), resumes
when the database is back, and the audit (tests/support/audit.py) finds every change
recorded once and alerted exactly once: nothing lost, nothing duplicated, in order. Polls
that fail for longer than ``stale_after`` (2s here) are also the monitor's own trouble:
where the daemon keeps the account (SQLite) it is announced once and cleared once, and
the audit holds those messages to that.

PostgreSQL faults use a private cluster (tests/support/pgcluster.py), never the shared
server on port 5432. The disk-full test mounts a small tmpfs (it needs root, and skips
with the reason where mounting is not allowed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.simulator import Simulator, SimulatorServer
from monitor.store.engine import make_engine, make_sessionmaker
from tests.support.audit import announced, audit, recorded_statuses
from tests.support.chaos import sim_statuses
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.pgcluster import PgCluster
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(300)

CHANNELS = {"ops": "AT_RISK"}
LINE_A = "+12025550101"
LINE_B = "+12025550102"
LINE_C = "+12025550103"
# Seconds PostgreSQL stays down: long enough for failed polls, /readyz and the stale-poll
# trouble (stale_after 2s) in the fast suite; the full minute in the slow one.
OUTAGES = {"down_for_a_while": 8.0, "down_for_a_minute": 60.0}


def start(tmp_path: Path, sim_server: SimulatorServer, receiver: Receiver, database_url: str,
          **alerts: str) -> DaemonProcess:
    settings = {"stale_after": "2s", **alerts}
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url, database_url=database_url,
        channels=[("ops", receiver.url("ops"), "AT_RISK")],
        extra_alerts="\n".join(f'{key} = "{value}"' for key, value in settings.items()),
        # Every change of a grouped message listed (no "+N more"), so all are audited.
        channel_options='group_wait = "0s"\ngroup_limit = 500')
    return DaemonProcess(config, log=tmp_path / "daemon.log").start(timeout=90)


def readyz(daemon: DaemonProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(daemon.url + "/readyz", timeout=10)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def not_ready_saying(daemon: DaemonProcess, words: str) -> dict[str, Any] | None:
    status, body = readyz(daemon)
    return body if status == 503 and any(words in r for r in body["reasons"]) else None


def settled(sessions: sessionmaker[Session], sim: Simulator) -> bool:
    if recorded_statuses(sessions) != sim_statuses(sim):
        return False
    result = audit(sessions, [], CHANNELS)
    return result.unsettled == 0 and result.troubles_open == 0


def line_alerts(receiver: Receiver) -> int:
    """Messages about lines (the monitor's own trouble may be announced meanwhile)."""
    return sum(1 for m in receiver.messages if announced(m))


def assert_every_change_alerted_once(sessions: sessionmaker[Session], sim: Simulator,
                                     receiver: Receiver, daemon: DaemonProcess, *,
                                     healed: float) -> None:
    """``healed``: time.monotonic() when the fault was removed. Also prints how long the
    catching up took (the figure for the closing note, not a timing assertion)."""
    wait_until(lambda: settled(sessions, sim), timeout=90,
               what="the database to match the API and the outbox to be settled")
    print(f"\nrecovered (every change recorded and delivered) "
          f"{time.monotonic() - healed:.1f}s after the fault ended")
    wait_until(lambda: readyz(daemon)[0] == 200, what="/readyz to answer 200 again")
    assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
    assert "Traceback" not in daemon.log(), "something in the daemon crashed"
    result = audit(sessions, list(receiver.messages), CHANNELS)
    print(f"\n{result.summary()}")
    assert result.clean, result.summary()
    assert result.duplicates == 0, result.summary()
    assert result.delivered == result.expected > 0


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    pg = PgCluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.mark.parametrize("outage", [
    "restart", "down_for_a_while",
    pytest.param("down_for_a_minute", marks=pytest.mark.slow)])
def test_it_rides_out_postgresql_going_away_and_loses_or_repeats_no_alert(
    tmp_path: Path, cluster: PgCluster, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver, outage: str,
) -> None:
    url = cluster.create_database("monitor")
    for phone in (LINE_A, LINE_B, LINE_C):
        sim.add_line(phone)
    # A send may take 10 s: the one caught by the outage is still in hand when it starts.
    daemon = start(tmp_path, sim_server, receiver, url, delivery_timeout="10s")
    engine = make_engine(url)
    try:
        daemon.wait_for_polls(1)
        sim.set_status(LINE_A, "AT_RISK")
        receiver.wait_for(1)

        # The channel takes B's alert, and the database goes away before it is recorded.
        receiver.arrived.clear()
        receiver.hold()
        sim.set_status(LINE_B, "CRITICAL")
        assert receiver.arrived.wait(20), "B's alert was never sent"
        went_down = time.monotonic()
        cluster.stop()
        receiver.release()
        sim.set_status(LINE_C, "AT_RISK")  # a change while the database is away
        wait_until(lambda: "delivery bookkeeping failed" in daemon.log(),
                   what="the daemon to say it cannot record the delivery")
        if outage == "restart":
            cluster.start()
            healed = time.monotonic()
        else:
            reasons = wait_until(lambda: not_ready_saying(daemon, "database unreachable"),
                                 what="/readyz to report the database")
            wait_until(lambda: "poll failed" in daemon.log(), what="a failed poll to be logged")
            print(f"\n/readyz while PostgreSQL is down: {reasons}")
            # The length of the outage is the fault itself, not a guess at a duration.
            time.sleep(max(0.0, OUTAGES[outage] - (time.monotonic() - went_down)))
            cluster.start()
            healed = time.monotonic()

        assert_every_change_alerted_once(make_sessionmaker(engine), sim, receiver, daemon,
                                         healed=healed)
        titles = [m.title for m in receiver.messages]
        assert [sum(phone in t for t in titles) for phone in (LINE_A, LINE_B, LINE_C)] == [1, 1, 1]
    finally:
        daemon.stop()
        engine.dispose()


def test_it_waits_out_another_process_locking_the_sqlite_file(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    db = tmp_path / "monitor.db"
    url = f"sqlite:///{db}"
    for phone in (LINE_A, LINE_B):
        sim.add_line(phone)
    daemon = start(tmp_path, sim_server, receiver, url)
    engine = make_engine(url)
    locker: subprocess.Popen[str] | None = None
    try:
        daemon.wait_for_polls(1)
        sim.set_status(LINE_A, "AT_RISK")
        receiver.wait_for(1)

        # Another process (a curious operator's sqlite3 shell, a backup tool) takes the
        # write lock and holds it.
        locker = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys\n"
             f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
             "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
             "sys.stdin.read(); c.execute('ROLLBACK')\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        sim.set_status(LINE_B, "CRITICAL")
        body = wait_until(lambda: not_ready_saying(daemon, "database is locked"), timeout=90,
                          what="/readyz to say the database is locked")
        print(f"\n/readyz while the file is locked: {body}")
        assert "database is locked" in daemon.log()
        assert line_alerts(receiver) == 1

        assert locker.stdin is not None
        locker.stdin.close()
        healed = time.monotonic()
        locker.wait(10)
        receiver.wait_for(2)
        assert_every_change_alerted_once(make_sessionmaker(engine), sim, receiver, daemon,
                                         healed=healed)
    finally:
        if locker is not None and locker.poll() is None:
            locker.kill()
        daemon.stop()
        engine.dispose()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: the only way to fill a disk without filling the machine's."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mountpoint)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        if os.environ.get("REQUIRE_TMPFS") == "1":
            pytest.fail(f"REQUIRE_TMPFS=1 but mounting a tmpfs failed: {result.stderr}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses more; returns it."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_it_survives_a_full_disk_and_catches_up_once_there_is_room(
    tmp_path: Path, small_disk: Path, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    url = f"sqlite:///{small_disk / 'monitor.db'}"
    sim.add_lines(300, prefix="+1303")
    first = sim.lines()[0]["phone_number"]
    daemon = start(tmp_path, sim_server, receiver, url)
    engine = make_engine(url)
    try:
        daemon.wait_for_polls(1)
        sim.set_status(first, "AT_RISK")
        receiver.wait_for(1)

        filler = fill(small_disk)
        # Every line changes at once: far more than the database's spare pages can hold.
        sim.set_many({item["phone_number"]: "CRITICAL" for item in sim.lines()})
        body = wait_until(lambda: not_ready_saying(daemon, "full"), timeout=60,
                          what="/readyz to say the disk is full")
        print(f"\n/readyz with the disk full: {body}")
        assert "disk is full" in daemon.log()
        assert line_alerts(receiver) == 1

        # The 300 changes arrive grouped (a few messages); the audit counts them per line.
        filler.unlink()
        healed = time.monotonic()
        assert_every_change_alerted_once(make_sessionmaker(engine), sim, receiver, daemon,
                                         healed=healed)
    finally:
        daemon.stop()
        engine.dispose()
