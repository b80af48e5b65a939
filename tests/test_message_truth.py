"""Messages and history say what is true: a line that left a CRITICAL channel's concern
without recovering is "no longer CRITICAL", a FLAGGED page does not link the guide's
HEALTHY section, and a removed line reads "→ removed".

The daemon's Runtime in-process against the simulator on a real socket; alerts through
Apprise's json:// to the local receiver; ``history`` run as on-call runs it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.config import load_config
from monitor.core.model import Entry, NoticeKind
from monitor.core.render import render_entries
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from tests.support.daemon import cli, write_config
from tests.support.receiver import Received, Receiver

pytestmark = pytest.mark.timeout(120)

PHONE = "+12025550101"
GUIDE = "https://docs.linqapp.com/channel/imessage/guides/phone-numbers/phone-reputation"
SECRET = new_secret()
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, sim_server: SimulatorServer, receiver: Receiver) -> Path:
    return write_config(
        tmp_path / "config.toml", base_url=sim_server.url,
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        channels=[("ops", receiver.url("ops"), "AT_RISK"),
                  ("pager", receiver.url("pager"), "CRITICAL")],
        extra_account='webhook_secret_env = "TEST_WEBHOOK_SECRET"')


@pytest.fixture
async def runtime(config: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    loaded = load_config(config)
    engine, sessions = open_database(loaded)
    async with Runtime(loaded, engine, sessions) as rt:
        yield rt


async def poll_and_deliver(rt: Runtime) -> None:
    assert (await rt.pollers["main"].poll()).ok
    await rt.deliverer.run_once()


def on(receiver: Receiver, path: str) -> list[Received]:
    return [m for m in receiver.messages if m.path == f"/{path}"]


async def test_critical_to_at_risk_is_no_longer_critical_to_a_critical_channel(
        runtime: Runtime, sim: Simulator, receiver: Receiver) -> None:
    sim.add_line(PHONE)
    await poll_and_deliver(runtime)
    sim.set_status(PHONE, "CRITICAL")
    await poll_and_deliver(runtime)
    sim.set_status(PHONE, "AT_RISK")
    await poll_and_deliver(runtime)

    left = on(receiver, "pager")[-1]
    assert left.title == f"[AT_RISK] {PHONE} no longer CRITICAL: CRITICAL → AT_RISK (main)"
    assert "No longer CRITICAL: the line is AT_RISK now." in left.message
    assert "ecovered" not in left.title + left.message
    assert on(receiver, "ops")[-1].title.startswith(f"[AT_RISK] {PHONE} improving:")

    sim.set_status(PHONE, "HEALTHY")
    await poll_and_deliver(runtime)
    back = on(receiver, "ops")[-1]
    assert back.title == f"[HEALTHY] {PHONE} recovered: AT_RISK → HEALTHY (main)"
    assert "Recovered: the line is HEALTHY again." in back.message
    assert len(on(receiver, "pager")) == 2  # the pager had already been told


def test_a_grouped_message_counts_lines_no_longer_critical_apart_from_recovered() -> None:
    base = Entry(kind=NoticeKind.RECOVERED, account="main", line_id="a", phone_number=PHONE,
                 from_status="CRITICAL", to_status="AT_RISK", at=NOW,
                 previous_since=NOW - timedelta(hours=1), doc_url=f"{GUIDE}#at-risk",
                 below="CRITICAL")
    healthy = Entry(kind=NoticeKind.RECOVERED, account="main", line_id="b",
                    phone_number="+12025550102", from_status="CRITICAL", to_status="HEALTHY",
                    at=NOW, previous_since=NOW - timedelta(hours=1),
                    doc_url=f"{GUIDE}#healthy", below="CRITICAL")
    for entries in ([base, healthy], [healthy, base]):
        message = render_entries(entries, now=NOW)
        assert message.title == "[AT_RISK] 1 line no longer CRITICAL: 1 AT_RISK; 1 recovered (main)"
    assert f"{PHONE} no longer CRITICAL: CRITICAL → AT_RISK" in message.body


async def test_a_flagged_page_links_the_guide_not_its_healthy_section(
        runtime: Runtime, sim: Simulator, receiver: Receiver) -> None:
    other = "+12025550102"
    sim.add_line(PHONE)  # HEALTHY: the API's doc_url ends in #healthy
    sim.add_line(other)
    await poll_and_deliver(runtime)
    sender = WebhookSender(SECRET)
    app = build_app(runtime, started_at=datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitor") as client:
        for delivery in (sender.status_updated(PHONE, previous_status="ACTIVE",
                                               new_status="FLAGGED"),
                         sender.status_updated(other, previous_reputation="HEALTHY",
                                               new_reputation="CRITICAL")):
            answer = await client.post("/webhooks/linq", content=delivery.body,
                                       headers=sender.headers(delivery))
            assert answer.status_code == 200
            await runtime.webhooks.drain()
            await runtime.deliverer.run_once()

    flagged, critical = on(receiver, "pager")
    assert "FLAGGED" in flagged.title
    assert f"Guide: {GUIDE}\n" in flagged.message + "\n"
    assert "#healthy" not in flagged.message
    # A reputation change by webhook: the old status's section is not the new one's.
    assert "#healthy" not in critical.message


async def test_history_shows_a_removed_line_as_removed(
        runtime: Runtime, config: Path, sim: Simulator) -> None:
    sim.add_line(PHONE, status="AT_RISK")
    await poll_and_deliver(runtime)
    sim.remove_line(PHONE)
    await poll_and_deliver(runtime)

    text = cli("history", PHONE, "--config", str(config))
    assert text.returncode == 0, text.stderr
    removed = text.stdout.splitlines()[1]
    assert "AT_RISK → removed" in removed and "AT_RISK → AT_RISK" not in removed

    shown = json.loads(cli("history", PHONE, "--json", "--config", str(config)).stdout)
    assert [(c["kind"], c["from_status"], c["to_status"]) for c in shown] == [
        ("removed", "AT_RISK", None), ("first_seen", None, "AT_RISK")]
