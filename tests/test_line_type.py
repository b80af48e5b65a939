"""A line's type (``iMessage`` | ``RCS``, new in linq-python 0.65.0): decoded tolerantly,
remembered across polls that leave it out, stored, and shown by ``status``, the gate and
``linq_reputation_line_info``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.api.payload import parse_phone_numbers
from monitor.config import parse_config
from monitor.core.detect import detect_line
from monitor.core.model import Observation
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.state import load_lines
from tests.support.daemon import cli, parse_metrics, write_config

IMESSAGE, RCS = "+12025550301", "+12025550302"
NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def item(line_type: object, *, index: int = 1) -> dict[str, object]:
    return {"id": f"id-{index}", "phone_number": f"+1202555{index:04d}",
            "reputation": {"status": "HEALTHY", "doc_url": "https://d"}, "line_type": line_type}


def types_of(*items: dict[str, object]) -> list[str | None]:
    body = json.dumps({"phone_numbers": list(items)}).encode()
    parsed = parse_phone_numbers(body)
    assert parsed.skipped == []
    return [o.line_type for o in parsed.observations]


def test_it_reads_the_line_type_and_keeps_an_unknown_one_verbatim() -> None:
    assert types_of(item("iMessage"), item("RCS", index=2), item("SATELLITE", index=3)) \
        == ["iMessage", "RCS", "SATELLITE"]


def test_an_odd_line_type_reads_as_not_reported_and_costs_nothing_else() -> None:
    absent = {"id": "id-9", "phone_number": "+12025550009",
              "reputation": {"status": "AT_RISK"}}
    assert types_of(item(7), item("x" * 33, index=2), item(None, index=3), item("", index=4),
                    absent) == [None, None, None, None, None]


def test_a_poll_without_the_line_type_keeps_the_one_last_seen() -> None:
    first, _ = detect_line(None, Observation("id-1", IMESSAGE, "HEALTHY", None, "RCS"),
                           account="main", now=NOW)
    assert first is not None and first.line_type == "RCS"

    silent, change = detect_line(first, Observation("id-1", IMESSAGE, "HEALTHY", None),
                                 account="main", now=NOW)
    moved, quiet = detect_line(first, Observation("id-1", IMESSAGE, "HEALTHY", None,
                                                  "iMessage"), account="main", now=NOW)

    assert silent is first and change is None  # nothing new: nothing to write
    assert moved is not None and moved.line_type == "iMessage" and quiet is None


def test_status_shows_the_line_type_in_the_table_and_the_json(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_line(IMESSAGE)
    sim.add_line(RCS, status="AT_RISK", line_type="RCS")
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}")
    assert cli("poll", "--config", str(config)).returncode == 0

    table = cli("status", "--config", str(config)).stdout.splitlines()
    as_json = json.loads(cli("status", "--config", str(config), "--json").stdout)

    assert table[0].split()[:8] == ["ACCOUNT", "PHONE", "LINE", "ID", "STATUS", "SERVICE",
                                    "TYPE", "SINCE"]
    assert next(r for r in table if RCS in r).split()[5] == "RCS"
    assert next(r for r in table if IMESSAGE in r).split()[5] == "iMessage"
    assert {line["phone_number"]: line["line_type"] for line in as_json["lines"]} \
        == {IMESSAGE: "iMessage", RCS: "RCS"}


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer) -> AsyncIterator[Runtime]:
    config = parse_config({
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token"}],
        "database": {"url": database_url},
        "lines": [{"match": "+1202555030*", "labels": {"team": "sales"}}],
    }, environ={})
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as rt:
        yield rt


@pytest.mark.both_databases
async def test_the_gate_the_store_and_the_info_metric_carry_the_line_type(
        runtime: Runtime, sim: Simulator) -> None:
    sim.add_line(IMESSAGE)
    sim.add_line(RCS, line_type="RCS")
    assert (await runtime.pollers["main"].poll()).ok
    sim.remove_line(RCS)
    sim.add_line(RCS, line_type=None)  # a later answer that leaves it out
    assert (await runtime.pollers["main"].poll()).ok

    app = build_app(runtime, started_at=datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gate") as gate:
        line = (await gate.get(f"/api/v1/lines/{RCS}")).json()
        metrics = (await gate.get("/metrics")).text
    stored = load_lines(runtime.sessions, "main")

    assert line["line_type"] == "RCS"
    info = {s.labels["phone_number"]: s.labels["line_type"] for s in parse_metrics(metrics)
            if s.name == "linq_reputation_line_info"}
    assert info == {IMESSAGE: "iMessage", RCS: "RCS"}
    assert {s.phone_number: s.line_type for s in stored.values()} \
        == {IMESSAGE: "iMessage", RCS: "RCS"}

