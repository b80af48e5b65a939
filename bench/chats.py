"""What the chat sweep costs: requests, time, CPU per page and peak RSS.

    python -m bench.chats --lines 10000 --chats 20 --db sqlite
    python -m bench.chats --lines 100000 --chats 20 --db postgresql --pages 2000

The simulator runs in its own process with ``--lines x --chats`` chats (all HEALTHY), so
the CPU measured here (``time.process_time`` of this process) is the monitor's alone. The
sweep's code path is the daemon's (`ChatSweeper.tick` → `LinqClient.list_chats` → decode →
`ChatHealth.record` → store, summaries, hand-over to a poller that records what it gets),
ticked back to back with a clock that advances by the default budget's spacing, so no time
is spent waiting; the time of a full sweep at the default budget is then
``pages x 60 / requests_per_minute`` (the budget, not the work, bounds it) and is printed
beside the measured work per page. Three sweeps are measured:

- cold: every chat new (every row inserted, every line summarised);
- steady: nothing changed (one read per page, no chat written, nothing handed over);
- changed: 1 % of the stored chats altered behind the sweep's back (set AT_RISK in the
  database), which the sweep finds and writes back: the same writes as 1 % of the chats
  changing health at Linq. The lines' summaries come back to what was last handed over;
  but each sweep here is a new `ChatSweeper` (as after a restart), whose first tick
  summarises the lines with stored chats not HEALTHY (the altered ones: handed over),
  and they are handed over again once written back.

``--pages`` stops each sweep after that many pages (for very large fleets); the figures
per page are then extrapolated to the whole account, and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, select, update

from bench.__main__ import database, free_port, machine, peak_rss_mb
from monitor.api.client import LinqClient
from monitor.config import ChatsConfig
from monitor.core.chats import ChatHealthSummary
from monitor.core.model import LineState
from monitor.metrics import Metrics
from monitor.service.chat_health import ChatHealth
from monitor.service.chats import ChatSweeper, SweepSettings, Tick
from monitor.store import migrate
from monitor.store.chats import SweepProgress, save_progress
from monitor.store.engine import make_engine, make_sessionmaker
from monitor.store.schema import ChatRow
from monitor.webhooks.process import ALONE


class Poller:
    """The poller's side of the junction: counts the summaries it is handed."""

    def __init__(self) -> None:
        self.handed = 0

    def find(self, phone_or_id: str) -> LineState | None:
        # Every number is a known line (chat health hands a summary over again until the
        # poller knows its line).
        return LineState("bench", phone_or_id, phone_or_id, "HEALTHY", None,
                         datetime(2026, 1, 1, tzinfo=UTC))

    async def apply_chat_health(self, summaries: Any, now: datetime) -> None:
        items: list[ChatHealthSummary] = list(summaries)
        self.handed += len(items)


@dataclass
class Sweep:
    name: str
    pages: int
    wall: float
    cpu: float
    writes: int
    handed: int
    page_walls: list[float]

    def row(self, full_pages: int, budget_pages_per_s: float) -> str:
        per_page_ms = self.wall / self.pages * 1000
        cpu_ms = self.cpu / self.pages * 1000
        p95 = sorted(self.page_walls)[int(0.95 * (len(self.page_walls) - 1))] * 1000
        full_work = self.wall / self.pages * full_pages
        full_budget = full_pages / budget_pages_per_s
        return (f"| {self.name} | {self.pages:,} | {per_page_ms:.1f} | {p95:.1f} | {cpu_ms:.1f} "
                f"| {self.writes:,} | {self.handed:,} | {_hours(full_work)} "
                f"| {_hours(full_budget)} |")


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


async def simulator(lines: int, chats: int) -> tuple[Any, str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.simproc", "--lines", str(lines), "--port", str(port),
        "--chats", str(chats))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(3000):
            try:
                if (await client.get(url + "/_sim/health")).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    proc.terminate()
    raise SystemExit("simulator did not start")


async def run(args: argparse.Namespace) -> None:
    total_chats = args.lines * args.chats
    full_pages = -(-total_chats // 100)
    rpm = ChatsConfig().requests_per_minute
    proc, url = await simulator(args.lines, args.chats)
    try:
        async with database(args.db) as db_url:
            engine = make_engine(db_url)
            migrate.upgrade(engine)
            sessions = make_sessionmaker(engine)
            writes = [0]

            def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
                if statement.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
                    writes[0] += 1

            event.listen(engine, "before_cursor_execute", count)
            clock = [datetime.now(UTC)]
            poller = Poller()
            metrics = Metrics()
            health = ChatHealth(sessions, {"bench": poller}, metrics,
                                window=timedelta(days=7), clock=lambda: clock[0], leases=ALONE)
            sweeps: list[Sweep] = []
            async with LinqClient(base_url=url, token="bench-token") as client:
                for name in ("cold", "steady", "changed"):
                    if name == "changed":
                        with sessions.begin() as session:
                            ids = list(session.scalars(select(ChatRow.chat_id)))[::100]
                            session.execute(update(ChatRow).where(ChatRow.chat_id.in_(ids))
                                            .values(status="AT_RISK"))
                    # Each sweep from the top (a sweep cut short by --pages leaves a
                    # cursor); chat health's memory carries over, as in the daemon. No
                    # rest between sweeps; the budget is the default's spacing per tick.
                    save_progress(sessions, "bench", SweepProgress())
                    sweeper = ChatSweeper("bench", client, sessions, health, metrics,
                                          settings=SweepSettings(rpm, timedelta(0)))
                    writes[0] = 0
                    handed_before = poller.handed
                    page_walls: list[float] = []
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    pages = 0
                    while True:
                        started = time.perf_counter()
                        tick = await sweeper.tick(clock[0])
                        page_walls.append(time.perf_counter() - started)
                        clock[0] += sweeper.interval
                        if tick not in (Tick.PAGE, Tick.DONE):
                            raise SystemExit(f"unexpected tick: {tick}")
                        pages += 1
                        if tick == Tick.DONE or (args.pages and pages >= args.pages):
                            break
                    sweeps.append(Sweep(name, pages, time.perf_counter() - wall0,
                                        time.process_time() - cpu0, writes[0],
                                        poller.handed - handed_before, page_walls))
            engine.dispose()
    finally:
        proc.terminate()
        await proc.wait()
    budget = rpm / 60
    print(f"\n{args.lines:,} lines x {args.chats} chats = {total_chats:,} chats = "
          f"{full_pages:,} pages; db {args.db}; default budget {rpm} requests/min; "
          f"{machine()}")
    if args.pages and args.pages < full_pages:
        print(f"each sweep stopped after {args.pages:,} pages; full-sweep times are per-page "
              f"figures x {full_pages:,} pages")
    print("\n| sweep | pages | wall ms/page | p95 ms/page | CPU ms/page | writes | summaries "
          "handed | full sweep, work only | full sweep at the default budget |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sweep in sweeps:
        print(sweep.row(full_pages, budget))
    print(f"\npeak RSS of the monitor side (VmHWM): {peak_rss_mb():.0f} MB; median page "
          f"wall {statistics.median(sweeps[1].page_walls) * 1000:.1f} ms (steady)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chats")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=20, help="chats per line")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pages", type=int, default=0, help="stop each sweep after N pages")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
