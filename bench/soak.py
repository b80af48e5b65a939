"""Soak: the real daemon for a long while at a fast interval with churn; is it flat?

    python -m bench.soak                          # 30 minutes, SQLite, 1 s polls
    python -m bench.soak --minutes 5 --db postgresql --lines 2000 --churn 20

The daemon runs as a subprocess (``reputation-monitor run``) against the simulator (in this
process, on a real socket), delivering every alert through Apprise's json:// notifier to
a local receiver. Every poll interval ``--churn`` random lines get a random status. Every
``--sample`` seconds the daemon's RSS (``VmRSS``) and open file descriptors
(``/proc/PID/fd``) are read. After a warm-up, the least-squares slope of each is printed
per hour: a leak shows as a slope that does not go away with a longer run.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import TOKEN, DaemonProcess, write_config
from tests.support.receiver import Receiver

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STATUSES = ("HEALTHY", "AT_RISK", "CRITICAL")


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the daemon started
    rss_kb: int
    fds: int


def read_sample(pid: int, started: float) -> Sample:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return Sample(time.monotonic() - started, rss, len(os.listdir(f"/proc/{pid}/fd")))


def slope_per_hour(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), scaled to one hour."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600


def churn(sim: Simulator, lines: list[str], per_tick: int, interval: float,
          stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.wait(interval):
        picked = rng.sample(lines, min(per_tick, len(lines)))
        sim.set_many({line: rng.choice(STATUSES) for line in picked})


def database(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'soak.db'}", None
    name = f"rm_soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", name


def drop(name: str | None) -> None:
    if name is not None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--churn", type=int, default=10, help="lines changed per interval")
    parser.add_argument("--interval", default="1s", help="poll_interval (and churn period)")
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=120, help="seconds left out of slopes")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    interval = float(args.interval.removesuffix("s"))

    sim = Simulator(token=TOKEN)
    lines = sim.add_lines(args.lines)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmpdir, \
            SimulatorServer(sim) as server, Receiver() as receiver:
        tmp = Path(tmpdir)
        url, pg_name = database(args.db, tmp)
        config = write_config(tmp / "config.toml", base_url=server.url, database_url=url,
                              channels=[("ops", receiver.url("ops"), "AT_RISK"),
                                        ("pager", receiver.url("pager"), "CRITICAL")],
                              poll_interval=args.interval,
                              extra_alerts='notify_recovery = true')
        daemon = DaemonProcess(config, log=tmp / "daemon.log")
        try:
            daemon.start()
            assert daemon.proc is not None
            pid, started = daemon.proc.pid, time.monotonic()
            churner = threading.Thread(target=churn, daemon=True,
                                       args=(sim, lines, args.churn, interval, stop, args.seed))
            churner.start()
            samples: list[Sample] = []
            end = started + args.minutes * 60
            print(f"soak: {args.minutes:g} min, {args.lines} lines, {args.churn} changes every "
                  f"{args.interval}, {args.db}, daemon pid {pid}", flush=True)
            while time.monotonic() < end:
                if daemon.proc.poll() is not None:
                    print(f"daemon died (exit {daemon.proc.returncode}):\n{daemon.log()[-3000:]}")
                    return 1
                sample = read_sample(pid, started)
                samples.append(sample)
                print(f"  t={sample.at:7.0f}s rss={sample.rss_kb / 1024:7.1f} MB "
                      f"fds={sample.fds:3d} messages={len(receiver.messages)}", flush=True)
                time.sleep(args.sample)  # a sampling period, not a wait for an event
            stop.set()
            polls_ok, polls_err = daemon.polls("success"), daemon.polls("error")
            pending = daemon.value("linq_reputation_notifications_pending")
            exit_code = daemon.terminate()
        finally:
            stop.set()
            daemon.stop()
            drop(pg_name)

    steady = [s for s in samples if s.at >= args.warmup] or samples
    xs = [s.at for s in steady]
    rss_slope = slope_per_hour(xs, [s.rss_kb / 1024 for s in steady])
    fd_slope = slope_per_hour(xs, [float(s.fds) for s in steady])
    rss = [s.rss_kb / 1024 for s in steady]
    fds = [s.fds for s in steady]
    print(f"\nsamples after warm-up: {len(steady)} over {xs[-1] - xs[0]:.0f}s")
    print(f"RSS MB: first {rss[0]:.1f}, last {rss[-1]:.1f}, min {min(rss):.1f}, "
          f"max {max(rss):.1f}, slope {rss_slope:+.2f} MB/h")
    print(f"open fds: first {fds[0]}, last {fds[-1]}, min {min(fds)}, max {max(fds)}, "
          f"slope {fd_slope:+.2f} /h")
    print(f"polls: {polls_ok} ok, {polls_err} failed; messages received "
          f"{len(receiver.messages)}; pending at end {pending}; exit code {exit_code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
