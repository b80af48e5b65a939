"""Several ``reputation-monitor run`` processes on one database, and what the fake API saw.

Each replica gets the same config but its own ``listen`` port (they share one machine).
Accounts ``acc0``, ``acc1``, ... all poll the one simulator, each with its own token, so
``TokenLog`` can tell which account every request was for.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from monitor.simulator import SimResponse, Simulator
from tests.support.daemon import DaemonProcess, free_port, parse_metrics

HOST = socket.gethostname()


def account_token(index: int) -> str:
    return f"token-of-acc{index}"


def write_replica_config(path: Path, *, base_url: str, database_url: str, accounts: int,
                         channel_url: str, poll_interval: str = "1s", lease: str = "3s",
                         extra_account: str = "") -> Path:
    lines = []
    for i in range(accounts):
        token = path.parent / f"acc{i}.token"
        token.write_text(account_token(i))
        lines.append(f'[[accounts]]\nname = "acc{i}"\nbase_url = "{base_url}"\n'
                     f'token_file = "{token}"\npoll_interval = "{poll_interval}"\n'
                     f'timeout = "5s"\nmax_retries = 0\naudit_on = []\n{extra_account}\n')
    lines.append(f'[database]\nurl = "{database_url}"\n')
    lines.append(f'[server]\nlisten = "127.0.0.1:{free_port()}"\n')
    lines.append(f'[ha]\nlease = "{lease}"\n')
    lines.append('[alerts]\nretry_initial = "200ms"\nretry_max = "1s"\n'
                 f'[[alerts.channels]]\nname = "ops"\nurl = "{channel_url}"\n')
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


class Replica(DaemonProcess):
    """One replica; ``spawn`` and ``ready`` apart, so several can start at the same time."""

    def spawn(self) -> Replica:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT)
        return self

    def ready(self, *, timeout: float = 60) -> Replica:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"replica exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # a port that is not open yet: there is no event to await
        raise AssertionError(f"replica did not start:\n{self.log()}")

    @property
    def name(self) -> str:
        """The derived replica identity: ``<hostname>:<pid>``."""
        assert self.proc is not None
        return f"{HOST}:{self.proc.pid}"

    def led(self) -> set[str]:
        """The accounts this replica says it polls (``linq_reputation_leader``)."""
        try:
            text = self.metrics()
        except httpx.TransportError:
            return set()
        return {s.labels["account"] for s in parse_metrics(text)
                if s.name == "linq_reputation_leader" and s.value == 1
                and s.labels["replica"] == self.name}


def start_replicas(tmp_path: Path, count: int, **config: object) -> list[Replica]:
    """``count`` replicas spawned together, returned once every one serves /healthz."""
    replicas = []
    for i in range(count):
        path = write_replica_config(tmp_path / f"replica{i}.toml", **config)  # type: ignore[arg-type]
        replicas.append(Replica(path, log=tmp_path / f"replica{i}.log").spawn())
    return [r.ready() for r in replicas]


def leaders(replicas: list[Replica]) -> dict[str, list[str]]:
    """Account -> the replicas claiming it (from every live replica's /metrics)."""
    claims: dict[str, list[str]] = {}
    for replica in replicas:
        if replica.proc is not None and replica.proc.poll() is None:
            for account in replica.led():
                claims.setdefault(account, []).append(replica.name)
    return claims


class TokenLog:
    """Wraps the simulator: records (time, account token) of every list request and
    answers every known account token as if it were the simulator's own."""

    def __init__(self, sim: Simulator, tokens: list[str]) -> None:
        self.requests: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._tokens = set(tokens)
        self._respond = sim.respond
        self._own = f"Bearer {sim.token}"
        sim.respond = self._recording  # type: ignore[method-assign]

    def _recording(self, authorization: str | None) -> SimResponse:
        token = (authorization or "").removeprefix("Bearer ")
        with self._lock:
            self.requests.append((time.monotonic(), token))
        if token in self._tokens:
            authorization = self._own
        return self._respond(authorization)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(token for _, token in self.requests)

    def first_after(self, moment: float, token: str) -> float | None:
        with self._lock:
            return next((t for t, k in self.requests if t > moment and k == token), None)
