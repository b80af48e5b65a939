"""How commands treat the database: never beside a daemon, never created or migrated by a
look, and a clear word (exit 2) when it is missing, behind or ahead (issue 18, 1-3, 11)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from monitor.ha.replica import identity
from monitor.simulator import Simulator, SimulatorServer
from monitor.store import migrate
from monitor.store.solo import lock_sqlite
from tests.support.daemon import DaemonProcess, cli, write_config

PHONE = "+12025550011"


def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def configured(tmp_path: Path, database_url: str, base_url: str = "http://127.0.0.1:9"
               ) -> Path:
    return write_config(tmp_path / "config.toml", base_url=base_url,
                        database_url=database_url)


def changes(config: Path) -> list[tuple[str | None, str]]:
    import json

    result = cli("history", "--json", "--config", str(config))
    assert result.returncode == 0, output(result)
    return [(row["from_status"], row["to_status"]) for row in json.loads(result.stdout)]


@pytest.mark.both_databases
def test_poll_beside_a_running_daemon_is_refused_and_records_nothing(
        tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer
) -> None:
    line = sim.add_line(PHONE)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=database_url, poll_interval="1h")
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_polls(1)
        sim.set_status(line, "AT_RISK")
        poll = cli("poll", "--config", str(config))
        assert poll.returncode == 1, output(poll)
        assert "running" in output(poll) and "polls" in output(poll)
        assert "AT_RISK" not in {to for _, to in changes(config)}  # the poll wrote nothing
    finally:
        daemon.terminate()
    # With the daemon gone, the same command works and records the change once.
    assert cli("poll", "--config", str(config)).returncode == 0
    assert changes(config).count(("HEALTHY", "AT_RISK")) == 1


def test_a_daemon_started_during_a_poll_names_the_poll(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = configured(tmp_path, url)
    held = lock_sqlite(url, identity(), role="poll")
    try:
        run = cli("run", "--config", str(config))
    finally:
        assert held is not None
        held.release()
    assert run.returncode == 1, output(run)
    assert "`reputation-monitor poll` (pid" in run.stderr


def test_db_upgrade_and_prune_refuse_beside_the_daemon_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = configured(tmp_path, url)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    held = lock_sqlite(url, identity())
    try:
        upgrade = cli("db", "upgrade", "--config", str(config))
        prune = cli("db", "prune", "--config", str(config))
    finally:
        assert held is not None
        held.release()
    assert upgrade.returncode == 1 and "`db upgrade` refused: the reputation-monitor daemon" \
        in upgrade.stderr, output(upgrade)
    assert prune.returncode == 1 and "`db prune` refused" in prune.stderr, output(prune)


@pytest.mark.parametrize("args", [
    ["status"], ["history"], ["report"], ["silence", "list"], ["audit", "show", PHONE],
])
def test_a_look_at_a_missing_database_says_so_and_creates_nothing(
        tmp_path: Path, args: list[str]) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    database = tmp_path / "var" / "monitor.db"
    database.parent.mkdir()
    config = configured(config_dir, f"sqlite:///{database}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = cli(*args, "--config", str(config), cwd=elsewhere)
    assert result.returncode == 2, output(result)
    assert f"there is no database at {database}" in result.stderr
    assert "Traceback" not in output(result)
    assert not database.exists()
    assert list(elsewhere.iterdir()) == []


def _at_revision(config: Path, database: Path, revision: str) -> None:
    """A database the daemon made, then set to ``revision`` as another version would."""
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_database_behind_the_code_is_not_migrated_by_a_look(tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    config = configured(tmp_path, f"sqlite:///{database}")
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection), "-1")
        behind = migrate.current_revision(connection)
    engine.dispose()
    before = database.read_bytes()

    for args in (["status"], ["history"], ["silence", "add", "--line", PHONE, "--for", "1h",
                                           "--reason", "x"]):
        result = cli(*args, "--config", str(config))
        assert result.returncode == 2, output(result)
        assert f"schema revision {behind}, older than" in result.stderr
        assert "db upgrade" in result.stderr
    assert database.read_bytes() == before  # nothing migrated, nothing added
    assert not list(tmp_path.glob("*.bak"))


def test_a_database_newer_than_the_code_gives_one_message_and_no_backup(
        tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    config = configured(tmp_path, f"sqlite:///{database}")
    _at_revision(config, database, "f00dfeedbeef")

    for args in (["status"], ["run"], ["poll"], ["db", "upgrade"], ["run"]):
        result = cli(*args, "--config", str(config))
        assert result.returncode == 2, (args, output(result))
        assert "Traceback" not in output(result)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "revision f00dfeedbeef" in errors[0], output(result)
        assert "newer version" in errors[0]
    assert not list(tmp_path.glob("*.bak"))


def test_a_look_opens_sqlite_read_only(tmp_path: Path) -> None:
    from monitor.store.engine import make_engine

    database = tmp_path / "monitor.db"
    config = configured(tmp_path, f"sqlite:///{database}")
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    engine = make_engine(f"sqlite:///{database}", read_only=True)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM lines")).scalar() == 0
            with pytest.raises(Exception, match="readonly database"):
                connection.execute(text("DELETE FROM lines"))
    finally:
        engine.dispose()


def test_a_postgres_database_that_does_not_exist_is_named(postgres_url: str,
                                                          tmp_path: Path) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_monitor_db"
    config = configured(tmp_path, missing)
    for args in (["status"], ["run"]):
        result = cli(*args, "--config", str(config))
        assert result.returncode == 1, output(result)
        assert "database 'no_such_monitor_db' on 127.0.0.1:5432 does not exist" \
            in result.stderr, output(result)
        assert "Traceback" not in output(result)


def test_an_sqlite_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    database = tmp_path / "missing-dir" / "monitor.db"
    config = configured(tmp_path, f"sqlite:///{database}")
    result = cli("poll", "--config", str(config))
    assert result.returncode == 1, output(result)
    assert f"cannot use the SQLite database {database}: cannot create its lock file" \
        in result.stderr, output(result)
    assert "No such file or directory" in result.stderr


def test_an_unreachable_api_is_named_by_host_and_port(tmp_path: Path) -> None:
    config = configured(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}",
                        base_url="http://127.0.0.1:9")
    text_ = config.read_text().replace('timeout = "5s"', 'timeout = "5s"\nmax_retries = 0')
    config.write_text(text_)
    result = cli("poll", "--config", str(config))
    assert result.returncode == 1, output(result)
    assert "cannot reach 127.0.0.1:9" in result.stdout, output(result)


def test_read_only_postgres_sessions_refuse_writes(postgres_url: str, tmp_path: Path) -> None:
    from monitor.store.engine import make_engine

    config = configured(tmp_path, postgres_url)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    engine = make_engine(postgres_url, read_only=True)
    try:
        with engine.connect() as connection, pytest.raises(Exception, match="read-only"):
            connection.execute(text("DELETE FROM lines"))
    finally:
        engine.dispose()


def test_commands_that_work_on_the_database_need_no_secrets(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_line(PHONE)
    config = configured(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}", sim_server.url)
    assert cli("poll", "--config", str(config)).returncode == 0
    # On-call's shell: neither the Linq token nor the pager's URL is in the environment.
    text_ = config.read_text()
    token_file = next(line for line in text_.splitlines() if line.startswith("token_file"))
    config.write_text(text_.replace(token_file, 'token_env = "LINQ_TOKEN_NOT_HERE"') + """
[[alerts.channels]]
name = "pager"
url_env = "PAGER_URL_NOT_HERE"
""")
    for args in (["status"], ["history", PHONE], ["report"], ["silence", "list"],
                 ["silence", "add", "--line", PHONE, "--for", "1h", "--reason", "x"],
                 ["audit", "show", PHONE], ["db", "prune"], ["alerts", "preview"]):
        result = cli(*args, "--config", str(config))
        assert result.returncode in (0, 1), (args, output(result))  # 1: no audit stored
        assert "NOT_HERE" not in result.stderr, (args, output(result))
    assert PHONE in cli("status", "--config", str(config)).stdout
    # What talks to Linq or a channel still needs them, and says which.
    poll = cli("poll", "--config", str(config))
    assert poll.returncode == 2
    assert "LINQ_TOKEN_NOT_HERE is not set" in poll.stderr
    assert "PAGER_URL_NOT_HERE is not set" in poll.stderr


def test_db_upgrade_refuses_to_migrate_under_a_live_replica(postgres_url: str,
                                                           tmp_path: Path) -> None:
    config = configured(tmp_path, postgres_url)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    engine = create_engine(postgres_url)
    with engine.begin() as connection:  # a replica of the older version, alive
        connection.execute(text(
            "INSERT INTO replicas (replica, host, pid, started_at, heartbeat_at) "
            "VALUES ('web-1', 'web', 1, now(), now())"))
        command.downgrade(migrate.alembic_config(connection), "-1")
        behind = migrate.current_revision(connection)

    result = cli("db", "upgrade", "--config", str(config))
    assert result.returncode == 1, output(result)
    assert "`db upgrade` refused: replica(s) web-1 are running" in result.stderr
    with engine.connect() as connection:
        assert migrate.current_revision(connection) == behind  # not migrated
    engine.dispose()
