"""A relative SQLite path is taken from the config file's folder, like ``token_file``: every
command finds the same database, whatever directory it is started in."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError
from tests.support.daemon import cli


def write(folder: Path, database: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f'[[accounts]]\nname = "main"\ntoken = "t"\n{database}\n')
    path.chmod(0o600)
    return path


def test_db_upgrade_from_another_directory_puts_the_file_beside_the_config(
        tmp_path: Path) -> None:
    write(tmp_path / "etc", '[database]\nurl = "sqlite:///monitor.db"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("db", "upgrade", "--config", "../etc/config.toml", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc" / "monitor.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_check_config_shows_the_resolved_path(tmp_path: Path) -> None:
    config = write(tmp_path, '[database]\nurl = "sqlite:///data/monitor.db"')
    result = cli("check-config", "--config", str(config), cwd=Path("/"))
    assert f"database: sqlite:///{tmp_path / 'data' / 'monitor.db'}" in result.stdout


@pytest.mark.parametrize(("database", "url"), [
    ("", "sqlite:///{dir}/reputation-monitor.db"),
    ('[database]\nurl = "sqlite:///monitor.db"', "sqlite:///{dir}/monitor.db"),
    ('[database]\nurl = "sqlite:///../monitor.db?timeout=5"',
     "sqlite:///{parent}/monitor.db?timeout=5"),
    ('[database]\nurl = "sqlite:////var/lib/monitor/x.db"', "sqlite:////var/lib/monitor/x.db"),
    ('[database]\nurl = "sqlite:///:memory:"', "sqlite:///:memory:"),
    ('[database]\nurl = "sqlite://"', "sqlite://"),
    ('[database]\nurl = "postgresql://monitor@db/monitor"',
     "postgresql+psycopg://monitor@db/monitor"),
])
def test_only_a_relative_sqlite_path_moves(tmp_path: Path, database: str, url: str) -> None:
    config = load_config(write(tmp_path / "etc", database))
    assert config.database_url() == url.format(dir=tmp_path / "etc", parent=tmp_path)


def test_a_url_from_url_env_is_resolved_the_same_way(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl_env = "RM_TEST_DB_URL"')
    config = load_config(path, environ={"RM_TEST_DB_URL": "sqlite:///monitor.db"})
    assert config.database_url() == f"sqlite:///{tmp_path / 'monitor.db'}"
    postgres = load_config(path, environ={"RM_TEST_DB_URL": "postgresql://m:pw@db/m"})
    assert postgres.database_url() == "postgresql+psycopg://m:pw@db/m"


def test_a_url_env_holding_no_database_url_is_refused_without_echoing_it(
        tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl_env = "RM_TEST_DB_URL"')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"RM_TEST_DB_URL": "mysql://root:pw-SECRET@db/m"})
    assert info.value.key == "database.url_env"
    assert "SECRET" not in str(info.value)


def test_without_a_config_file_a_relative_path_is_left_as_written() -> None:
    config = parse_config({"accounts": [{"name": "main", "token": "t"}]}, environ={})
    assert config.database_url() == "sqlite:///reputation-monitor.db"
