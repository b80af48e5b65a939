"""Signals, in real processes: Ctrl-C ends a one-shot command with 130, and SIGHUP stops
the daemon cleanly, saying at INFO that the config is not reloaded, with no warning."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.simulator import SimulatorServer
from tests.support.daemon import DaemonProcess, write_config

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def silent_api() -> Iterator[socket.socket]:
    """An API that accepts the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(30)
        yield server


def test_ctrl_c_in_a_one_shot_command_exits_130(tmp_path: Path, silent_api: socket.socket
                                                  ) -> None:
    host, port = silent_api.getsockname()
    config = write_config(tmp_path / "config.toml", base_url=f"http://{host}:{port}",
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}")
    process = subprocess.Popen([sys.executable, "-m", "monitor", "poll", "--config",
                                str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        connection, _ = silent_api.accept()  # the poll is waiting for its answer now
        with connection:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    # 130, not 1: the poll was interrupted, not failed by its request's 5 s timeout.
    assert process.returncode == 130, out + err
    assert err.rstrip().endswith("interrupted")
    assert "Traceback" not in err


def test_sighup_stops_the_daemon_cleanly_logging_at_info_only(
        tmp_path: Path, sim_server: SimulatorServer) -> None:
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}")
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_polls(1)
        code = daemon.send_signal(signal.SIGHUP)
    finally:
        daemon.stop()

    log = daemon.log()
    assert code == 0, log
    assert "INFO    monitor.service.daemon: SIGHUP: stopping; the config is read at start " \
           "only, restart to reload" in log
    stopping = log[log.index("SIGHUP: stopping"):]
    assert "stopped polling account main: shutting down" in stopping  # leases given back
    assert " WARNING " not in stopping and " ERROR " not in stopping, stopping
