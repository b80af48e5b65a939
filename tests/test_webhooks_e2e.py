"""End to end: ``reputation-monitor run`` as a subprocess receives signed webhooks from the
simulator over a real socket and the alert reaches the receiver through Apprise's json://."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from tests.support.daemon import DaemonProcess, cli, subscribe, write_config
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

LINE = "+12025550101"


def test_a_signed_status_webhook_reaches_on_call_without_waiting_for_a_poll(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret()
    monkeypatch.setenv("E2E_WEBHOOK_SECRET", secret)
    line_id = sim.add_line(LINE)
    subscribe(sim)  # or the channel also hears that push is not set up
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url, database_url=database_url,
        channels=[("pager", receiver.url("pager"), "CRITICAL")],
        poll_interval="1h",  # only the first poll happens: whatever follows is the webhook
        extra_account='webhook_secret_env = "E2E_WEBHOOK_SECRET"',
        audit_on='["CRITICAL"]',  # the diagnosis follows the page
    )
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_polls(1)
        url = daemon.url + "/webhooks/linq"
        sender = WebhookSender(secret)

        forged = sender.status_updated(LINE, new_status="FLAGGED")
        assert sender.send(url, forged, mode="forged").status_code == 401
        assert sender.send(url, forged, mode="unsigned").status_code == 401
        assert sender.send(url, forged, timestamp_offset=-600).status_code == 401

        event = sender.status_updated(LINE, previous_status="ACTIVE", new_status="FLAGGED",
                                      previous_reputation="HEALTHY",
                                      new_reputation="CRITICAL")
        sent = time.monotonic()
        assert sender.send(url, event).status_code == 200
        # One event, one notice: the line is flagged, and its new reputation is in it.
        (message,) = receiver.wait_for(1, path="pager", timeout=30)
        # The figure for the closing note (no timing assertion): signed webhook → delivered.
        print(f"\nwebhook to delivered alert: {message.at - sent:.3f}s")
        assert message.title.startswith("[FLAGGED]"), message.title
        assert "ACTIVE → FLAGGED" in message.title, message.title
        assert "Status: HEALTHY → CRITICAL" in message.message, message.message
        assert "pause outbound" in message.message, message.message

        again = sender.send(url, event)  # Linq retrying a delivery it thinks failed
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        assert daemon.value("linq_reputation_line_flagged", line_id=line_id) == 1
        assert daemon.value("linq_reputation_webhooks_total", outcome="rejected") == 3
        assert daemon.value("linq_reputation_polls_total", account="main",
                            outcome="success") == 1

        status = json.loads(cli("status", "--config", str(config), "--json").stdout)
        assert [(x["status"], x["service_status"]) for x in status["lines"]] == [
            ("CRITICAL", "FLAGGED")]
        history = json.loads(cli("history", "--config", str(config), LINE, "--json").stdout)
        assert {(h["to_status"], h["source"]) for h in history} >= {
            ("CRITICAL", "webhook"), ("FLAGGED", "webhook")}
        # The page did not wait for the reputation audit (CRITICAL is in audit_on): its
        # diagnosis follows; the forged, stale and repeated deliveries sent nothing.
        first, diagnosis = receiver.wait_for(2, path="pager", timeout=30)
        assert first is message
        assert diagnosis.title.startswith(f"[DIAGNOSIS] {LINE}"), diagnosis.title
        assert "Primary driver" in diagnosis.message
        assert len(receiver.messages) == 2
        assert secret not in daemon.log()
    finally:
        daemon.stop()
