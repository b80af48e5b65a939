"""Render time of the status page's overview at N lines (target: first page ≤ 200 ms at 100k).

    python -m bench.pages --lines 100000 --runs 20

The pages are the daemon's own (``monitor.http.pages.page_routes``) over a line directory
filled with ``--lines`` lines (1 % CRITICAL, 3 % AT_RISK, the rest HEALTHY, 1,000 with a
``[[lines]]`` name and labels) and a migrated SQLite database holding 20 active silences;
each request goes through Starlette in-process (httpx's ASGI transport), so the figure is
the handler's: snapshot, filter and count 100k lines, pick the page, read the silences,
render the HTML. Prints the median and worst wall time of ``--runs`` requests per URL, and
the median CPU time of this process per request (less at the mercy of other jobs on a
shared machine than the wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from monitor.config import Config, parse_config
from monitor.core.directory import LineDirectory
from monitor.core.labels import Labeler
from monitor.core.model import LineState
from monitor.core.silence import MatcherKind
from monitor.http.pages import page_routes
from monitor.metrics import Metrics
from monitor.service.runtime import build_metrics, open_database
from monitor.store.silences import add_silence

URLS = ["/", "/?status=CRITICAL", "/?q=55501", "/?label=team%3Dsales", "/?page=200"]


@dataclass
class Sources:
    config: Config
    sessions: sessionmaker[Session]
    directory: LineDirectory
    metrics: Metrics


def build(lines: int, work: Path) -> Sources:
    named = min(lines, 1000)
    config = parse_config({
        "accounts": [{"name": "main", "token": "t"}, {"name": "eu", "token": "t"}],
        "database": {"url": f"sqlite:///{work / 'bench.db'}"},
        "lines": [{"match": f"+1555{i:07d}", "name": f"Desk {i}",
                   "labels": {"team": "sales" if i % 2 else "support"}} for i in range(named)],
    })
    _, sessions = open_database(config)
    labeler = Labeler.from_config(config.lines)
    directory = LineDirectory(labels_for=lambda s: dict(labeler.meta(s).labels))
    now = datetime.now(UTC)
    states = []
    for i in range(lines):
        status = "CRITICAL" if i % 100 == 7 else "AT_RISK" if i % 100 in (3, 30, 60) \
            else "HEALTHY"
        states.append(LineState(account="main" if i % 4 else "eu", line_id=f"line-{i:07d}",
                                phone_number=f"+1555{i:07d}", status=status, doc_url=None,
                                since=now - timedelta(seconds=i)))
    directory.update(states)
    for i in range(20):
        add_silence(sessions, kind=MatcherKind.LINE, value=f"+1555{i * 100 + 7:07d}",
                    reason="bench", created_by="bench", starts_at=now,
                    ends_at=now + timedelta(hours=1), now=now)
    return Sources(config, sessions, directory, build_metrics(config, labeler))


async def measure(sources: Sources, runs: int) -> dict[str, list[tuple[float, float]]]:
    app = Starlette(routes=page_routes(sources, token=None))
    timings: dict[str, list[tuple[float, float]]] = {url: [] for url in URLS}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench") as client:
        for url in URLS:
            assert (await client.get(url)).status_code == 200  # warm: templates compiled
            for _ in range(runs):
                started, cpu = time.perf_counter(), time.process_time()
                answer = await client.get(url)
                timings[url].append((time.perf_counter() - started,
                                     time.process_time() - cpu))
                assert answer.status_code == 200, answer.text[:300]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = build(args.lines, Path(tmp))
        timings = asyncio.run(measure(sources, args.runs))
    print(f"status page at {args.lines:,} lines, {args.runs} requests per URL "
          "(in-process ASGI, ms):")
    print("| URL | median ms | max ms | median CPU ms |\n|---|---|---|---|")
    for url, values in timings.items():
        wall = [w for w, _ in values]
        cpu = [c for _, c in values]
        print(f"| `{url}` | {statistics.median(wall) * 1000:.0f} | {max(wall) * 1000:.0f} | "
              f"{statistics.median(cpu) * 1000:.0f} |")


if __name__ == "__main__":
    main()
