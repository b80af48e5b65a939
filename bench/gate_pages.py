"""What one ``GET /api/v1/lines`` page costs the event loop at a large fleet.

    python -m bench.gate_pages --lines 100000 --runs 5

Builds the gate's line directory in this process (``--lines`` lines, 1 % CRITICAL) and asks
the gate routes, through httpx's ASGI transport (no socket: the time is the handler's, all
of it on the event loop), for: the default page (1,000 lines), a page of 100, the
CRITICAL lines, and the whole fleet walked page by page. Prints medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy.orm import sessionmaker
from starlette.applications import Starlette

from monitor.core.directory import LineDirectory
from monitor.core.model import LineState
from monitor.http.gate import gate_mount

SINCE = datetime(2026, 11, 30, tzinfo=UTC)


def directory(count: int) -> LineDirectory:
    found = LineDirectory()
    found.update(LineState("main", f"id-{i}", f"+1202{i:07d}",
                           "CRITICAL" if i % 100 == 0 else "HEALTHY", None, SINCE)
                 for i in range(count))
    return found


async def median_seconds(client: httpx.AsyncClient, query: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        answer = await client.get(f"/api/v1/lines?{query}")
        answer.raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def walk(client: httpx.AsyncClient) -> tuple[float, int]:
    start, pages, cursor = time.perf_counter(), 0, None
    while True:
        answer = (await client.get("/api/v1/lines" + (f"?cursor={cursor}" if cursor else "")
                                   )).json()
        pages += 1
        cursor = answer["next_cursor"]
        if cursor is None:
            return time.perf_counter() - start, pages


async def main(lines: int, runs: int) -> None:
    app = Starlette(routes=[gate_mount(directory(lines), sessionmaker())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gate") as client:
        for query, what in (("", "default page (1,000 lines)"), ("limit=100", "page of 100"),
                            ("status=CRITICAL", f"status=CRITICAL ({lines // 100:,} lines, "
                                                "first page)")):
            seconds = await median_seconds(client, query, runs)
            print(f"{lines:,} lines, {what}: {seconds * 1000:.0f} ms (median of {runs})")
        seconds, pages = await walk(client)
        print(f"{lines:,} lines, the whole fleet page by page: {pages} pages in {seconds:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.lines, args.runs))
