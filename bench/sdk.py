"""Should the monitor call Linq's non-hot endpoints through the official SDK's async client?

    python -m bench.sdk --calls 300 --runs 5

Measures, against the simulator over a real socket (in this process, on its own thread):
- import: wall time and RSS growth of ``import linq`` in a fresh interpreter that has
  already imported what the monitor imports anyway (httpx, pydantic, orjson), median of
  ``--runs`` interpreters;
- per call: one ``GET /v3/webhook-subscriptions`` and one audit read, made ``--calls``
  times (a) with ``linq.AsyncLinqAPIV3`` (typed pydantic models back) and (b) the way the
  monitor does it (``httpx.AsyncClient`` + ``orjson.loads``), median microseconds per call.
The figures print; copy them into bench/RESULTS.md by hand (they decide a design question,
they are not a regression table).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from monitor.simulator import Simulator
from monitor.simulator.server import SimulatorServer

PHONE = "+12025550101"
_IMPORT_PROBE = """
import time, httpx, pydantic, orjson
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
before = rss(); start = time.perf_counter()
import linq
print(time.perf_counter() - start, rss() - before)
"""


def import_cost(runs: int) -> tuple[float, float]:
    """Median (seconds, MiB of RSS) that ``import linq`` adds to a monitor-like process."""
    seconds, kib = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], check=True,
                             capture_output=True, text=True).stdout.split()
        seconds.append(float(out[0]))
        kib.append(float(out[1]))
    return statistics.median(seconds), statistics.median(kib) / 1024


async def per_call(url: str, calls: int) -> dict[str, float]:
    """Median microseconds per call, SDK and plain httpx, for two non-hot endpoints."""
    from linq import AsyncLinqAPIV3

    sdk = AsyncLinqAPIV3(api_key="sim-token", base_url=url, max_retries=0)
    plain = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer sim-token"})
    started = await plain.post(f"/v3/phone_numbers/{quote(PHONE)}/reputation_audit")
    audit_id = started.json()["audit_id"]
    audit_path = f"/v3/phone_numbers/{quote(PHONE)}/reputation_audit/{audit_id}"

    async def plain_subscriptions() -> Any:
        return orjson.loads((await plain.get("/v3/webhook-subscriptions")).content)

    async def plain_audit() -> Any:
        return orjson.loads((await plain.get(audit_path)).content)

    async def sdk_subscriptions() -> Any:
        return await sdk.webhook_subscriptions.list()

    async def sdk_audit() -> Any:
        return await sdk.phone_numbers.get_reputation_audit(audit_id, phone_number=PHONE)

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "subscriptions, httpx+orjson": plain_subscriptions,
        "subscriptions, SDK": sdk_subscriptions,
        "audit read, httpx+orjson": plain_audit,
        "audit read, SDK": sdk_audit,
    }
    results = {}
    for name, call in cases.items():
        await call()  # warm: connection, lazy model building
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            await call()
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times) * 1e6
    await plain.aclose()
    await sdk.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    seconds, mib = import_cost(args.runs)
    print(f"import linq (after httpx, pydantic, orjson): {seconds * 1000:.0f} ms, "
          f"+{mib:.1f} MiB RSS (median of {args.runs} interpreters)")
    sim = Simulator(token="sim-token")
    sim.add_line(PHONE)
    sim.audits.finish_running()
    sim.subscriptions.create({"target_url": "https://monitor.example/webhooks/linq",
                              "subscribed_events": ["phone_number.status_updated"]})
    with SimulatorServer(sim) as server:
        results = asyncio.run(per_call(server.url, args.calls))
    for name, micros in results.items():
        print(f"{name}: {micros:.0f} µs per call (median of {args.calls})")


if __name__ == "__main__":
    main()
