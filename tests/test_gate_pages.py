"""``GET /api/v1/lines`` in pages (``limit``, ``cursor``), and the Host allow-list that keeps
a rebinding web page from reading ``/metrics`` and the gate through a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from monitor.config import parse_config
from monitor.core.directory import LineDirectory
from monitor.core.model import LineState
from monitor.errors import ConfigError
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer

LINES = 25


def gate_for(runtime: Runtime, host: str = "gate") -> httpx.AsyncClient:
    app = build_app(runtime, started_at=datetime.now(UTC))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


@pytest.fixture
def make_runtime(database_url: str, sim_server: SimulatorServer
                 ) -> Callable[..., Runtime]:
    def make(**server: Any) -> Runtime:
        config = parse_config({
            "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token"}],
            "database": {"url": database_url}, "server": server,
            "lines": [{"match": "+1303*", "labels": {"team": "ops"}}],
        }, environ={})
        engine, sessions = open_database(config)
        return Runtime(config, engine, sessions)
    return make


@pytest.fixture
async def runtime(make_runtime: Callable[..., Runtime], sim: Simulator
                  ) -> AsyncIterator[Runtime]:
    sim.add_lines(LINES - 5, status="HEALTHY", prefix="+1202")
    sim.add_lines(5, status="CRITICAL", prefix="+1303")
    async with make_runtime() as rt:
        assert (await rt.pollers["main"].poll()).ok
        yield rt


async def walk(gate: httpx.AsyncClient, query: str) -> list[list[str]]:
    """Every page of ``/api/v1/lines?<query>``, as the phone numbers on each."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        answer = (await gate.get(f"/api/v1/lines?{query}{suffix}")).json()
        assert answer["count"] == len(answer["lines"])
        pages.append([line["phone_number"] for line in answer["lines"]])
        cursor = answer["next_cursor"]
        if cursor is None:
            return pages


async def test_a_small_fleet_gets_every_line_in_one_answer(runtime: Runtime) -> None:
    async with gate_for(runtime) as gate:
        answer = (await gate.get("/api/v1/lines")).json()
    phones = [line["phone_number"] for line in answer["lines"]]
    assert answer["count"] == LINES and answer["next_cursor"] is None
    assert phones == sorted(phones)


async def test_pages_cover_every_line_once_in_order(runtime: Runtime) -> None:
    async with gate_for(runtime) as gate:
        everything = [line["phone_number"]
                      for line in (await gate.get("/api/v1/lines")).json()["lines"]]
        pages = await walk(gate, "limit=10")
        exact = await walk(gate, "limit=25")

    assert [len(page) for page in pages] == [10, 10, 5]
    assert [phone for page in pages for phone in page] == everything
    assert [len(page) for page in exact] == [25]  # no empty page after a full one


async def test_pages_apply_the_filters_before_paging(runtime: Runtime) -> None:
    async with gate_for(runtime) as gate:
        critical = await walk(gate, "status=CRITICAL&limit=2")
        labelled = await walk(gate, "label=team=ops&limit=4")

    assert [len(page) for page in critical] == [2, 2, 1]
    assert all(p.startswith("+1303") for page in critical for p in page)
    assert [p for page in labelled for p in page] == [p for page in critical for p in page]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten", "limit=-1",
                                   "cursor=not-a-cursor", "cursor=abc", "cursor=%FF"])
async def test_a_bad_limit_or_cursor_is_a_json_400(runtime: Runtime, query: str) -> None:
    async with gate_for(runtime) as gate:
        answer = await gate.get(f"/api/v1/lines?{query}")
    assert answer.status_code == 400
    assert "limit" in answer.json()["error"] or "cursor" in answer.json()["error"]


# -- the Host allow-list -------------------------------------------------------------------

async def test_metrics_the_gate_and_the_status_page_answer_only_the_allowed_host_names(
        make_runtime: Callable[..., Runtime]) -> None:
    async with make_runtime(allowed_hosts=["monitor.internal", "127.0.0.1:9464"]) as rt, \
            gate_for(rt, "monitor.internal:9464") as allowed, \
            gate_for(rt, "127.0.0.1:9464") as by_address, \
            gate_for(rt, "attacker.example") as rebound, \
            gate_for(rt, "127.0.0.1:8080") as other_port:
        for path in ("/metrics", "/api/v1/lines", "/", "/health", "/silences"):
            assert (await allowed.get(path)).status_code == 200, path
            assert (await by_address.get(path)).status_code == 200, path
            assert (await rebound.get(path)).status_code == 421, path
            assert (await other_port.get(path)).status_code == 421, path
        # Probes and Linq's deliveries do not come by name.
        assert (await rebound.get("/healthz")).status_code == 200
        assert (await rebound.get("/readyz")).status_code in (200, 503)
        assert (await rebound.post("/webhooks/linq", content=b"{}")).status_code != 421


async def test_without_an_allow_list_any_host_is_answered(runtime: Runtime) -> None:
    async with gate_for(runtime, "anything.example") as gate:
        assert (await gate.get("/metrics")).status_code == 200


@pytest.mark.parametrize("host", ["https://monitor.internal", "monitor.internal/metrics",
                                  "", "user@monitor.internal"])
def test_an_allowed_host_must_be_a_bare_host_name(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": [{"name": "main", "token": "t"}],
                      "server": {"allowed_hosts": [host]}}, environ={})
    assert "server.allowed_hosts" in str(caught.value)


def test_the_page_order_follows_lines_that_come_go_or_change_number() -> None:
    since = datetime(2026, 11, 30, tzinfo=UTC)

    def line(i: int, phone: str, *, present: bool = True) -> LineState:
        return LineState("main", f"id-{i}", phone, "HEALTHY", None, since, present=present)

    directory = LineDirectory()
    directory.update([line(1, "+10003"), line(2, "+10001")])
    assert [s.phone_number for s in directory.in_order()] == ["+10001", "+10003"]

    directory.update([line(3, "+10002"), line(2, "+10001", present=False),
                      line(1, "+10000")])

    assert [s.phone_number for s in directory.in_order()] == ["+10000", "+10002"]
    assert [s.phone_number for s in directory.in_order(("main", "+10000"))] == ["+10002"]
    assert list(directory.in_order(("main", "+10002"))) == []
