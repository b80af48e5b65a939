"""The WATCH early warning through the real daemon (``reputation-monitor run`` in a
subprocess), on SQLite and PostgreSQL, from both of its sources:

- the chat sweep: the simulator's chats of a line sour, the next sweep sees them, a
  channel with ``min_status = "WATCH"`` hears it (why, the worst chats, what to do) and an
  ``AT_RISK`` channel does not; the gate says ``slow_down``; the chats recover and the
  WATCH channel hears the line cleared;
- signed message and chat webhook events carrying ``chat.health_status``: they alone push a
  line over the thresholds, with no sweep at all.

Small thresholds and a one-second sweep interval keep each case to a few seconds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.chats import chat_id_for
from monitor.simulator.webhooks import WebhookSender, new_secret
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.receiver import Receiver

# Real daemons per case and database (~100 s together on 2 cores): .ci/run's slow suite.
pytestmark = [pytest.mark.both_databases, pytest.mark.timeout(120), pytest.mark.slow]

SOURING = "+12020000001"  # Simulator.add_lines' numbers
CALM = "+12020000002"

# A line goes on WATCH at 3 unhealthy chats and clears below 1; the share, the rise and
# the noise check (7 of 20 by default) stay out of the way (the chats here are few).
WATCH = """
[chats.watch]
enter_unhealthy = 3
exit_unhealthy = 1
min_active = 1000
rise_share = 0
baseline_share = 0
"""


def channels(receiver: Receiver) -> list[tuple[str, str, str]]:
    return [("early", receiver.url("early"), "WATCH"), ("ops", receiver.url("ops"), "AT_RISK")]


def gate(daemon: DaemonProcess, phone: str) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(f"{daemon.url}/api/v1/lines/{phone}",
                                          timeout=5).json()
    return answer


def start_sweeping(tmp_path: Path, database_url: str, sim_server: SimulatorServer,
                   receiver: Receiver) -> DaemonProcess:
    """A daemon sweeping the simulator's chats every second, with WATCH's thresholds."""
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url, database_url=database_url,
        channels=channels(receiver),
        extra='\n[chats]\nenabled = true\nrequests_per_minute = 600\ninterval = "1s"\n'
              + WATCH)
    return DaemonProcess(config, log=tmp_path / "daemon.log").start()


@pytest.fixture
def sweeping(tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
             receiver: Receiver) -> Iterator[DaemonProcess]:
    sim.add_lines(2)
    at = datetime.now(UTC)
    for phone in (SOURING, CALM):
        sim.chats.add_chats(phone, 20, at=at)
    sim.chats.set_counts(CALM, {"AT_RISK": 1}, at=at)  # a few bad chats are ordinary
    daemon = start_sweeping(tmp_path, database_url, sim_server, receiver)
    yield daemon
    daemon.stop()


def test_souring_chats_found_by_the_sweep_warn_the_watch_channel_and_clear(
        sweeping: DaemonProcess, sim: Simulator, receiver: Receiver) -> None:
    daemon = sweeping
    wait_until(lambda: daemon.value("linq_reputation_line_unhealthy_chats", account="main",
                                    phone_number=CALM) == 1, what="a sweep of the calm line")
    assert gate(daemon, SOURING)["status"] == "HEALTHY"

    sim.chats.set_counts(SOURING, {"AT_RISK": 2, "CRITICAL": 1, "OPTED_OUT": 1},
                         at=datetime.now(UTC))
    (warning,) = receiver.wait_for(1, path="early", timeout=30)
    assert warning.title.startswith(f"[WATCH] {SOURING} degraded: HEALTHY → WATCH"), \
        warning.title
    assert "Why: 3 chats AT_RISK or CRITICAL (WATCH from 3)." in warning.message, warning.message
    assert "Worst chats (4):" in warning.message, warning.message
    # CRITICAL first: the third of the line's chats (set_counts fills worst first).
    critical = chat_id_for(SOURING, 0)
    assert f"CRITICAL  chat {critical} since " in warning.message, warning.message
    assert "OPTED_OUT chat" in warning.message
    assert "Recommended action: Slow outbound on these chats; check reply rate." \
        in warning.message
    answer = gate(daemon, SOURING)
    assert (answer["status"], answer["advice"]) == ("WATCH", "slow_down")
    assert gate(daemon, CALM)["advice"] == "send"
    assert daemon.value("linq_reputation_line_unhealthy_chats", account="main",
                        phone_number=SOURING) == 3

    sim.chats.set_counts(SOURING, {}, at=datetime.now(UTC))
    cleared = receiver.wait_for(2, path="early", timeout=30)[1]
    assert f"{SOURING} recovered: WATCH → HEALTHY" in cleared.title, cleared.title
    assert "Its chats recovered: every WATCH signal is below its exit level." \
        in cleared.message
    assert gate(daemon, SOURING)["advice"] == "send"
    # Neither the warning nor its clearing reached the AT_RISK channel; nothing else went.
    daemon.settle()
    assert [m.path for m in receiver.messages] == ["/early", "/early"]


def test_a_line_whose_chats_were_swept_before_a_poll_found_it_warns_once_found(
        tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
        receiver: Receiver) -> None:
    """A number joins the account between polls and the sweep lists its chats, already
    sour, first: the summary the poller could not place is handed over again once a poll
    knows the line, though none of its chats changed since."""
    sim.add_lines(1)  # CALM's number comes later
    at = datetime.now(UTC)
    sim.chats.add_chats(SOURING, 20, at=at)
    sim.chats.add_chats(CALM, 20, at=at)
    sim.chats.set_counts(CALM, {"CRITICAL": 4}, at=at)
    daemon = start_sweeping(tmp_path, database_url, sim_server, receiver)
    try:
        wait_until(lambda: daemon.value("linq_reputation_line_chats", account="main",
                                        status="CRITICAL") == 4,
                   what="a sweep over the unknown number's chats")
        assert receiver.messages == []
        sim.add_lines(1)
        (warning,) = receiver.wait_for(1, path="early", timeout=30)
        assert warning.title.startswith(f"[WATCH] {CALM} degraded: HEALTHY → WATCH"), \
            warning.title
        assert gate(daemon, CALM)["advice"] == "slow_down"
    finally:
        daemon.stop()


def test_signed_chat_events_alone_put_a_line_on_watch(
        tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = new_secret()
    monkeypatch.setenv("WATCH_WEBHOOK_SECRET", secret)
    sim.add_lines(1)
    at = datetime.now(UTC)
    ids = sim.chats.add_chats(SOURING, 5, at=at)
    sim.chats.set_counts(SOURING, {"AT_RISK": 2, "CRITICAL": 1}, at=at)
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url, database_url=database_url,
        channels=channels(receiver), poll_interval="1h",
        extra_account='webhook_secret_env = "WATCH_WEBHOOK_SECRET"',
        extra=WATCH)  # [chats] is off: no sweep, the events are the only source
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_polls(1)
        url = daemon.url + "/webhooks/linq"
        sender = WebhookSender(secret)
        chats = [sim.chats.chat(chat_id) for chat_id in ids]
        bad = [c for c in chats if c["health_status"]["status"] != "HEALTHY"]
        # Two unhealthy chats in message events, one healthy: below the threshold.
        for chat in (bad[0], bad[1], chats[-1]):
            assert sender.send(url, sender.message_event(chat)).status_code == 200
        wait_until(lambda: daemon.value("linq_reputation_line_unhealthy_chats",
                                        account="main", phone_number=SOURING) == 2,
                   what="the events' chats applied")
        assert gate(daemon, SOURING)["status"] == "HEALTHY"
        # The third, in a chat event (the whole chat), crosses it.
        assert sender.send(url, sender.chat_event(bad[2])).status_code == 200
        (warning,) = receiver.wait_for(1, path="early", timeout=30)
        assert warning.title.startswith(f"[WATCH] {SOURING} degraded: HEALTHY → WATCH"), \
            warning.title
        assert "Worst chats (3):" in warning.message, warning.message
        assert "Recommended action: Slow outbound" in warning.message
        answer = gate(daemon, SOURING)
        assert (answer["status"], answer["advice"]) == ("WATCH", "slow_down")
        assert sim.chats.requests == 0  # no sweep: the webhook path alone
        wait_until(lambda: daemon.value("linq_reputation_notifications_pending") == 0,
                   what="the outbox to drain")
        assert [m.path for m in receiver.messages] == ["/early"]
    finally:
        daemon.stop()
