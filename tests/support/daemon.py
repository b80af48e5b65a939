"""Run ``reputation-monitor`` as a real subprocess, and write the configs it reads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

TOKEN = "sim-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path,
    *,
    base_url: str,
    database_url: str,
    channels: Sequence[tuple[str, str, str]] = (),
    port: int | None = None,
    poll_interval: str = "1s",
    extra_alerts: str = "",
    extra_account: str = "",
) -> Path:
    """A config with one account ``main`` polling ``base_url`` with the simulator's token.

    ``channels`` are (name, apprise_url, min_status).
    """
    token_file = path.parent / "token"
    token_file.write_text(TOKEN)
    text = f"""
[[accounts]]
name = "main"
base_url = "{base_url}"
token_file = "{token_file}"
poll_interval = "{poll_interval}"
timeout = "5s"
{extra_account}

[database]
url = "{database_url}"

[server]
listen = "127.0.0.1:{port if port is not None else free_port()}"

[alerts]
retry_initial = "200ms"
retry_max = "1s"
{extra_alerts}
"""
    for name, url, min_status in channels:
        text += f"""
[[alerts.channels]]
name = "{name}"
url = "{url}"
min_status = "{min_status}"
"""
    path.write_text(text)
    path.chmod(0o600)
    return path


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion, as a user would from a shell."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


class DaemonProcess:
    """``reputation-monitor run`` in a subprocess; stderr goes to a log file for inspection."""

    def __init__(self, config: Path, *, log: Path) -> None:
        self.config = config
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        listen = next(line for line in config.read_text().splitlines()
                      if line.startswith("listen"))
        self.url = "http://" + listen.split('"')[1]

    def start(self, *, timeout: float = 30) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a port that is not open yet: there is no event to await
        raise AssertionError(f"daemon did not start:\n{self.log()}")

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, *, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
