"""The command line as a user runs it, against the simulator on a real socket and a local
receiver for Apprise's real ``json://`` notifier: ``main(argv)`` in-process, and a few
commands in a subprocess where the process itself is the point (imports, the demo)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from monitor.simulator import Simulator, SimulatorServer
from monitor.store.migrate import head_revision
from tests.support.daemon import TOKEN, cli, cli_subprocess, free_port, write_config
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

CONFIG_ENV = "REPUTATION_MONITOR_CONFIG"
TOKEN_ENV = "RM_TEST_LINQ_TOKEN"
SECRET_TOKEN = "tok-SECRET-123"
SECRET_HOOK = "hooks-SECRET-456"
SECRET_DB_PASSWORD = "db-SECRET-789"
SECRETS = (SECRET_TOKEN, SECRET_HOOK, SECRET_DB_PASSWORD)
GUIDE = "https://docs.linqapp.com/channel/imessage/guides/phone-numbers/phone-reputation"
LINE_A = "+12025550201"
LINE_B = "+12025550202"
SUBCOMMANDS = ("run", "poll", "status", "history", "check-config", "test-alert", "db", "demo",
               "simulate", "report", "alerts")

VALID = f"""
[[accounts]]
name = "acme-prod"
base_url = "http://127.0.0.1:9"
token_env = "{TOKEN_ENV}"
poll_interval = "30s"

[database]
url = "postgresql+psycopg://monitor:{SECRET_DB_PASSWORD}@127.0.0.1:9/monitor"

[[alerts.channels]]
name = "ops-room"
url = "json://127.0.0.1:9/{SECRET_HOOK}"
min_status = "AT_RISK"
"""


def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


def add_account(config: Path, name: str, base_url: str) -> None:
    with config.open("a") as f:
        f.write(f'\n[[accounts]]\nname = "{name}"\nbase_url = "{base_url}"\n'
                f'token_file = "{config.parent / "token"}"\n')


def status_json(config: Path) -> dict[str, Any]:
    result = cli("status", "--config", str(config), "--json")
    assert result.returncode == 0, output(result)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- check-config ------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "key", "reason"), [
    ('poll_interval = "30s"', 'pol_interval = "30s"', "accounts[0].pol_interval", "unknown"),
    ('poll_interval = "30s"', 'poll_interval = "5 minutes"', "accounts[0].poll_interval",
     "duration"),
    (f'token_env = "{TOKEN_ENV}"', 'token_file = "no-such-token-file"',
     "accounts[0].token_file", "cannot read"),
    (f"json://127.0.0.1:9/{SECRET_HOOK}", f"slack://{SECRET_HOOK}", "alerts.channels[0].url",
     "apprise"),
    (f'token_env = "{TOKEN_ENV}"', 'token_env = "RM_TEST_UNSET_VARIABLE"',
     "accounts[0].token_env", "RM_TEST_UNSET_VARIABLE"),
    (f'token_env = "{TOKEN_ENV}"', f'token = ["{SECRET_TOKEN}"]', "accounts[0].token", ""),
], ids=["unknown-key", "bad-duration", "unreadable-token-file", "malformed-apprise-url",
        "missing-env-var", "secret-of-the-wrong-type"])
def test_it_refuses_a_bad_config_naming_the_key_and_the_reason_without_secrets(
    tmp_path: Path, old: str, new: str, key: str, reason: str,
) -> None:
    assert old in VALID
    config = tmp_path / "config.toml"
    config.write_text(VALID.replace(old, new))

    result = cli("check-config", "--config", str(config), env={TOKEN_ENV: SECRET_TOKEN})

    assert result.returncode == 2, output(result)
    assert key in result.stderr, output(result)
    assert reason.lower() in result.stderr.lower(), output(result)
    for secret in SECRETS:
        assert secret not in output(result)


def test_it_explains_a_valid_config_naming_account_and_channel_without_secrets(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(VALID)

    result = cli("check-config", "--config", str(config), env={TOKEN_ENV: SECRET_TOKEN})

    assert result.returncode == 0, output(result)
    assert "acme-prod" in result.stdout
    assert "ops-room" in result.stdout
    for secret in SECRETS:
        assert secret not in output(result)


def test_it_explains_each_channels_policy_and_warns_of_a_label_no_line_gets(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(VALID.replace('min_status = "AT_RISK"\n', """min_status = "AT_RISK"
labels = { team = "sales" }
repeat_interval = "4h"
escalate_after = "30m"
quiet_hours = "22:00-07:00"
timezone = "Europe/Paris"
digest = "09:00"
""") + """
[alerts]
confirm_polls = 2
flap_changes = 4

[[lines]]
match = "+1415*"
labels = { team = "support" }
""")

    result = cli("check-config", "--config", str(config), env={TOKEN_ENV: SECRET_TOKEN})

    assert result.returncode == 0, output(result)
    for said in ("worse status alerted after 2 polls in a row, better at once",
                 "more than 4 changes within 1h is flapping",
                 "only lines with labels team=sales",
                 "hears of a line once it has been AT_RISK or worse for 30m",
                 "reminded every 4h while a line stays degraded",
                 "quiet hours 22:00-07:00 Europe/Paris: below CRITICAL deferred to one "
                 "summary, CRITICAL sent",
                 "daily digest at 09:00 Europe/Paris",
                 "warning: alerts.channels[0].labels: no [[lines]] entry gives team=sales, so "
                 "channel ops-room hears of no line"):
        assert said in result.stdout, output(result)


def test_it_reads_the_config_named_by_the_env_var_else_config_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    (tmp_path / "config.toml").write_text(VALID.replace("acme-prod", "from-cwd"))
    elsewhere = tmp_path / "elsewhere" / "monitor.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(VALID.replace("acme-prod", "from-env"))

    from_cwd = cli("check-config", cwd=tmp_path, env={TOKEN_ENV: SECRET_TOKEN})
    from_env = cli("check-config", cwd=tmp_path,
                   env={TOKEN_ENV: SECRET_TOKEN, CONFIG_ENV: str(elsewhere)})

    assert from_cwd.returncode == 0, output(from_cwd)
    assert "from-cwd" in from_cwd.stdout
    assert from_env.returncode == 0, output(from_env)
    assert "from-env" in from_env.stdout and "from-cwd" not in from_env.stdout


# -- poll --------------------------------------------------------------------------------------

def test_it_polls_every_account_once_with_one_summary_line_each(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
) -> None:
    sim.add_line(LINE_A)
    sim.add_line(LINE_B, status="AT_RISK")
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=sqlite(tmp_path))
    add_account(config, "second", sim_server.url)

    result = cli("poll", "--config", str(config))

    assert result.returncode == 0, output(result)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("main") and "2 lines" in lines[0]
    assert lines[1].startswith("second") and "2 lines" in lines[1]
    accounts = {line["account"] for line in status_json(config)["lines"]}
    assert accounts == {"main", "second"}


def test_it_exits_1_when_a_poll_is_refused(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
) -> None:
    sim.add_line(LINE_A)
    sim.set_token("rotated-elsewhere")
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=sqlite(tmp_path))

    result = cli("poll", "--config", str(config))

    assert result.returncode == 1, output(result)
    assert result.stdout.startswith("main")
    assert "token" in result.stdout.lower()
    assert TOKEN not in output(result)


def test_it_delivers_what_a_poll_queued_before_exiting_and_never_twice(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    sim.add_line(LINE_A, status="AT_RISK")
    sim.add_line(LINE_B)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=sqlite(tmp_path),
                          channels=[("ops", receiver.url("ops"), "AT_RISK")])

    first = cli("poll", "--config", str(config))
    assert first.returncode == 0, output(first)
    assert len(receiver.messages) == 1  # already there: poll waits for its delivery
    assert LINE_A in receiver.messages[0].title

    again = cli("poll", "--config", str(config))
    assert again.returncode == 0, output(again)
    assert len(receiver.messages) == 1
    assert status_json(config)["notifications"] == {"delivered": 1}


# -- status and history ------------------------------------------------------------------------

def test_it_shows_every_line_with_status_and_doc_url_as_a_table_and_as_json(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
) -> None:
    doc_url = f"{GUIDE}?from=cli#critical-5e2d"
    line_a = sim.add_line(LINE_A, status="CRITICAL", doc_url=doc_url)
    sim.add_line(LINE_B)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=sqlite(tmp_path))
    assert cli("poll", "--config", str(config)).returncode == 0

    table = cli("status", "--config", str(config))
    assert table.returncode == 0, output(table)
    row = next(line for line in table.stdout.splitlines() if LINE_A in line)
    assert "CRITICAL" in row and doc_url in row.split()
    assert any(LINE_B in line and "HEALTHY" in line for line in table.stdout.splitlines())

    lines = {line["phone_number"]: line for line in status_json(config)["lines"]}
    assert set(lines) == {LINE_A, LINE_B}
    assert lines[LINE_A]["status"] == "CRITICAL"
    assert lines[LINE_A]["doc_url"] == doc_url
    assert lines[LINE_A]["line_id"] == line_a
    assert lines[LINE_A]["account"] == "main"
    assert lines[LINE_B]["status"] == "HEALTHY"


def test_it_lists_a_lines_changes_newest_first_and_nothing_for_an_unknown_line(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
) -> None:
    sim.add_line(LINE_A, status="AT_RISK")
    sim.add_line(LINE_B)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=sqlite(tmp_path))
    assert cli("poll", "--config", str(config)).returncode == 0
    sim.set_many({LINE_A: "CRITICAL", LINE_B: "AT_RISK"})
    assert cli("poll", "--config", str(config)).returncode == 0
    sim.set_status(LINE_A, "HEALTHY")
    assert cli("poll", "--config", str(config)).returncode == 0

    result = cli("history", "--config", str(config), LINE_A, "--since", "7d", "--json")
    assert result.returncode == 0, output(result)
    rows = json.loads(result.stdout)
    assert [(r["from_status"], r["to_status"]) for r in rows] == [
        ("CRITICAL", "HEALTHY"), ("AT_RISK", "CRITICAL"), (None, "AT_RISK")]
    assert {r["phone_number"] for r in rows} == {LINE_A}
    times = [datetime.fromisoformat(r["at"]) for r in rows]
    assert times == sorted(times, reverse=True)

    unknown_json = cli("history", "--config", str(config), "+19995550000", "--json")
    assert unknown_json.returncode == 0, output(unknown_json)
    assert json.loads(unknown_json.stdout) == []
    unknown_table = cli("history", "--config", str(config), "+19995550000")
    assert unknown_table.returncode == 0, output(unknown_table)
    assert LINE_A not in unknown_table.stdout and LINE_B not in unknown_table.stdout


# -- test-alert --------------------------------------------------------------------------------

def test_it_sends_a_test_alert_to_every_channel_and_reports_each(
    tmp_path: Path, receiver: Receiver,
) -> None:
    closed = f"json://127.0.0.1:{free_port()}/{SECRET_HOOK}"
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=sqlite(tmp_path), channels=[
                              ("ops", receiver.url("ops"), "AT_RISK"),
                              ("nowhere", closed, "CRITICAL"),
                          ])

    result = cli("test-alert", "--config", str(config))

    assert result.returncode == 1, output(result)
    report = {line.split(":")[0]: line for line in result.stdout.splitlines() if ":" in line}
    assert "FAILED" not in report["ops"]
    assert "FAILED" in report["nowhere"]
    assert SECRET_HOOK not in output(result)
    [message] = receiver.wait_for(1, path="ops")
    assert "test" in message.title.lower()


def test_it_exits_0_when_every_channel_got_the_test_alert(
    tmp_path: Path, receiver: Receiver,
) -> None:
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=sqlite(tmp_path), channels=[
                              ("ops", receiver.url("ops"), "AT_RISK"),
                              ("pager", receiver.url("pager"), "CRITICAL"),
                          ])

    result = cli("test-alert", "--config", str(config))

    assert result.returncode == 0, output(result)
    assert len(receiver.wait_for(1, path="ops")) == 1
    assert len(receiver.wait_for(1, path="pager")) == 1


# -- db upgrade --------------------------------------------------------------------------------

@pytest.mark.both_databases
def test_it_upgrades_an_empty_database_to_head_and_is_idempotent(
    tmp_path: Path, database_url: str,
) -> None:
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=database_url)
    head = head_revision()
    assert head

    first = cli("db", "upgrade", "--config", str(config))
    second = cli("db", "upgrade", "--config", str(config))

    assert first.returncode == 0, output(first)
    assert head in first.stdout
    assert second.returncode == 0, output(second)
    assert head in second.stdout
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (head,)]
    finally:
        engine.dispose()


def test_it_upgrades_the_database_of_the_config_given_between_db_and_its_action(
    tmp_path: Path,
) -> None:
    # `db --config FILE upgrade`: the `db` command offers --config, so it must be honoured.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    database = tmp_path / "monitor.db"
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=f"sqlite:///{database}")

    result = cli("db", "--config", str(config), "upgrade", cwd=workdir)

    assert result.returncode == 0, output(result)
    assert str(head_revision()) in result.stdout
    assert database.exists()


# -- the command set ---------------------------------------------------------------------------

def test_it_lists_every_subcommand_in_help() -> None:
    result = cli("--help")
    assert result.returncode == 0, output(result)
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\b", result.stdout, re.MULTILINE), name


HEAVY = ("apprise", "sqlalchemy", "starlette", "uvicorn")
WEB = ("starlette", "uvicorn")


def imported_by(*argv: str, cwd: Path | None = None) -> set[str]:
    """Top-level packages a fresh interpreter has imported after running the CLI."""
    program = ("import sys\nfrom monitor.cli.main import main\n"
               "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
               "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), "
               "file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True,
                            text=True, timeout=60, cwd=cwd)
    return set(result.stderr.strip().splitlines()[-1].split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["status", "--help"]])
def test_help_and_version_start_without_the_heavy_libraries(argv: list[str]) -> None:
    loaded = imported_by(*argv)
    assert "monitor" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_status_and_history_import_no_web_server(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=sqlite(tmp_path))
    for argv in (["status", "--config", str(config)], ["history", "--config", str(config)]):
        loaded = imported_by(*argv)
        assert "sqlalchemy" in loaded  # the command did run
        assert not loaded & set(WEB), (argv, sorted(loaded & set(WEB)))


def test_the_installed_command_answers_version_and_a_bad_config_with_exit_codes(
    tmp_path: Path,
) -> None:
    version = cli_subprocess("--version")
    assert version.returncode == 0 and version.stdout.startswith("reputation-monitor ")
    bad = tmp_path / "config.toml"
    bad.write_text(VALID.replace("poll_interval", "pol_interval"))
    result = cli_subprocess("check-config", "--config", str(bad))
    assert result.returncode == 2, output(result)
    assert "accounts[0].pol_interval" in result.stderr


def test_it_accepts_config_after_every_subcommand_name(tmp_path: Path) -> None:
    missing = tmp_path / "not-there.toml"
    uses_config = [
        ["run", "--config", str(missing)],
        ["poll", "--config", str(missing)],
        ["status", "--config", str(missing)],
        ["history", "--config", str(missing)],
        ["check-config", "--config", str(missing)],
        ["test-alert", "--config", str(missing)],
        ["db", "upgrade", "--config", str(missing)],
        ["db", "prune", "--config", str(missing)],
        ["report", "--config", str(missing)],
        ["alerts", "preview", "--config", str(missing)],
    ]
    results = [cli(*args, cwd=tmp_path) for args in uses_config]
    helps = [cli(name, "--help") for name in ["demo", "simulate"]]

    for args, result in zip(uses_config, results, strict=True):
        # The named file was the one looked for: the option reached the command.
        assert result.returncode == 2, (args, output(result))
        assert str(missing) in result.stderr, (args, output(result))
    for result in helps:
        assert result.returncode == 0
        assert "--config FILE" in result.stdout


# -- demo --------------------------------------------------------------------------------------

def test_it_runs_a_demo_that_prints_alerts_and_says_where_the_metrics_are() -> None:
    result = cli_subprocess("demo", "--duration", "8s", "--port", "0", timeout=90)

    assert result.returncode == 0, output(result)
    assert "degraded" in result.stdout
    assert re.search(rf"{re.escape(GUIDE)}\S*", result.stdout), result.stdout
    assert "/metrics" in result.stdout
    assert re.search(r"status page: +http://\S+/\n", result.stdout), result.stdout
