"""Poll-cycle, scrape and memory benchmark against the simulator over a real socket.

    python -m bench --lines 10000 --db sqlite
    python -m bench --lines 1000 10000 100000 --db sqlite postgresql --runs 5

Per configuration it measures, as medians of ``--runs``:
- floor: this process fetching the same body with httpx and parsing it with orjson;
- cold poll: the first poll, every line new (detect, insert, metrics);
- steady poll: 0.1 % of lines changed since the last poll (fetch, parse, detect, store,
  enqueue, update metrics), and its ratio to the floor;
- scrape: GET /metrics over HTTP from the monitor's own server;
- rows written per steady poll, counted in the database (and the changes that caused them);
- peak RSS of this process (the simulator runs in another process).
The table is printed and, unless --no-write, written to bench/RESULTS.md.

``python -m bench whole ...`` runs bench/whole.py instead: the whole daemon's cost
(``reputation-monitor run`` with audits, alerts and scrapes, then the one-shot ``poll``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg
from sqlalchemy import func, select

from monitor.config import parse_config
from monitor.http.server import build_app, make_server
from monitor.service.daemon import bind
from monitor.service.runtime import Runtime, open_database, run_async
from monitor.store.schema import Base

TOKEN = "bench-token"
PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass
class Result:
    lines: int
    db: str
    floor: float
    cold: float
    steady: float
    scrape: float
    scrape_bytes: int
    changes_per_poll: int
    rows_per_steady_poll: float
    rows_per_quiet_poll: float
    peak_rss_mb: float

    def row(self) -> str:
        return (f"| {self.lines:,} | {self.db} | {self.floor:.3f} | {self.cold:.2f} | "
                f"{self.steady:.3f} | {self.steady / self.floor:.2f}× | {self.scrape:.3f} | "
                f"{self.scrape_bytes / 1e6:.1f} | {self.changes_per_poll} | "
                f"{self.rows_per_steady_poll:.0f} | {self.rows_per_quiet_poll:.0f} | "
                f"{self.peak_rss_mb:.0f} |")


HEADER = ("| lines | db | floor s (httpx+orjson) | cold poll s | steady poll s | steady/floor "
          "| GET /metrics s | metrics MB | changes/poll | rows added/steady poll "
          "| rows added/quiet poll | peak RSS MB |\n" + "|---" * 12 + "|")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def simulator(lines: int, *, chats: int = 0) -> AsyncIterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.simproc", "--lines", str(lines),
                             "--port", str(port), "--chats", str(chats)])
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            # Making 2M chats takes the simulator minutes before it listens.
            for _ in range(600 if not chats else 6000):
                try:
                    if (await client.get(url + "/_sim/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise SystemExit("simulator did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"rm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        server = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def row_total(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return sum(session.scalar(select(func.count()).select_from(t)) or 0
                   for t in Base.metadata.sorted_tables)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = fn()
    if asyncio.iscoroutine(result):
        await result
    return time.perf_counter() - started


async def bench_one(lines: int, db: str, runs: int) -> Result:
    async with simulator(lines) as sim_url, database(db) as db_url:
        config = parse_config({
            "accounts": [{"name": "bench", "base_url": sim_url, "token": TOKEN,
                          "timeout": "120s", "max_retries": 0}],
            "database": {"url": db_url},
            # Notifications are queued (the outbox is part of a poll) but never sent here.
            "alerts": {"channels": [{"name": "ops", "url": "json://127.0.0.1:9/bench"}]},
        })
        engine, sessions = await asyncio.to_thread(open_database, config)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with Runtime(config, engine, sessions) as runtime, httpx.AsyncClient(
                timeout=120, headers=headers) as http:
            poller = runtime.pollers["bench"]

            async def floor_once() -> None:
                response = await http.get(sim_url + "/v3/phone_numbers")
                orjson.loads(response.content)

            floor = statistics.median([await timed(floor_once) for _ in range(runs)])
            ids = [item["id"] for item in orjson.loads(
                (await http.get(sim_url + "/v3/phone_numbers")).content)["phone_numbers"]]

            async def poll() -> None:
                outcome = await poller.poll()
                if not outcome.ok:
                    raise SystemExit(f"poll failed: {outcome.error}")

            cold = await timed(poll)
            quiet_before = row_total(runtime)
            await poll()
            rows_quiet = row_total(runtime) - quiet_before

            changes = max(1, lines // 1000)
            steady_times, rows = [], []
            for run in range(runs):
                start = (run * changes) % len(ids)
                status = "AT_RISK" if run % 2 == 0 else "HEALTHY"
                batch = {line_id: status for line_id in ids[start:start + changes]}
                await http.post(sim_url + "/_sim/set", content=orjson.dumps(batch))
                before = row_total(runtime)
                steady_times.append(await timed(poll))
                rows.append(row_total(runtime) - before)

            server = make_server(build_app(runtime, started_at=datetime.now(UTC)),
                                 host="127.0.0.1", port=0)
            sock = bind("127.0.0.1", 0)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.01)
            metrics_url = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
            # The scraper is another process, as Prometheus is: curl reports the total time.
            scrapes, size = [], 0
            for _ in range(runs):
                # Each scrape follows a change, so the changed bucket is rendered again.
                first = next(iter(poller._known.values()))
                runtime.metrics.line_series.update([first])
                curl = await asyncio.create_subprocess_exec(
                    "curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                    metrics_url, stdout=asyncio.subprocess.PIPE)
                out, _ = await curl.communicate()
                seconds, size_text = out.decode().split()
                scrapes.append(float(seconds))
                size = int(size_text)
            # Check the exposition parses, in another process: building 500k Sample objects
            # here would dwarf the monitor's own memory in the peak-RSS column.
            await check_exposition(metrics_url)
            server.should_exit = True
            await serving
        return Result(lines, db, floor, cold, statistics.median(steady_times),
                      statistics.median(scrapes), size, changes,
                      statistics.median(rows), rows_quiet, peak_rss_mb())


async def check_exposition(url: str) -> None:
    with tempfile.NamedTemporaryFile(suffix=".prom") as saved:
        curl = await asyncio.create_subprocess_exec("curl", "-sS", "-o", saved.name, url)
        await curl.wait()
        checker = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import sys; from prometheus_client.parser import text_string_to_metric_families as"
            " parse; names = {f.name for f in parse(open(sys.argv[1]).read())};"
            " assert 'linq_reputation_line_severity' in names, names", saved.name)
        if await checker.wait() != 0:
            raise SystemExit("GET /metrics did not parse as Prometheus exposition format")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main() -> None:
    if sys.argv[1:2] == ["webhooks"]:  # python -m bench webhooks ... (bench/webhooks.py)
        from bench.webhooks import main as webhooks

        sys.exit(webhooks(sys.argv[2:]))
    if sys.argv[1:2] == ["watch"]:  # python -m bench watch ... (bench/watch.py)
        from bench.watch import main as watch

        watch(sys.argv[2:])
        return
    if sys.argv[1:2] == ["whole"]:
        from bench import whole

        sys.argv[0:2] = ["python -m bench whole"]
        whole.main()
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000])
    parser.add_argument("--db", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--row-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    results = []
    for lines in args.lines:
        for db in args.db:
            # A fresh process per configuration, so peak RSS belongs to that size alone.
            if len(args.lines) * len(args.db) > 1:
                out = subprocess.run(
                    [sys.executable, "-m", "bench", "--lines", str(lines), "--db", db, "--runs",
                     str(args.runs), "--no-write", "--row-only"],
                    check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                results.append(out)
            else:
                results.append(run_async(bench_one(lines, db, args.runs)).row())
    table = "\n".join([HEADER, *results])
    if "--row-only" in sys.argv:
        print(results[-1])
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (f"\n## {stamp}: `python -m bench {' '.join(sys.argv[1:])}`\n\n"
              f"Machine: {machine()}.\n\n{table}\n")
    print(report)
    if not args.no_write:
        with RESULTS.open("a") as f:
            f.write(report)


if __name__ == "__main__":
    main()
