"""What the listing commands show: ``status`` worst first, filtered and fitting the terminal,
``history --limit``, ``report`` over the watched part of its window, and the documented
``--json`` of every listing command; run as a user runs them, against the simulator."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from monitor.cli.commands import default_author
from monitor.cli.lines import LineFilter, worst_first
from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import cli, free_port, write_config
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

SECRET_HOOK = "hook-SECRET-31337"
LABELS = """
[[lines]]
match = "+1202000000[12]"
labels = { team = "sales" }

[[lines]]
match = "+12020000003"
name = "support desk"
labels = { team = "support" }
"""


def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def polled_config(tmp_path: Path, sim_server: SimulatorServer, **options: Any) -> Path:
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}", **options)
    return config


def poll(config: Path) -> None:
    result = cli("poll", "--config", str(config))
    assert result.returncode == 0, output(result)


def phones(result: CompletedProcess[str]) -> list[str]:
    """The phone numbers of a ``status --json``, in the order given."""
    assert result.returncode == 0, output(result)
    return [line["phone_number"] for line in json.loads(result.stdout)["lines"]]


def table_phones(result: CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, output(result)
    return [word for line in result.stdout.splitlines() for word in line.split()[1:2]
            if word.startswith("+")]


# -- status ------------------------------------------------------------------------------------

def test_status_lists_the_worst_lines_first_the_longest_in_their_status_first(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_lines(5)  # +12020000001 .. 5, HEALTHY
    config = polled_config(tmp_path, sim_server)
    poll(config)
    sim.set_many({"+12020000004": "CRITICAL", "+12020000002": "AT_RISK"})
    poll(config)
    sim.set_status("+12020000003", "CRITICAL")  # CRITICAL for less time than ...04
    poll(config)

    worst_first_order = ["+12020000004", "+12020000003", "+12020000002", "+12020000001",
                         "+12020000005"]
    assert table_phones(cli("status", "--config", str(config))) == worst_first_order
    assert phones(cli("status", "--config", str(config), "--json")) == worst_first_order


def test_status_filters_by_status_account_and_label(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_lines(4)
    config = polled_config(tmp_path, sim_server, extra=LABELS)
    with config.open("a") as f:  # the same lines seen through a second account
        f.write(f'\n[[accounts]]\nname = "eu"\nbase_url = "{sim_server.url}"\n'
                f'token_file = "{tmp_path / "token"}"\naudit_on = []\n')
    sim.set_many({"+12020000001": "CRITICAL", "+12020000003": "AT_RISK"})
    poll(config)

    def shown(*options: str) -> set[tuple[str, str]]:
        result = cli("status", "--config", str(config), "--json", *options)
        assert result.returncode == 0, output(result)
        return {(line["account"], line["phone_number"])
                for line in json.loads(result.stdout)["lines"]}

    both = {"main", "eu"}
    assert shown("--status", "critical") == {(a, "+12020000001") for a in both}
    assert shown("--status", "Critical,at_risk", "--account", "eu") == {
        ("eu", "+12020000001"), ("eu", "+12020000003")}
    assert shown("--status", "CRITICAL", "--status", "AT_RISK", "--account", "main") == {
        ("main", "+12020000001"), ("main", "+12020000003")}
    assert shown("--label", "team=sales", "--account", "main") == {
        ("main", "+12020000001"), ("main", "+12020000002")}
    assert shown("--label", "team=sales", "--status", "healthy") == {
        (a, "+12020000002") for a in both}
    lines = json.loads(cli("status", "--config", str(config), "--json", "--label",
                           "team=support", "--account", "eu").stdout)["lines"]
    assert [(line["name"], line["labels"]) for line in lines] == [
        ("support desk", {"team": "support"})]

    nothing = cli("status", "--config", str(config), "--status", "critical", "--label",
                  "team=support")
    assert nothing.returncode == 0, output(nothing)
    assert "no line matches --status CRITICAL --label team=support" in nothing.stdout
    assert "account main: last poll success" in nothing.stdout  # the rest stays whole


@dataclass(frozen=True)
class Shown:
    account: str
    line_id: str
    phone_number: str
    status: str
    service_status: str | None
    since: datetime


def test_a_flagged_line_comes_first_and_flagged_selects_it() -> None:
    t0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    critical = Shown("main", "a", "+1", "CRITICAL", "ACTIVE", t0)
    flagged = Shown("main", "b", "+2", "HEALTHY", "FLAGGED", t0 + timedelta(hours=1))
    odd = Shown("main", "c", "+3", "SUSPENDED", None, t0)  # undocumented: above CRITICAL

    assert worst_first([critical, flagged, odd]) == [flagged, odd, critical]
    wanted = LineFilter.of(statuses=["flagged"], accounts=[], labels=[])
    assert [line for line in (critical, flagged) if wanted.passes(line, {})] == [flagged]


def run_on_a_terminal(*args: str, columns: int) -> str:
    """The CLI in a new process whose stdout is a terminal ``columns`` wide."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "monitor", *args], stdout=follower,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "COLUMNS": str(columns)})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(30) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_status_fits_the_terminal_hiding_the_doc_url_first_but_not_when_piped(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_lines(2, status="CRITICAL")
    config = polled_config(tmp_path, sim_server)
    poll(config)

    narrow = run_on_a_terminal("status", "--config", str(config), columns=90)
    piped = cli("status", "--config", str(config)).stdout

    table = narrow.split("\n\n")[0].splitlines()
    assert all(len(line) <= 90 for line in table), narrow
    assert "DOC URL" not in table[0] and "https://" not in narrow
    assert table[0].split()[:4] == ["ACCOUNT", "PHONE", "LINE", "ID"]  # shortened, kept
    assert "(to fit the terminal: DOC URL, TYPE hidden; LINE ID shortened;" in narrow
    assert "DOC URL" in piped and "https://" in piped and "…" not in piped
    assert max(len(line) for line in piped.splitlines()) > 90


# -- history -----------------------------------------------------------------------------------

def test_history_shows_the_newest_fifty_and_says_how_many_more_exist(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_lines(60)
    config = polled_config(tmp_path, sim_server)
    poll(config)
    sim.set_status("+12020000007", "CRITICAL")
    poll(config)

    default = cli("history", "--config", str(config), "--json")
    limited = cli("history", "--config", str(config), "--limit", "1")
    everything = cli("history", "--config", str(config), "--limit", "61", "--json")

    assert default.returncode == 0, output(default)
    assert len(json.loads(default.stdout)) == 50
    assert "(11 older changes not shown; --limit 61 shows all 61)" in default.stderr
    assert limited.returncode == 0, output(limited)
    [row] = limited.stdout.splitlines()[1:]
    assert "+12020000007" in row and "HEALTHY → CRITICAL" in row
    assert "(60 older changes not shown" in limited.stderr
    assert len(json.loads(everything.stdout)) == 61
    assert "not shown" not in everything.stderr
    refused = cli("history", "--config", str(config), "--limit", "0")
    assert refused.returncode == 2 and "must be at least 1" in refused.stderr


# -- report ------------------------------------------------------------------------------------

def test_the_report_counts_only_the_time_the_monitor_watched_and_says_so(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_line("+12020000001", status="CRITICAL")
    sim.add_line("+12020000002")
    config = polled_config(tmp_path, sim_server)
    poll(config)

    markdown = cli("report", "--config", str(config), "--since", "30d")
    as_json = cli("report", "--config", str(config), "--since", "30d", "--json")

    assert markdown.returncode == 0, output(markdown)
    assert "Account main was first polled" in markdown.stdout
    assert "not the 30d asked for" in markdown.stdout
    row = next(line for line in markdown.stdout.splitlines() if "+12020000001" in line)
    cells = dict(zip(("account", "phone", "now", "HEALTHY", "WATCH", "AT_RISK", "CRITICAL"),
                     (cell.strip() for cell in row.split("|")[1:]), strict=False))
    # CRITICAL for (nearly) all the watched time: not 0.0 % of thirty days.
    assert float(cells["CRITICAL"].split(" %")[0]) >= 90, row
    report = json.loads(as_json.stdout)
    first_poll = datetime.fromisoformat(report["watched_from"]["main"])
    start = datetime.fromisoformat(report["start"])
    assert first_poll - start > timedelta(days=29)
    line = next(r for r in report["lines"] if r["phone_number"] == "+12020000001")
    assert line["watched_from"] == report["watched_from"]["main"]
    assert line["watched_seconds"] < 60
    assert line["seconds"]["CRITICAL"] >= 0.9 * line["watched_seconds"]
    assert set(line) == {"account", "line_id", "phone_number", "current_status",
                         "watched_from", "watched_seconds", "seconds", "changes",
                         "degradations", "recoveries", "mean_time_to_recover_seconds"}


# -- --json of the other listings --------------------------------------------------------------

def test_silence_list_json_gives_each_silence_with_its_matcher_and_state(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    config = polled_config(tmp_path, sim_server, extra=LABELS)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    for matcher in (["--label", "team=sales"], ["--account", "main"]):
        added = cli("silence", "add", *matcher, "--for", "2h", "--reason", "maintenance",
                    "--by", "alice", "--config", str(config))
        assert added.returncode == 0, output(added)
    assert cli("silence", "expire", "2", "--config", str(config)).returncode == 0

    active = cli("silence", "list", "--json", "--config", str(config))
    every = cli("silence", "list", "--all", "--json", "--config", str(config))

    assert active.returncode == 0, output(active)
    [silence] = json.loads(active.stdout)
    assert silence["matcher"] == {"kind": "label", "value": "team=sales"}
    assert (silence["id"], silence["state"], silence["reason"], silence["created_by"]) == (
        1, "active", "maintenance", "alice")
    ends = datetime.fromisoformat(silence["ends_at"])
    assert ends - datetime.fromisoformat(silence["starts_at"]) == timedelta(hours=2)
    assert silence["expired_at"] is None and silence["until"] == silence["ends_at"]
    states = {s["id"]: s["state"] for s in json.loads(every.stdout)}
    assert states == {1: "active", 2: "expired"}
    [ended] = [s for s in json.loads(every.stdout) if s["id"] == 2]
    assert ended["expired_by"] == default_author()  # who ran `silence expire`
    assert silence["expired_by"] is None


def test_webhook_list_json_gives_the_subscriptions_and_no_secret(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    config = polled_config(tmp_path, sim_server)
    url = "https://monitor.example.com/webhooks/linq"
    assert cli("webhook", "register", "--url", url, "--config", str(config)).returncode == 0
    [(sub_id, secret)] = sim.subscriptions.secrets.items()

    result = cli("webhook", "list", "--json", "--config", str(config))

    assert result.returncode == 0, output(result)
    assert json.loads(result.stdout) == {"account": "main", "subscriptions": [{
        "id": sub_id, "target_url": url,
        "subscribed_events": ["phone_number.status_updated"], "is_active": True}]}
    assert secret not in output(result)


def test_test_alert_json_reports_each_channel(tmp_path: Path, receiver: Receiver) -> None:
    closed = f"json://127.0.0.1:{free_port()}/{SECRET_HOOK}"
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}", channels=[
                              ("ops", receiver.url("ops"), "AT_RISK"),
                              ("nowhere", closed, "CRITICAL")])

    result = cli("test-alert", "--json", "--config", str(config))

    assert result.returncode == 1, output(result)
    answer = json.loads(result.stdout)
    assert answer["ok"] is False
    by_name = {c["name"]: c for c in answer["channels"]}
    assert by_name["ops"] == {"name": "ops", "delivered": True, "error": None}
    assert by_name["nowhere"]["delivered"] is False and by_name["nowhere"]["error"]
    assert SECRET_HOOK not in output(result)
    receiver.wait_for(1, path="ops")


def test_check_config_json_says_what_is_set_up_without_secrets(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml", base_url="http://127.0.0.1:9",
        database_url="postgresql+psycopg://monitor:db-SECRET-1@127.0.0.1:9/monitor",
        channels=[("ops", f"json://127.0.0.1:9/{SECRET_HOOK}", "CRITICAL")], extra=LABELS)

    result = cli("check-config", "--json", "--config", str(config))

    assert result.returncode == 0, output(result)
    answer = json.loads(result.stdout)
    assert answer["ok"] is True
    [account] = answer["accounts"]
    assert account["name"] == "main" and account["poll_interval_seconds"] == 1.0
    assert account["token"] == {"from": "file", "file": str(tmp_path / "token")}
    assert answer["database"]["replicas"] == "many"
    assert "***" in answer["database"]["url"]
    assert answer["alerts"]["channels"][0] | {"labels": {}} == {
        "name": "ops", "scheme": "json", "min_status": "CRITICAL", "accounts": [],
        "labels": {}, "digest": None, "quiet_hours": None, "timezone": "UTC"}
    assert answer["lines"] == 2
    assert "SECRET" not in output(result)
