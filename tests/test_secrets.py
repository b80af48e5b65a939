"""Secrets never leave: a whole scenario with distinctive secrets, then every output grepped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import DaemonProcess, cli, free_port, wait_until
from tests.support.receiver import Receiver

TOKEN = "tok-SECRET-e2e-1"
SECRETS = (TOKEN, "pass-SECRET-2", "hook-SECRET-3", "fail-SECRET-4")


def test_no_output_of_a_whole_scenario_contains_a_secret(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver) -> None:
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
    try:
        wait_until(lambda: "linq_reputation_up" in daemon.metrics(), what="a first poll")
        sim.set_status(phone, "CRITICAL")
        receiver.wait_for(1)
        wait_until(lambda: 'outcome="failed"' in daemon.metrics(),
                   what="a failed delivery on the broken channel")
        sim.set_token("rotated")  # now the monitor's token is rejected: an error path too
        wait_until(lambda: "rejected the token" in daemon.log(), what="a rejected poll")
        outputs = {
            "daemon log": daemon.log(),
            "/metrics": daemon.metrics(),
            "/readyz": httpx.get(daemon.url + "/readyz").text,
        }
    finally:
        daemon.stop()
    for command in (["status", "--json"], ["status"], ["history", "--json"], ["check-config"],
                    ["test-alert"], ["report"], ["poll"], ["alerts", "preview"]):
        result = cli(*command, "--config", str(config))
        outputs[" ".join(command)] = result.stdout + result.stderr
    with sqlite3.connect(database) as db:
        outputs["database"] = "\n".join(db.iterdump())
    assert "CRITICAL" in outputs["database"]  # the dump really holds the scenario
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {where}"
