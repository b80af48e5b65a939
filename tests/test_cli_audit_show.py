"""``audit`` runs an audit only of a line the monitor knows: a missing phone number or a
number the account does not have is refused (exit 2), and Linq is never asked to audit it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import cli, migrated_config

pytestmark = pytest.mark.timeout(120)
LINE = "+12025550101"


@pytest.fixture
def config(tmp_path: Path, sim_server: SimulatorServer) -> Path:
    return migrated_config(tmp_path, base_url=sim_server.url)


def test_it_says_the_phone_is_missing_from_audit_show_and_audits_nothing(
        config: Path, sim: Simulator) -> None:
    sim.add_line(LINE, status="CRITICAL")
    result = cli("audit", "show", "--config", str(config))
    assert result.returncode == 2
    assert "audit show: the phone number is missing" in result.stderr
    assert sim.audits.started == 0
    assert "no audit" in cli("audit", "show", "show", "--config", str(config)).stdout


def test_it_refuses_a_number_the_account_does_not_have_and_says_where_it_looked(
        config: Path, sim: Simulator, sim_server: SimulatorServer, tmp_path: Path) -> None:
    sim.add_line(LINE, status="CRITICAL")
    result = cli("audit", "+19995550000", "--config", str(config))
    assert result.returncode == 2
    assert "+19995550000 is not a line of account 'main'" in result.stderr
    assert sim_server.url in result.stderr  # the listing it asked
    assert str(tmp_path / "monitor.db") in result.stderr  # the record it read
    assert "Nothing was audited" in result.stderr
    assert sim.audits.started == 0
    assert "no audit" in cli("audit", "show", "+19995550000", "--config", str(config)).stdout


def test_it_refuses_too_many_words(config: Path, sim: Simulator) -> None:
    result = cli("audit", LINE, "+12025550102", "--config", str(config))
    assert result.returncode == 2
    assert "usage: audit PHONE | audit show PHONE" in result.stderr
    assert "config error" not in result.stderr
    assert sim.audits.started == 0


def test_it_refuses_a_line_removed_from_the_account_since_the_monitor_saw_it(
        config: Path, sim: Simulator) -> None:
    sim.add_line(LINE, status="CRITICAL")
    assert cli("poll", "--config", str(config)).returncode == 0
    sim.remove_line(LINE)
    assert cli("poll", "--config", str(config)).returncode == 0

    result = cli("audit", LINE, "--config", str(config))
    assert result.returncode == 2
    assert "the monitor recorded it removed from main" in result.stderr
    assert sim.audits.started == 0


def test_it_audits_a_line_the_monitor_has_seen_without_asking_for_the_listing(
        config: Path, sim: Simulator) -> None:
    sim.add_line(LINE, status="CRITICAL")
    assert cli("poll", "--config", str(config)).returncode == 0
    listings = sim.request_count

    ran = cli("audit", LINE, "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    assert "complete" in ran.stdout
    assert sim.request_count == listings  # known from the lines table: no list call
    assert sim.audits.started == 1
