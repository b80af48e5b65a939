"""Webhook backlog and burst against the running daemon (issue 15).

    python -m bench webhooks --lines 100000 --burst 5000 --backlog 10000

The daemon runs as ``reputation-monitor run`` (SQLite in a temporary directory, alerts by
Apprise json:// to a local receiver) polling the simulator (its own process). Once the
first poll has recorded every line:
- backlog: ``--backlog`` unmatched events (numbers no poll shows) are stored, then one
  signed FLAGGED event for a known line is posted; measured: from the POST until the
  alert reaches the receiver (target ≤ 1 s);
- burst: ``--burst`` signed events (80 % reputation changes of known lines, 20 % for
  unknown numbers), prepared and signed beforehand, are sent over 32 keep-alive
  connections as raw HTTP/1.1 (a light client: the machine is shared with the daemon);
  measured: accepted events/s (target ≥ 1,000/s) and the time from the first request
  until no event is pending any more (target ≤ 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import running
from monitor.simulator.webhooks import WebhookSender, new_secret
from tests.support.daemon import free_port
from tests.support.receiver import Receiver

CONNECTIONS = 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--backlog", type=int, default=10_000)
    args = parser.parse_args(argv)
    secret = new_secret()
    sender = WebhookSender(secret)
    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        work = Path(tmp)
        sim_port, port = free_port(), free_port()
        sim = subprocess.Popen([sys.executable, "-m", "bench.simproc", "--lines",
                                str(args.lines), "--port", str(sim_port)])
        daemon: subprocess.Popen[bytes] | None = None
        try:
            running.wait(f"http://127.0.0.1:{sim_port}/_sim/health",
                         lambda r: r.status_code == 200)
            db = work / "monitor.db"
            config = work / "config.toml"
            (work / "token").write_text("bench-token")
            config.write_text(f"""
[[accounts]]
name = "bench"
base_url = "http://127.0.0.1:{sim_port}"
token_file = "{work / 'token'}"
poll_interval = "1h"
webhook_secret_env = "BENCH_WEBHOOK_SECRET"
audit_on = []

[database]
url = "sqlite:///{db}"

[server]
listen = "127.0.0.1:{port}"

[metrics]
per_line = "severity"

[[alerts.channels]]
name = "pager"
url = "{receiver.url('pager')}"
min_status = "CRITICAL"
group_wait = "0s"
""")
            config.chmod(0o600)  # it holds the channel URL
            # BENCH_PROFILE=out.prof: the daemon runs under cProfile (written at its exit).
            profile = os.environ.get("BENCH_PROFILE")
            daemon = subprocess.Popen(
                [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
                 "-m", "monitor", "run", "--config", str(config),
                 "--log-level", "WARNING"], stdout=subprocess.DEVNULL,
                env={**os.environ, "BENCH_WEBHOOK_SECRET": secret})
            base = f"http://127.0.0.1:{port}"
            phones = running.phones(base, expected=args.lines, query="status=HEALTHY")
            _store_unmatched(db, args.backlog, sender)

            flagged = sender.status_updated(phones[0], previous_status="ACTIVE",
                                            new_status="FLAGGED")
            started = time.perf_counter()
            response = httpx.post(base + "/webhooks/linq", content=flagged.body,
                                  headers=sender.headers(flagged), timeout=30)
            assert response.status_code == 200, response.text
            receiver.wait_for(1, path="pager", timeout=60)
            backlog_seconds = time.perf_counter() - started

            rng = random.Random(15)
            known = rng.sample(phones[1:], int(args.burst * 0.8))
            deliveries = [sender.status_updated(p, new_reputation="AT_RISK") for p in known]
            deliveries += [sender.status_updated(f"+1888{i:07d}", new_status="FLAGGED")
                           for i in range(args.burst - len(known))]
            rng.shuffle(deliveries)
            requests = [_request(d.body, sender.headers(d), port) for d in deliveries]
            cpu_before = running.cpu_seconds(daemon.pid)
            started = time.perf_counter()
            statuses = asyncio.run(_send_all(requests, port))
            accepted_after = time.perf_counter() - started
            cpu_accepted = running.cpu_seconds(daemon.pid) - cpu_before
            while _pending(db):
                time.sleep(0.05)
            applied_after = time.perf_counter() - started
            cpu_applied = running.cpu_seconds(daemon.pid) - cpu_before
        finally:
            for process in (daemon, sim):
                if process is not None:
                    process.terminate()
                    process.wait(60)
    ok = statuses.count(200)
    print(f"backlog: {args.backlog:,} unmatched stored, {args.lines:,} lines: FLAGGED POST "
          f"→ alert received in {backlog_seconds:.3f} s")
    print(f"burst: {args.burst:,} signed events, {args.lines:,} lines, {CONNECTIONS} "
          f"connections: {ok} answered 200 in {accepted_after:.2f} s "
          f"({ok / accepted_after:,.0f} events/s); all applied after {applied_after:.2f} s; "
          f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    # CPU the daemon spent (all threads), independent of what else the machine runs.
    print(f"daemon CPU: {cpu_accepted:.2f} s until all were answered "
          f"({cpu_accepted / args.burst * 1000:.2f} ms an event), {cpu_applied:.2f} s until "
          f"all were applied ({cpu_applied / args.burst * 1000:.2f} ms an event)")
    return 0 if ok == args.burst else 1


def _store_unmatched(db: Path, count: int, sender: WebhookSender) -> None:
    now = datetime.now(UTC).isoformat()
    rows = []
    for i in range(count):
        number = f"+1999{i:07d}"
        body = sender.status_updated(number, new_status="FLAGGED").body.decode()
        rows.append((f"backlog-{i}", "bench", "phone_number.status_updated", now, body,
                     "unmatched", number))
    with sqlite3.connect(db, timeout=30) as connection:
        connection.executemany(
            "INSERT INTO webhook_events (event_id, account, event_type, received_at, "
            "payload, state, phone_number) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _pending(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM webhook_events WHERE state = 'pending'").fetchone()
    return int(count)


def _request(body: bytes, headers: dict[str, str], port: int) -> bytes:
    head = ["POST /webhooks/linq HTTP/1.1", f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _send_all(requests: list[bytes], port: int) -> list[int]:
    queue = list(reversed(requests))
    statuses: list[int] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                writer.write(queue.pop())
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                statuses.append(int(status_line.split()[1]))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return statuses


if __name__ == "__main__":
    sys.exit(main())
