"""What the benchmarks that drive a real daemon share: waiting for an endpoint, reading
every line through the paginated listing, and a process's CPU time from ``/proc``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, in seconds (independent of what else the
    machine runs)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait(url: str, ready: Callable[[httpx.Response], bool], *, timeout: float = 60,
         every: float = 0.5) -> httpx.Response:
    """Poll ``url`` until ``ready(response)``; exit the benchmark after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=30)
            if ready(response):
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready after {timeout}s")
        time.sleep(every)


def phones(base: str, *, expected: int, timeout: float = 600, query: str = "") -> list[str]:
    """Every line's phone number from ``GET /api/v1/lines`` (following ``next_cursor``),
    once the daemon lists ``expected`` of them (its first poll has recorded them)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _listed(base, query)
        if len(found) >= expected:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"{base} listed {len(found)} of {expected} lines "
                             f"after {timeout}s")
        time.sleep(0.5)


def _listed(base: str, query: str) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=base, timeout=60) as client:
        while True:
            params = "&".join(p for p in (query, f"cursor={cursor}" if cursor else "") if p)
            try:
                answer = client.get("/api/v1/lines" + (f"?{params}" if params else ""))
            except httpx.TransportError:
                return found
            if answer.status_code != 200:
                return found
            page = answer.json()
            found += [line["phone_number"] for line in page["lines"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return found
