"""Run ``reputation-monitor`` as a real subprocess, and write the configs it reads."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from monitor.cli.main import main as cli_main

TOKEN = "sim-token"


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports for servers the tests start in another process. A port taken with bind(0) comes
# from the kernel's ephemeral range, and between closing it here and the daemon binding it
# any outgoing connection on the machine may take it ("Address already in use" in CI).
# Below that range nothing is handed out implicitly; each xdist worker gets its own slice
# so two workers never offer the same port.
_PORT_BASE = 15000
_SLICE = 2000
_next_port: dict[str, int] = {}


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    low = _PORT_BASE + (index % 8) * _SLICE
    high = min(low + _SLICE, _ephemeral_floor())
    if high - low < 100:  # an unusual port range: fall back to the kernel's choice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    start = _next_port.get(worker, low + (os.getpid() * 7) % (high - low))
    for step in range(high - low):
        port = low + (start - low + step) % (high - low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _next_port[worker] = port + 1
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


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
    retry_initial: str = "200ms",
    retry_max: str = "1s",
    channel_options: str = 'group_wait = "0s"',
    extra: str = "",
    audit_on: str = "[]",
) -> Path:
    """A config with one account ``main`` polling ``base_url`` with the simulator's token.

    ``channels`` are (name, apprise_url, min_status); ``channel_options`` go into each
    (by default no grouping delay, so a test of one change waits for nothing). Reputation
    audits are off unless ``audit_on`` lists statuses: a CRITICAL alert would otherwise wait
    for its audit (up to audit_wait), which only the audit tests are about.
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
audit_on = {audit_on}
{extra_account}

[database]
url = "{database_url}"

[server]
listen = "127.0.0.1:{port if port is not None else free_port()}"

[ha]
# A restart after kill -9 on PostgreSQL waits out the dead process's lease: keep it short.
lease = "3s"

[alerts]
retry_initial = "{retry_initial}"
retry_max = "{retry_max}"
{extra_alerts}
"""
    for name, url, min_status in channels:
        text += f"""
[[alerts.channels]]
name = "{name}"
url = "{url}"
min_status = "{min_status}"
{channel_options}
"""
    path.write_text(text + extra)
    path.chmod(0o600)
    return path


def migrated_config(tmp_path: Path, *, base_url: str, **options: Any) -> Path:
    """``write_config`` with a SQLite database in ``tmp_path``, created as a daemon leaves
    it: only ``run``, ``poll`` and ``db upgrade`` create one, the other commands refuse."""
    path = write_config(tmp_path / "config.toml", base_url=base_url,
                        database_url=f"sqlite:///{tmp_path / 'monitor.db'}", **options)
    assert cli("db", "upgrade", "--config", str(path)).returncode == 0
    return path


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion in this process, as ``main(argv)``: what a shell would see.

    Exit code, stdout and stderr (logs included) come back as from a subprocess, ``env``
    is set and ``cwd`` entered for the call only, and the logging set-up the command makes
    is undone afterwards. In-process saves the ~1 s interpreter start and imports of a
    subprocess; ``cli_subprocess`` is there for what needs a real process. Not for
    concurrent use (it swaps process-wide state). ``timeout`` is the subprocess's only.
    """
    del timeout  # pytest-timeout bounds an in-process call
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        if cwd is not None:
            patch.chdir(cwd)
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = cli_main(list(args))
        except SystemExit as exc:  # argparse: --help, --version, bad usage
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if isinstance(exc.code, str):
                err.write(exc.code)
        finally:
            root.handlers[:], root.level = handlers, level
    return subprocess.CompletedProcess(["reputation-monitor", *args], code, out.getvalue(),
                                       err.getvalue())


def cli_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
                   cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a new interpreter, as a user would from a shell (exit codes, imports)."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd,
    )


T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, *, what: str = "condition"
               ) -> T:
    """Poll ``predicate`` until it returns something truthy; return that, or fail at the deadline.

    For states only observable by asking (``/metrics``, ``status --json``): there is no
    event to wait on, so this asks every 50 ms instead of sleeping a guessed amount.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a Prometheus exposition; raises ValueError if it does not parse."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample_value(samples: Sequence[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` whose labels include ``labels``, None if absent."""
    found = [s.value for s in samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    if len(found) > 1:
        raise AssertionError(f"{len(found)} samples of {name} match {labels}")
    return found[0] if found else None


class DaemonProcess:
    """``reputation-monitor run`` in a subprocess; stderr goes to a log file for inspection."""

    def __init__(self, config: Path, *, log: Path) -> None:
        self.config = config
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        listen = next(line for line in config.read_text().splitlines()
                      if line.startswith("listen"))
        self.url = "http://" + listen.split('"')[1]

    def start(self, *, timeout: float = 60) -> DaemonProcess:
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

    def samples(self) -> list[Sample]:
        return parse_metrics(self.metrics())

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's current value (``None`` when the series is not exposed)."""
        return sample_value(self.samples(), name, **labels)

    def polls(self, outcome: str = "success", account: str = "main") -> int:
        """How many polls of ``account`` ended with ``outcome`` so far."""
        return int(self.value("linq_reputation_polls_total", account=account,
                              outcome=outcome) or 0)

    def wait_for_polls(self, count: int, *, outcome: str = "success", account: str = "main",
                       timeout: float = 20.0) -> None:
        """Block until at least ``count`` polls ended with ``outcome``."""
        wait_until(lambda: self.polls(outcome, account) >= count, timeout=timeout,
                   what=f"{count} polls of {account} with outcome {outcome}")

    def settle(self, polls: int = 2) -> None:
        """Let ``polls`` more successful polls (and the delivery rounds they wake) happen."""
        self.wait_for_polls(self.polls() + polls)
        wait_until(lambda: self.value("linq_reputation_notifications_pending") == 0,
                   what="the outbox to drain")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, *, timeout: float = 20) -> int:
        return self.send_signal(signal.SIGTERM, timeout=timeout)

    def send_signal(self, sig: signal.Signals, *, timeout: float = 20) -> int:
        """Send ``sig`` and wait for the process to exit; returns its exit code."""
        self.signal(sig)
        return self.wait(timeout=timeout)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` without waiting for anything."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, *, timeout: float = 20) -> int:
        """Wait for the process to exit; returns its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def subscribe(sim: Any) -> None:
    """Give the simulated account the webhook subscription `webhook register` leaves behind,
    so a daemon with webhooks on finds Linq pushing ``phone_number.status_updated`` to it
    (push liveness) instead of rightly telling every channel it is not."""
    sim.subscriptions.create({"target_url": "https://monitor.test/webhooks/linq",
                              "subscribed_events": ["phone_number.status_updated"]})
