"""Failover: how long after a ``kill -9`` of a lease holder another replica polls its accounts.

Usage: python -m bench.failover [--trials 5] [--replicas 2] [--accounts 4]
                                [--poll-interval 1] [--lease 3]

Each trial starts the replicas on a throw-away PostgreSQL database (``$TEST_POSTGRES_URL``)
against the simulator, waits until every account has one holder, kills the holder of
``acc0`` with SIGKILL and measures, at the simulator, the time until the first request for
each of its accounts from a survivor. The bound to compare with is two poll intervals plus
the lease time.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator import SimResponse, Simulator, SimulatorServer

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Requests:
    """Every list request's (monotonic time, bearer token); any ``acc*`` token is accepted."""

    def __init__(self, sim: Simulator) -> None:
        self.seen: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        respond, own = sim.respond, f"Bearer {sim.token}"

        def recording(authorization: str | None) -> SimResponse:
            token = (authorization or "").removeprefix("Bearer ")
            with self._lock:
                self.seen.append((time.monotonic(), token))
            return respond(own if token.startswith("acc") else authorization)

        sim.respond = recording  # type: ignore[method-assign]

    def first_after(self, moment: float, token: str) -> float | None:
        with self._lock:
            return next((t for t, k in self.seen if t > moment and k == token), None)


def leaders(port: int) -> set[str]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return set()
    return {s.labels["account"] for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "linq_reputation_leader" and s.value == 1}


def wait(predicate, timeout: float = 180):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit("timed out")


def trial(args: argparse.Namespace, base_url: str, requests: Requests, work: Path) -> float:
    name = f"rm_failover_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for i in range(args.replicas):
            port = free_port()
            config = work / f"{name}-{i}.toml"
            config.write_text("".join(
                f'[[accounts]]\nname = "acc{a}"\nbase_url = "{base_url}"\n'
                f'token = "acc{a}"\npoll_interval = "{args.poll_interval}s"\n'
                for a in range(args.accounts))
                + f'[database]\nurl = "{database}/{name}"\n[server]\n'
                f'listen = "127.0.0.1:{port}"\n[ha]\nlease = "{args.lease}s"\n')
            config.chmod(0o600)
            log = (work / f"{name}-{i}.log").open("wb")
            procs.append((subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                            str(config)], stdout=log, stderr=log), port))
        everything = {f"acc{a}" for a in range(args.accounts)}
        wait(lambda: set().union(*(leaders(p) for _, p in procs)) == everything
             and sum(len(leaders(p)) for _, p in procs) == args.accounts)
        victim, port = next((proc, p) for proc, p in procs if "acc0" in leaders(p))
        orphans = leaders(port)
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        return max(wait(lambda a=a: requests.first_after(killed, a)) - killed for a in orphans)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.failover")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--lease", type=float, default=3.0)
    args = parser.parse_args()
    sim = Simulator(token="bench-token")
    sim.add_lines(10)
    requests = Requests(sim)
    figures = []
    with SimulatorServer(sim) as server, tempfile.TemporaryDirectory() as work:
        for _ in range(args.trials):
            figures.append(trial(args, server.url, requests, Path(work)))
            print(f"takeover {figures[-1]:.2f}s", flush=True)
    bound = 2 * args.poll_interval + args.lease
    print(f"takeover after kill -9 over {args.trials} trials: median "
          f"{statistics.median(figures):.2f}s, max {max(figures):.2f}s "
          f"(bound: 2 x poll interval + lease = {bound:g}s)")


if __name__ == "__main__":
    main()
