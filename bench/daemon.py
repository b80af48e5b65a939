"""Memory of the real daemon: ``reputation-monitor run`` polling a large fleet, being scraped.

    python -m bench.daemon --lines 100000 --polls 30 --interval 3s --db sqlite

The daemon runs as a user would run it, in its own process, against the simulator in
another process, and delivers its alerts to a local json:// endpoint that accepts them.
After every poll 0.1 % of the lines change, and /metrics is scraped by
curl (another process, as Prometheus is) on a timer of its own, so scrapes overlap polls.
VmRSS and VmHWM of the daemon are read from /proc every 20 ms. It prints one row per poll
(duration, RSS after it, peak so far) and a summary: the peak, and the RSS drift between
the first steady polls and the last ones (a leak shows as drift that keeps growing).
Environment variables (e.g. MALLOC_ARENA_MAX) are passed on to the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.__main__ import TOKEN, database, free_port, simulator
from monitor.config import parse_duration


@dataclass
class Memory:
    """The daemon's memory as /proc shows it, sampled while it runs."""

    pid: int
    rss_kb: int = 0
    hwm_kb: int = 0
    max_rss_kb: int = 0

    def sample(self) -> None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                self.rss_kb = int(line.split()[1])
                self.max_rss_kb = max(self.max_rss_kb, self.rss_kb)
            elif line.startswith("VmHWM:"):
                self.hwm_kb = int(line.split()[1])

    async def watch(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.02)


@dataclass
class Run:
    polls: list[tuple[float, int, int]] = field(default_factory=list)  # seconds, RSS, HWM kB
    scrapes: list[float] = field(default_factory=list)


@asynccontextmanager
async def receiver(received: list[float] | None = None,
                   sizes: list[int] | None = None) -> AsyncIterator[str]:
    """A channel endpoint that accepts every notification (Apprise's json:// posts here);
    the time of each one is appended to `received` when given, its body's size to
    `sizes`."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if received is not None:
                    received.append(time.monotonic())
                if sizes is not None:
                    sizes.append(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    async with server:
        yield f"json://127.0.0.1:{server.sockets[0].getsockname()[1]}/bench"


def write_config(directory: Path, *, sim_url: str, db_url: str, interval: str, port: int,
                 per_line: str, channel: str) -> Path:
    token = directory / "token"
    token.write_text(TOKEN)
    config = directory / "config.toml"
    config.write_text(f"""
[[accounts]]
name = "bench"
base_url = "{sim_url}"
token_file = "{token}"
poll_interval = "{interval}"
timeout = "120s"
max_retries = 0

[database]
url = "{db_url}"

[server]
listen = "127.0.0.1:{port}"

[metrics]
per_line = "{per_line}"

[alerts]
[[alerts.channels]]
name = "ops"
url = "{channel}"
""")
    config.chmod(0o600)
    token.chmod(0o600)
    return config


@asynccontextmanager
async def daemon(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "run", "--config", str(config),
            "--log-format", "json", stdout=sink, stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()


async def polls_done(proc: asyncio.subprocess.Process, log: Path) -> AsyncIterator[float]:
    """Yield each finished poll's duration, read from the daemon's JSON log."""
    assert proc.stderr is not None
    with log.open("ab") as sink:
        while line := await proc.stderr.readline():
            sink.write(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = str(entry.get("message", ""))
            if message.startswith("poll ") and ": ok," in message:
                yield float(message.rsplit("(", 1)[1].rstrip("s)"))
            elif message.startswith("poll ") and "FAILED" in message:
                raise SystemExit(f"poll failed: {message}")
            elif entry.get("level") in ("error", "critical") and "deliver" not in str(
                    entry.get("logger")):
                print("daemon:", message, file=sys.stderr)
    raise SystemExit(f"the daemon exited; see {log}")


async def scrape_forever(url: str, every: float, run: Run) -> None:
    while True:
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", "/dev/null", "-w", "%{time_total}", url,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await curl.communicate()
        if out:
            run.scrapes.append(float(out))
        await asyncio.sleep(every)


async def bench(args: argparse.Namespace) -> None:
    interval = parse_duration(args.interval).total_seconds()
    async with simulator(args.lines) as sim_url, database(args.db) as db_url, \
            receiver() as channel:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            ids = [item["id"] for item in orjson.loads(
                (await http.get(sim_url + "/v3/phone_numbers")).content)["phone_numbers"]]
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                config = write_config(Path(tmp), sim_url=sim_url, db_url=db_url,
                                      interval=args.interval, port=port,
                                      per_line=args.per_line, channel=channel)
                log = Path(tmp) / "daemon.log"
                if args.restart:
                    # A daemon that already knows the lines: the measured one loads them
                    # from the database at its first poll, as after a restart.
                    async with daemon(config, log) as first:
                        async for _ in polls_done(first, log):
                            break
                run = Run()
                async with daemon(config, log) as proc:
                    memory = Memory(proc.pid)
                    watcher = asyncio.create_task(memory.watch())
                    scraper: asyncio.Task[None] | None = None
                    changes = max(1, args.lines // 1000)
                    started = time.monotonic()
                    print(f"{'poll':>4} {'seconds':>8} {'RSS MB':>7} {'peak MB':>8}")
                    async for seconds in polls_done(proc, log):
                        memory.sample()
                        n = len(run.polls)
                        run.polls.append((seconds, memory.rss_kb, memory.hwm_kb))
                        print(f"{n:>4} {seconds:>8.2f} {memory.rss_kb / 1024:>7.0f} "
                              f"{memory.hwm_kb / 1024:>8.0f}", flush=True)
                        if len(run.polls) > args.polls:
                            break
                        if scraper is None:
                            scraper = asyncio.create_task(scrape_forever(
                                f"http://127.0.0.1:{port}/metrics", interval / 2, run))
                        start = (n * changes) % len(ids)
                        status = "AT_RISK" if n % 2 == 0 else "HEALTHY"
                        batch = {i: status for i in ids[start:start + changes]}
                        await http.post(sim_url + "/_sim/set", content=orjson.dumps(batch))
                    elapsed = time.monotonic() - started
                    for task in (watcher, scraper):
                        if task is not None:
                            task.cancel()
    report(args, run, memory, elapsed)


def report(args: argparse.Namespace, run: Run, memory: Memory, elapsed: float) -> None:
    steady = run.polls[1:]
    rss = [r for _, r, _ in steady]
    head = statistics.median(rss[:5]) / 1024
    tail = statistics.median(rss[-5:]) / 1024
    env = " ".join(f"{k}={os.environ[k]}" for k in ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_")
                   if k in os.environ)
    restart = ", restarted on a database that knows every line" if args.restart else ""
    print(f"\n{args.lines:,} lines, {args.db}, per_line={args.per_line}{restart}, "
          f"{len(run.polls) - 1} polls every {args.interval} over {elapsed:.0f} s {env}".rstrip())
    print(f"first poll {run.polls[0][0]:.2f} s; steady poll median "
          f"{statistics.median(s for s, _, _ in steady):.2f} s")
    if run.scrapes:
        later = run.scrapes[1:] or run.scrapes
        print(f"scrapes: {len(run.scrapes)}, first {run.scrapes[0]:.2f} s, then median "
              f"{statistics.median(later):.3f} s, max {max(later):.3f} s")
    print(f"peak RSS (VmHWM) {memory.hwm_kb / 1024:.0f} MB; VmRSS after polls "
          f"1-5 median {head:.0f} MB, last 5 median {tail:.0f} MB "
          f"(drift {tail - head:+.0f} MB), final {memory.rss_kb / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=30, help="steady polls after the cold one")
    parser.add_argument("--interval", default="3s")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--per-line", default="full", choices=["full", "severity", "off"])
    parser.add_argument("--restart", action="store_true",
                        help="measure a daemon started on a database that knows every line")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
