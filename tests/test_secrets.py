"""Secrets never leave: a whole scenario with distinctive secrets, then every output grepped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from tests.support.daemon import DaemonProcess, cli, free_port, wait_until
from tests.support.receiver import Receiver

TOKEN = "tok-SECRET-e2e-1"
WEBHOOK_SECRET = new_secret()
GATE_TOKEN = "gate-SECRET-5"
SECRETS = (TOKEN, "pass-SECRET-2", "hook-SECRET-3", "fail-SECRET-4", WEBHOOK_SECRET,
           WEBHOOK_SECRET.removeprefix("whsec_"), GATE_TOKEN)


def test_no_output_of_a_whole_scenario_contains_a_secret(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINQ_WEBHOOK_SECRET", WEBHOOK_SECRET)  # the daemon and the CLI
    monkeypatch.setenv("GATE_TOKEN", GATE_TOKEN)
    sim.set_token(TOKEN)
    phone = "+12025550301"
    sim.add_line(phone)
    (tmp_path / "token").write_text(TOKEN)
    database = tmp_path / "monitor.db"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[[accounts]]
name = "main"
base_url = "{sim_server.url}"
token_file = "{tmp_path / 'token'}"
poll_interval = "1s"

[database]
url = "sqlite:///{database}"

[server]
listen = "127.0.0.1:{free_port()}"
api_token_env = "GATE_TOKEN"
protect_metrics = true

[alerts]
retry_initial = "200ms"

[[alerts.channels]]
name = "ops"
url = "json://user:pass-SECRET-2@127.0.0.1:{receiver.port}/hook-SECRET-3"

[[alerts.channels]]
name = "broken"
url = "json://127.0.0.1:{free_port()}/fail-SECRET-4"
""")
    config.chmod(0o600)
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    auth = {"Authorization": f"Bearer {GATE_TOKEN}"}

    def metrics() -> str:
        return httpx.get(daemon.url + "/metrics", headers=auth, timeout=10).text

    try:
        wait_until(lambda: "linq_reputation_up" in metrics(), what="a first poll")
        sim.set_status(phone, "CRITICAL")
        receiver.wait_for(1)
        wait_until(lambda: 'outcome="failed"' in metrics(),
                   what="a failed delivery on the broken channel")
        # Webhooks: a signed one (accepted), a forged and a stale one (refused), and the
        # gate API with and without its token.
        sender = WebhookSender(WEBHOOK_SECRET)
        event = sender.status_updated(phone, previous_status="ACTIVE", new_status="FLAGGED")
        hook = daemon.url + "/webhooks/linq"
        assert sender.send(hook, event).status_code == 200
        forged = sender.send(hook, event, mode="forged")
        stale = sender.send(hook, event, timestamp_offset=-900)
        receiver.wait_for(2)  # the FLAGGED alert
        unauthorised = httpx.get(daemon.url + "/api/v1/lines", timeout=10)
        gate = httpx.get(daemon.url + f"/api/v1/lines/{phone}", headers=auth, timeout=10)
        assert (forged.status_code, stale.status_code, unauthorised.status_code,
                gate.status_code) == (401, 401, 401, 200)
        sim.set_token("rotated")  # now the monitor's token is rejected: an error path too
        wait_until(lambda: "rejected the token" in daemon.log(), what="a rejected poll")
        outputs = {
            "daemon log": daemon.log(),
            "/metrics": metrics(),
            "/readyz": httpx.get(daemon.url + "/readyz").text,
            "webhook answers": forged.text + stale.text,
            "gate API": gate.text + unauthorised.text,
            "receiver": "\n".join(m.title + m.message for m in receiver.messages),
        }
    finally:
        daemon.stop()
    for command in (["status", "--json"], ["status"], ["history", "--json"], ["check-config"],
                    ["test-alert"], ["report"], ["poll"], ["alerts", "preview"],
                    ["history", phone], ["audit", "show", phone]):
        result = cli(*command, "--config", str(config))
        outputs[" ".join(command)] = result.stdout + result.stderr
    with sqlite3.connect(database) as db:
        outputs["database"] = "\n".join(db.iterdump())
    assert "CRITICAL" in outputs["database"]  # the dump really holds the scenario
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {where}"
