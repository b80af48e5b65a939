"""Operator commands: report, db prune, and log formats, run as a user would."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import cli, write_config


def polled(tmp_path: Path, sim: Simulator, server: SimulatorServer, *, extra: str = "") -> Path:
    config = write_config(tmp_path / "config.toml", base_url=server.url,
                          database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    if extra:
        config.write_text(config.read_text() + extra)
    return config


def test_the_report_shows_time_in_status_and_degradations_per_line(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    ids = sim.add_lines(3)
    config = polled(tmp_path, sim, sim_server)
    assert cli("poll", "--config", str(config)).returncode == 0
    sim.set_status(ids[1], "CRITICAL")
    assert cli("poll", "--config", str(config)).returncode == 0

    markdown = cli("report", "--config", str(config), "--since", "1h")
    assert markdown.returncode == 0, markdown.stderr
    rows = [line for line in markdown.stdout.splitlines() if line.startswith("| main |")]
    assert len(rows) == 3
    assert "+12020000002" in rows[0] and "| CRITICAL |" in rows[0]  # worst line first

    table = list(csv.DictReader(io.StringIO(
        cli("report", "--config", str(config), "--since", "1h", "--format", "csv").stdout)))
    by_line = {row["line_id"]: row for row in table}
    assert by_line[ids[1]]["degradations"] == "1"
    assert by_line[ids[0]]["degradations"] == "0"
    assert float(by_line[ids[1]]["seconds_critical"]) >= 0
    assert by_line[ids[1]]["current_status"] == "CRITICAL"


def test_db_prune_reports_what_it_did_and_respects_retention_off(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_lines(2)
    config = polled(tmp_path, sim, sim_server)
    assert cli("poll", "--config", str(config)).returncode == 0
    result = cli("db", "prune", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "pruned 0 polls" in result.stdout and "400d" in result.stdout
    text = config.read_text().replace('[database]\n', '[database]\nretention = "off"\n')
    config.write_text(text)
    assert "nothing pruned" in cli("db", "prune", "--config", str(config)).stdout


def test_json_logs_carry_the_account_and_the_apis_trace_id(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.set_token("rotated")  # the monitor's token is now rejected
    config = polled(tmp_path, sim, sim_server)
    result = cli("poll", "--config", str(config), "--log-format", "json")
    assert result.returncode == 1
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    failure = next(e for e in entries if "rejected the token" in e["message"])
    assert failure["account"] == "main" and failure["level"] == "error"
    assert len(failure["trace_id"]) == 32


def test_text_logs_end_with_the_account_and_trace_id(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.queue_error(500, times=5)
    config = polled(tmp_path, sim, sim_server)
    result = cli("poll", "--config", str(config))
    failure = next(line for line in result.stderr.splitlines() if "poll failed" in line)
    assert " account=main trace_id=" in failure
