"""The whole daemon's cost: ``reputation-monitor run`` at N lines with changes, audits, alerts
and scrapes, measured from /proc; then the one-shot ``reputation-monitor poll``.

    python -m bench.whole --lines 100000 --polls 20 --database sqlite --outbox-rows 1000000
    python -m bench.whole --smoke                       # 1,000 lines, 3 polls (CI)

The fleet starts with ~10 % of its lines AT_RISK and ~2 % CRITICAL; after every poll
0.15 % of the lines change (some to CRITICAL, which starts an audit under the default
``audit_on``). The simulator (its own process) answers audits as linq-python documents
them (202 with an ``audit_id``, then a complete report). One Apprise json:// channel at
``min_status = "CRITICAL"`` posts to a local receiver; curl scrapes ``/metrics`` on a timer
that drifts against the polls, so some scrapes land during a poll.

Reported:
- the floor: CPU and wall time of another process fetching the same body with httpx and
  decoding it with orjson (median of five, after a warm-up fetch);
- whole-process CPU per poll interval: utime+stime of the daemon (all threads) from
  /proc/PID/stat, read when each poll's log line arrives; "steady" is every interval after
  the first ``--warmup`` polls (the first poll sees every line new and audits every
  CRITICAL line);
- peak RSS (VmHWM), each poll's own duration (from its log line), scrape times split into
  those that started during a poll and those between polls, audits started (rows in
  ``audits``), messages the receiver got, cold start (spawn to the first completed poll);
- the one-shot ``poll`` on the same database after the daemon stops (CPU, wall and peak RSS
  from wait4's rusage).
``--outbox-rows N`` first fills the database with N delivered notifications (and their
transitions), months old, to show whether the cost grows with the outbox's age.
``--chats C`` gives every line C chats in the simulator and turns ``[chats] enabled`` on
with ``--chat-rpm`` requests a minute, so the chat sweep runs (one page every 60/rpm s)
through the measured polls; the sweep's pages and requests are read from ``/metrics`` when
the last poll is in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from bench.__main__ import TOKEN, database, free_port, simulator
from bench.daemon import Memory, daemon, polls_done, receiver
from bench.running import cpu_seconds
from monitor.store.schema import Audit, Notification

STATUSES = ("HEALTHY", "AT_RISK", "CRITICAL")
WEIGHTS = {"HEALTHY": 0.45, "AT_RISK": 0.35, "CRITICAL": 0.20}

FLOOR = """
import json, sys, time, httpx, orjson
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with httpx.Client(timeout=120, headers={"Authorization": "Bearer " + token}) as client:
    orjson.loads(client.get(url).content)  # warm-up: connection, imports, allocator
    out = []
    for _ in range(n):
        wall, cpu = time.perf_counter(), time.process_time()
        orjson.loads(client.get(url).content)
        out.append((time.process_time() - cpu, time.perf_counter() - wall))
print(json.dumps(out))
"""


@dataclass
class Scrape:
    start: float
    seconds: float


@dataclass
class Whole:
    floor_cpu: float = 0.0
    floor_wall: float = 0.0
    cold_start: float = 0.0
    polls: list[tuple[float, float, float]] = field(default_factory=list)  # end, dur, cpu
    scrapes: list[Scrape] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    audits: int = 0
    messages: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # of each message's body, bytes
    oneshot: dict[str, float] = field(default_factory=dict)
    mass: dict[str, float] = field(default_factory=dict)
    sweep: dict[str, float] = field(default_factory=dict)  # --chats: pages, requests


def write_config(directory: Path, *, sim_url: str, db_url: str, interval: str, port: int,
                 channel: str, audits: bool, chat_rpm: int = 0) -> Path:
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
{"" if audits else "audit_on = []"}

[database]
url = "{db_url}"

[server]
listen = "127.0.0.1:{port}"

[alerts]
[[alerts.channels]]
name = "ops"
url = "{channel}"
min_status = "CRITICAL"
""" + ("" if not chat_rpm else f"""
[chats]
enabled = true
requests_per_minute = {chat_rpm}
"""))
    config.chmod(0o600)
    token.chmod(0o600)
    return config


async def floor(sim_url: str, runs: int) -> tuple[float, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOR, sim_url + "/v3/phone_numbers", TOKEN, str(runs),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    samples = json.loads(out)
    return (statistics.median(c for c, _ in samples), statistics.median(w for _, w in samples))


def prefill_outbox(db_url: str, rows: int, ids: list[str], phones: list[str]) -> None:
    """`rows` delivered notifications (each with its transition), spread over 90 days."""
    from monitor.config import parse_config
    from monitor.service.runtime import open_database

    config = parse_config({"accounts": [{"name": "bench", "base_url": "http://127.0.0.1:9",
                                         "token": TOKEN}], "database": {"url": db_url}})
    engine, _ = open_database(config)  # migrated, as the daemon would find it
    engine.dispose()
    now = datetime.now(UTC).replace(tzinfo=None)
    span = 90 * 86400

    def rows_of(start: int, stop: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        trans, notes = [], []
        for i in range(start, stop):
            k = i % len(ids)
            at = now - timedelta(seconds=span * (rows - i) / rows)
            trans.append(("bench", ids[k], phones[k], "degraded", "HEALTHY", "CRITICAL", at,
                          "poll"))
            notes.append((i + 1, "bench", ids[k], "ops", "degraded", "old alert", "", at,
                          "delivered", 1, at, at, False))
        return trans, notes

    t_sql = ("INSERT INTO transitions (account, line_id, phone_number, kind, from_status, "
             "to_status, at, source) VALUES ({})")
    n_sql = ("INSERT INTO notifications (transition_id, account, line_id, channel, kind, "
             "title, body, created_at, state, attempts, next_attempt_at, delivered_at, "
             "deferred) VALUES ({})")
    url = make_url(db_url)
    chunk = 50_000
    if url.get_backend_name() == "sqlite":
        import sqlite3

        conn = sqlite3.connect(str(url.database))
        stamp = "%Y-%m-%d %H:%M:%S.%f"
        for start in range(0, rows, chunk):
            trans, notes = rows_of(start, min(rows, start + chunk))
            conn.executemany(t_sql.format(",".join("?" * 8)),
                             [(*t[:6], t[6].strftime(stamp), t[7]) for t in trans])
            conn.executemany(n_sql.format(",".join("?" * 13)),
                             [(*n[:7], n[7].strftime(stamp), n[8], n[9], n[10].strftime(stamp),
                               n[11].strftime(stamp), 0) for n in notes])
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        with conn.cursor() as cur:
            for start in range(0, rows, chunk):
                trans, notes = rows_of(start, min(rows, start + chunk))
                with cur.copy("COPY transitions (account, line_id, phone_number, kind, "
                              "from_status, to_status, at, source) FROM STDIN") as copy:
                    for t in trans:
                        copy.write_row((*t[:6], t[6].replace(tzinfo=UTC), t[7]))
                with cur.copy("COPY notifications (transition_id, account, line_id, channel, "
                              "kind, title, body, created_at, state, attempts, "
                              "next_attempt_at, delivered_at, deferred) FROM STDIN") as copy:
                    for n in notes:
                        copy.write_row((*n[:7], n[7].replace(tzinfo=UTC), n[8], n[9],
                                        n[10].replace(tzinfo=UTC), n[11].replace(tzinfo=UTC),
                                        n[12]))
        conn.commit()


def count_rows(db_url: str) -> tuple[int, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return (conn.scalar(select(func.count()).select_from(Audit)) or 0,
                    conn.scalar(select(func.count()).select_from(Notification)) or 0)
    finally:
        engine.dispose()


async def scrape_forever(url: str, every: float, whole: Whole) -> None:
    while True:
        start = time.monotonic()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", "/dev/null", "-w", "%{time_total}", url,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await curl.communicate()
        if out:
            whole.scrapes.append(Scrape(start, float(out)))
        await asyncio.sleep(every)


async def sweep_metrics(http: httpx.AsyncClient, url: str) -> dict[str, float]:
    """The chat sweep's pages and requests so far, from the daemon's /metrics."""
    found: dict[str, float] = {}
    for line in (await http.get(url)).text.splitlines():
        name = line.split("{", 1)[0]
        if name == "linq_reputation_chat_sweep_pages_total":
            found["pages"] = found.get("pages", 0.0) + float(line.rsplit(" ", 1)[1])
        elif name == "linq_reputation_chat_sweep_requests_total":
            found["requests"] = found.get("requests", 0.0) + float(line.rsplit(" ", 1)[1])
    return found


# Runs the one-shot poll as its own child and reports that child's rusage. Not measured
# straight from here: subprocess starts children by vfork, and Linux records the high-water
# RSS of the memory a child leaves at exec, which after a vfork is this benchmark's own
# (hundreds of MB at 100k lines): wait4 would report ours. This launcher is small when it
# forks, so its child's peak is the poll's.
LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "rss_kb": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def oneshot(config: Path) -> dict[str, float]:
    """CPU, wall and peak RSS of `reputation-monitor poll` (its own rusage: LAUNCHER)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, "-m", "monitor", "poll",
                           "--config", str(config)], capture_output=True, check=False)
    wall = time.monotonic() - started
    try:
        usage = json.loads(proc.stdout)
    except ValueError:
        usage = {"status": proc.returncode}
    if usage["status"] != 0:
        raise SystemExit(f"poll exited {usage['status']}: {proc.stderr.decode()[-2000:]}")
    return {"wall": wall, "cpu": usage["cpu"], "rss_mb": usage["rss_kb"] / 1024}


class Fleet:
    """Our copy of the simulator's statuses, changed the way the issue describes."""

    def __init__(self, ids: list[str], seed: int = 19) -> None:
        self.ids = ids
        self.rng = random.Random(seed)
        self.status = dict.fromkeys(ids, "HEALTHY")

    def initial(self) -> dict[str, str]:
        n = len(self.ids)
        chosen = self.rng.sample(self.ids, max(1, n // 10) + max(1, n // 50))
        for i, line_id in enumerate(chosen):
            self.status[line_id] = "CRITICAL" if i < max(1, n // 50) else "AT_RISK"
        return {i: self.status[i] for i in chosen}

    def mass(self, count: int) -> dict[str, str]:
        """`count` lines not yet CRITICAL turn CRITICAL at once (a mass event)."""
        healthy = [i for i in self.ids if self.status[i] != "CRITICAL"]
        batch = dict.fromkeys(self.rng.sample(healthy, min(count, len(healthy))), "CRITICAL")
        self.status.update(batch)
        return batch

    def step(self, count: int) -> dict[str, str]:
        batch = {}
        for line_id in self.rng.sample(self.ids, count):
            others = [s for s in STATUSES if s != self.status[line_id]]
            new = self.rng.choices(others, [WEIGHTS[s] for s in others])[0]
            self.status[line_id] = batch[line_id] = new
        return batch


async def bench(args: argparse.Namespace) -> Whole:
    whole = Whole()
    interval = float(args.interval)
    kind = "sqlite" if args.database == "sqlite" else "postgresql"
    given = args.database if "://" in args.database else None

    @asynccontextmanager
    async def db() -> AsyncIterator[str]:
        if given:
            yield given
        else:
            async with database(kind) as url:
                yield url

    async with simulator(args.lines, chats=args.chats) as sim_url, db() as db_url, \
            receiver(whole.messages, whole.sizes) as channel:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            items = orjson.loads((await http.get(sim_url + "/v3/phone_numbers")).content)[
                "phone_numbers"]
            ids = [item["id"] for item in items]
            phones = [item["phone_number"] for item in items]
            del items
            fleet = Fleet(ids)
            await http.post(sim_url + "/_sim/set", content=orjson.dumps(fleet.initial()))
            whole.floor_cpu, whole.floor_wall = await floor(sim_url, 5)
            print(f"floor: {whole.floor_cpu:.3f} s CPU, {whole.floor_wall:.3f} s wall", flush=True)
            if args.outbox_rows:
                t = time.monotonic()
                await asyncio.to_thread(prefill_outbox, db_url, args.outbox_rows, ids, phones)
                print(f"outbox filled with {args.outbox_rows:,} delivered notifications in "
                      f"{time.monotonic() - t:.0f} s", flush=True)
            notes_before = args.outbox_rows
            changes = max(1, round(args.lines * 0.0015))
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                config = write_config(Path(tmp), sim_url=sim_url, db_url=db_url,
                                      interval=f"{args.interval}s", port=port, channel=channel,
                                      audits=args.audits,
                                      chat_rpm=args.chat_rpm if args.chats else 0)
                log = Path(tmp) / "daemon.log"
                spawned = time.monotonic()
                async with daemon(config, log) as proc:
                    memory = Memory(proc.pid)
                    watcher = asyncio.create_task(memory.watch())
                    scraper: asyncio.Task[None] | None = None
                    print(f"{'poll':>4} {'poll s':>7} {'CPU s':>6} {'RSS MB':>7} {'peak MB':>8}")
                    last_cpu = 0.0
                    total = args.polls + (args.mass_polls if args.mass else 0)
                    mass_at = mass_cpu = 0.0
                    mass_audits = 0
                    async for seconds in polls_done(proc, log):
                        now, cpu = time.monotonic(), cpu_seconds(proc.pid)
                        memory.sample()
                        n = len(whole.polls)
                        if n == 0:
                            whole.cold_start = now - spawned
                        whole.polls.append((now, seconds, cpu - last_cpu))
                        last_cpu = cpu
                        print(f"{n:>4} {seconds:>7.2f} {whole.polls[-1][2]:>6.2f} "
                              f"{memory.rss_kb / 1024:>7.0f} {memory.hwm_kb / 1024:>8.0f}",
                              flush=True)
                        if n == args.polls + 1 and args.mass:
                            whole.mass["poll_done"] = now - mass_at
                            whole.mass["poll_s"] = seconds
                            whole.mass["poll_cpu"] = whole.polls[-1][2]
                        if n >= total:
                            break
                        if scraper is None:
                            # By default 0.7 of an interval: the scrapes drift across
                            # the polls, so some land during one.
                            scraper = asyncio.create_task(scrape_forever(
                                f"http://127.0.0.1:{port}/metrics",
                                args.scrape_every or interval * 0.7, whole))
                        if n == args.polls and args.mass:
                            # The mass event; afterwards no change, so every message
                            # the channel gets from here on is the mass event's.
                            mass_audits = (await asyncio.to_thread(count_rows, db_url))[0]
                            batch = fleet.mass(args.mass)
                            mass_at, mass_cpu = time.monotonic(), cpu_seconds(proc.pid)
                            whole.mass["lines"] = len(batch)
                            whole.mass["rss_before_mb"] = memory.hwm_kb / 1024
                            await http.post(sim_url + "/_sim/set", content=orjson.dumps(batch))
                        elif n < args.polls:
                            await http.post(sim_url + "/_sim/set",
                                            content=orjson.dumps(fleet.step(changes)))
                    if args.mass:
                        after = [(m - mass_at, size) for m, size in
                                 zip(whole.messages, whole.sizes, strict=True) if m >= mass_at]
                        whole.mass["messages"] = len(after)
                        whole.mass["last_message"] = max((t for t, _ in after),
                                                         default=float("nan"))
                        # The grouped message of the mass event: the largest one (alerts
                        # of earlier changes, held for their audits, may still arrive).
                        big = max(after, key=lambda m: m[1], default=(float("nan"), 0))
                        whole.mass["grouped_at"], whole.mass["grouped_kb"] = big[0], big[1] / 1024
                        whole.mass["cpu"] = cpu_seconds(proc.pid) - mass_cpu
                        whole.mass["window"] = time.monotonic() - mass_at
                        whole.mass["audits"] = (await asyncio.to_thread(count_rows, db_url))[
                            0] - mass_audits
                    if args.chats:
                        whole.sweep = await sweep_metrics(
                            http, f"http://127.0.0.1:{port}/metrics")
                        whole.sweep["cpu"] = cpu_seconds(proc.pid)
                    for task in (watcher, scraper):
                        if task is not None:
                            task.cancel()
                    memory.sample()
                    whole.peak_rss_mb = memory.hwm_kb / 1024
                audits, notes = await asyncio.to_thread(count_rows, db_url)
                whole.audits = audits
                print(f"notifications written: {notes - notes_before:,}", flush=True)
                await http.post(sim_url + "/_sim/set", content=orjson.dumps(fleet.step(changes)))
                whole.oneshot = await asyncio.to_thread(oneshot, config)
    return whole


def report(args: argparse.Namespace, whole: Whole) -> str:
    steady = whole.polls[args.warmup + 1:args.polls + 1] or whole.polls[1:args.polls + 1]
    cpu = [c for _, _, c in steady]
    windows = [(end - dur, end) for end, dur, _ in whole.polls]
    during = [s.seconds for s in whole.scrapes if any(a <= s.start <= b for a, b in windows)]
    between = [s.seconds for s in whole.scrapes if not any(a <= s.start <= b
                                                           for a, b in windows)]

    def spread(values: list[float]) -> str:
        if not values:
            return "none"
        return (f"{len(values)}, median {statistics.median(values):.3f} s, "
                f"max {max(values):.3f} s")

    med = statistics.median(cpu) if cpu else float("nan")
    outbox = f", outbox pre-filled with {args.outbox_rows:,}" if args.outbox_rows else ""
    outbox += "" if args.audits else ", audits off"
    if args.chats:
        outbox += (f", {args.chats} chats a line, chat sweep at {args.chat_rpm} requests "
                   "a minute")
    o = whole.oneshot
    return "\n".join([
        f"{args.lines:,} lines, {args.database.split('://')[0]}{outbox}, "
        f"{len(whole.polls) - 1} polls every {args.interval} s, "
        f"{max(1, round(args.lines * 0.0015))} changes per poll",
        f"floor (httpx + orjson, another process): CPU {whole.floor_cpu:.3f} s, "
        f"wall {whole.floor_wall:.3f} s",
        f"daemon CPU per steady poll interval (polls {args.warmup + 1}+): median {med:.2f} s "
        f"({med / whole.floor_cpu:.2f}x the floor), max {max(cpu, default=0):.2f} s; "
        f"first interval (cold) {whole.polls[0][2]:.2f} s",
        f"poll duration: first {whole.polls[0][1]:.2f} s, steady median "
        f"{statistics.median(d for _, d, _ in steady):.2f} s",
        f"cold start to the first completed poll: {whole.cold_start:.2f} s",
        f"peak RSS (VmHWM) of the daemon: {whole.peak_rss_mb:.0f} MB",
        f"scrapes during a poll: {spread(during)}; between polls: {spread(between)}",
        f"audits started: {whole.audits}; messages received by the channel: "
        f"{len(whole.messages)}",
        f"one-shot `poll`: CPU {o['cpu']:.2f} s, wall {o['wall']:.2f} s, "
        f"peak RSS {o['rss_mb']:.0f} MB",
    ] + ([] if not whole.sweep else [
        "chat sweep by the last poll: {pages:.0f} pages, {requests:.0f} requests "
        "(daemon CPU to then {cpu:.1f} s)".format(**{"pages": 0.0, "requests": 0.0,
                                                   **whole.sweep})
    ]) + ([] if not args.mass else [
        "mass event: {lines:.0f} lines turned CRITICAL in one poll; the poll that saw it "
        "completed {poll_done:.2f} s after the change (its duration {poll_s:.2f} s, CPU of "
        "its interval {poll_cpu:.2f} s); the channel got {messages:.0f} message(s) after the "
        "change, the largest ({grouped_kb:.0f} KB, the grouped one) {grouped_at:.2f} s and "
        "the last {last_message:.2f} s after it; CPU "
        "{cpu:.2f} s over the {window:.0f} s window; audits started {audits:.0f}; "
        "peak RSS {rss_before_mb:.0f} MB before, {after:.0f} MB after".format(
            **whole.mass, after=whole.peak_rss_mb)]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.whole",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=15, help="polls after the first one")
    parser.add_argument("--interval", type=float, default=3.0, help="poll interval, seconds")
    parser.add_argument("--warmup", type=int, default=3,
                        help="polls after the first left out of the steady figures")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite, postgresql (a throw-away database on "
                             "$TEST_POSTGRES_URL) or a database URL")
    parser.add_argument("--outbox-rows", type=int, default=0,
                        help="pre-fill the database with N delivered notifications")
    parser.add_argument("--scrape-every", type=float, default=None,
                        help="seconds between scrapes (default 0.7 of the interval)")
    parser.add_argument("--no-audits", dest="audits", action="store_false",
                        help="audit_on = [] (to tell the audits' cost from the rest)")
    parser.add_argument("--mass", type=int, default=0,
                        help="after --polls, turn N lines CRITICAL in one poll (a mass "
                             "event), then --mass-polls polls with no change")
    parser.add_argument("--mass-polls", type=int, default=8,
                        help="polls watched after the mass event")
    parser.add_argument("--chats", type=int, default=0,
                        help="chats per line in the simulator; turns the chat sweep on")
    parser.add_argument("--chat-rpm", type=int, default=20,
                        help="[chats] requests_per_minute with --chats (default 20, the "
                             "config's default; 600 is its most)")
    parser.add_argument("--smoke", action="store_true",
                        help="1,000 lines, 3 polls, 1 s apart: a check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.lines, args.polls, args.interval, args.warmup = 1000, 3, 1.0, 0
        args.outbox_rows = min(args.outbox_rows, 1000) or 1000
    whole = asyncio.run(bench(args))
    print()
    print(report(args, whole))


if __name__ == "__main__":
    main()
