"""A flood of idle and slow-header connections does not lock out /healthz and /metrics.

A real daemon process (SQLite, the simulator on a real socket), started with a soft
open-file limit of 256, like the review's probe (``ulimit -n 256``). 500 client sockets
are opened against it: half just connect, half send a request head one header at a time
and never finish it. Meanwhile fresh clients ask /healthz and /metrics.
"""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import DaemonProcess, migrated_config

FLOOD = 500
DAEMON_FILES = 256


@contextlib.contextmanager
def open_files(soft: int) -> Iterator[None]:
    """This process's soft open-file limit set to ``soft`` for the duration."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before, hard))


@pytest.fixture
def daemon(tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> Iterator[DaemonProcess]:
    sim.add_line("+12025550101")
    config = migrated_config(tmp_path, base_url=sim_server.url, poll_interval="1h")
    config.write_text(config.read_text().replace("[server]\n",
                                                 '[server]\nheader_timeout = "2s"\n'))
    with open_files(DAEMON_FILES):  # inherited by the daemon only: restored at once
        process = DaemonProcess(config, log=tmp_path / "daemon.log")
        process.start()
    try:
        yield process
    finally:
        process.stop()


def test_health_and_metrics_answer_while_500_idle_and_trickling_connections_are_open(
        daemon: DaemonProcess) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FLOOD + 200:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for {FLOOD} sockets")
    host, port = daemon.url.removeprefix("http://").split(":")
    flood: list[socket.socket] = []
    with open_files(max(FLOOD + 200, 1024)):
        try:
            for i in range(FLOOD):
                sock = socket.create_connection((host, int(port)), timeout=5)
                if i % 2:  # a slow-header client: a head begun, never finished
                    sock.sendall(b"POST /webhooks/linq HTTP/1.1\r\nHost: x\r\n")
                flood.append(sock)
            answers = []
            for _ in range(3):
                for sock in flood[1::2]:  # trickle one more header byte each
                    with contextlib.suppress(OSError):
                        sock.send(b"X")
                with httpx.Client(timeout=10) as client:
                    answers.append(client.get(daemon.url + "/healthz").status_code)
                    answers.append(client.get(daemon.url + "/metrics").status_code)
            assert answers == [200] * 6

            # The idle ones are closed by the server (head deadline, or to make room).
            first = flood[0]
            first.settimeout(15)
            with contextlib.suppress(ConnectionResetError):
                assert first.recv(1) == b""
        finally:
            for sock in flood:
                sock.close()
    assert "max_connections 1000 lowered to 128" in daemon.log()
    # The daemon keeps serving after the flood is gone.
    assert httpx.get(daemon.url + "/healthz", timeout=10).status_code == 200
