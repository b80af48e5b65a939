"""``webhook register|list|delete`` and ``audit PHONE`` / ``audit show PHONE``, run as a user
would, against the simulator on a real socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import cli, migrated_config

pytestmark = pytest.mark.timeout(180)
LINE = "+12025550101"


@pytest.fixture
def config(tmp_path: Path, sim_server: SimulatorServer) -> Path:
    return migrated_config(tmp_path, base_url=sim_server.url)


def test_webhook_register_prints_the_secret_once_and_list_and_delete_manage_it(
        config: Path, sim: Simulator) -> None:
    url = "https://monitor.example.com/webhooks/linq"
    registered = cli("webhook", "register", "--url", url, "--config", str(config))
    assert registered.returncode == 0, registered.stderr
    [(sub_id, secret)] = sim.subscriptions.secrets.items()
    assert secret in registered.stdout and sub_id in registered.stdout
    assert "LINQ_WEBHOOK_SECRET" in registered.stdout  # where to put it

    listed = cli("webhook", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert sub_id in listed.stdout and url in listed.stdout
    assert "phone_number.status_updated" in listed.stdout
    assert secret not in listed.stdout

    deleted = cli("webhook", "delete", sub_id, "--config", str(config))
    assert deleted.returncode == 0, deleted.stderr
    assert sim.subscriptions.list() == {"subscriptions": []}


def test_webhook_register_refuses_a_plain_http_url(config: Path, sim: Simulator) -> None:
    result = cli("webhook", "register", "--url", "http://monitor.example.com/x",
                 "--config", str(config))
    assert result.returncode == 2
    assert "--url" in result.stderr
    assert sim.subscriptions.list() == {"subscriptions": []}


def test_audit_runs_one_now_and_show_prints_the_stored_report(
        config: Path, sim: Simulator) -> None:
    sim.add_line(LINE, status="CRITICAL")
    ran = cli("audit", LINE, "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    assert "complete" in ran.stdout
    assert "primary driver: low_engagement (reply rate 1.8% over 7 days)" in ran.stdout
    assert "4. Check chat health weekly" in ran.stdout  # every action item, not just three

    shown = cli("audit", "show", LINE, "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == ran.stdout

    sim.audits.start_cooldown(LINE, 600)
    again = cli("audit", LINE, "--config", str(config))
    assert again.returncode == 1
    assert "skipped" in again.stdout and "429" in again.stdout


def test_audit_show_of_a_line_never_audited_says_so(config: Path) -> None:
    result = cli("audit", "show", "+19995550000", "--config", str(config))
    assert result.returncode == 1
    assert "no audit" in result.stdout
