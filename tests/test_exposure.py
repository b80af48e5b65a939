"""What the daemon lets others see or read: secrets in database URLs, the modes of the
files it creates, a token sent over plain HTTP, secrets in a config file others can read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from alembic import command
from sqlalchemy import create_engine

from monitor.config import load_config, parse_config
from monitor.store import migrate
from tests.support.daemon import cli, write_config

pytestmark = pytest.mark.timeout(60)

TOKEN_ENV = "RM_TEST_LINQ_TOKEN"
SECRET_TOKEN = "tok-SECRET-123"
DB_SECRET = "db-SECRET-789"


def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def config_text(database_url: str, *, base_url: str = "http://127.0.0.1:9") -> str:
    return f"""
[[accounts]]
name = "acme-prod"
base_url = "{base_url}"
token_env = "{TOKEN_ENV}"

[database]
url = "{database_url}"
"""


# -- secrets in the query string of a database URL ---------------------------------------------

@pytest.mark.parametrize("query", [
    f"password={DB_SECRET}",
    f"sslmode=require&sslpassword={DB_SECRET}",
    f"application_name=monitor&auth_token={DB_SECRET}&client_secret={DB_SECRET}",
])
def test_check_config_masks_a_password_in_the_database_urls_query(
    tmp_path: Path, query: str,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(f"postgresql+psycopg://monitor@127.0.0.1:9/monitor?{query}"))
    config.chmod(0o600)

    for args in (("check-config",), ("check-config", "--json")):
        result = cli(*args, "--config", str(config), env={TOKEN_ENV: SECRET_TOKEN})

        assert result.returncode == 0, output(result)
        assert DB_SECRET not in output(result)
        assert "***" in result.stdout
        assert "127.0.0.1" in result.stdout


def test_check_config_still_shows_harmless_query_parameters(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(
        "postgresql+psycopg://monitor@127.0.0.1:9/monitor?sslmode=require&passfile=/etc/pgpass"))
    config.chmod(0o600)

    result = cli("check-config", "--config", str(config), env={TOKEN_ENV: SECRET_TOKEN})

    assert result.returncode == 0, output(result)
    assert "sslmode=require" in result.stdout
    assert "/etc/pgpass" in result.stdout


# -- modes of the files the store creates ------------------------------------------------------

@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file is created world-readable unless asked otherwise."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_a_new_sqlite_database_and_its_wal_are_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    database = tmp_path / "monitor.db"
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=f"sqlite:///{database}")

    result = cli("db", "upgrade", "--config", str(config))

    assert result.returncode == 0, output(result)
    made = [p for p in tmp_path.iterdir() if p.name.startswith("monitor.db")
            and not p.name.endswith(".lock")]
    assert database in made
    assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}


@pytest.mark.usefixtures("umask_022")
def test_the_backup_before_a_migration_is_readable_by_the_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=f"sqlite:///{database}")
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:  # one revision behind: the next upgrade backs it up
        command.downgrade(migrate.alembic_config(connection), "-1")
    engine.dispose()
    database.chmod(0o644)  # a database made before files were created 0600

    result = cli("db", "upgrade", "--config", str(config))

    assert result.returncode == 0, output(result)
    backups = list(tmp_path.glob("monitor.db.*.bak"))
    assert len(backups) == 1, output(result)
    assert mode(backups[0]) == 0o600


# -- the partner token over plain HTTP ---------------------------------------------------------

def account_warnings(base_url: str) -> list[str]:
    raw = {"accounts": [{"name": "acme-prod", "base_url": "https://api.linqapp.com",
                         "token_env": TOKEN_ENV},
                        {"name": "acme-test", "base_url": base_url, "token_env": TOKEN_ENV}]}
    return parse_config(raw, environ={TOKEN_ENV: SECRET_TOKEN}).warnings


@pytest.mark.parametrize("base_url", [
    "http://api.linqapp.com/api/partner", "http://10.0.0.7:8080", "http://[2001:db8::1]",
    "http://localhost.example.com",
])
def test_a_token_sent_over_plain_http_beyond_this_host_is_warned_about(base_url: str) -> None:
    warnings = account_warnings(base_url)

    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("accounts[1].base_url")
    assert "unencrypted" in warnings[0]
    assert SECRET_TOKEN not in warnings[0]


@pytest.mark.parametrize("base_url", [
    "http://127.0.0.1:9", "http://127.1.2.3", "http://[::1]:8080", "http://localhost:8080",
    "https://linq.internal",
])
def test_plain_http_to_this_host_or_https_anywhere_is_not_warned_about(base_url: str) -> None:
    assert account_warnings(base_url) == []


def test_check_config_shows_the_plain_http_warning(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text("sqlite:///monitor.db", base_url="http://10.0.0.7:8080"))
    config.chmod(0o600)

    result = cli("check-config", "--config", str(config), env={TOKEN_ENV: SECRET_TOKEN})

    assert result.returncode == 0, output(result)
    assert "accounts[0].base_url" in output(result)
    assert "unencrypted" in output(result)
    assert SECRET_TOKEN not in output(result)


# -- secrets in a config file others can read --------------------------------------------------

CHANNEL_SECRET = "hooks-SECRET-456"
INLINE_CHANNEL = f"""
[[alerts.channels]]
name = "ops-room"
url = "json://127.0.0.1:9/{CHANNEL_SECRET}"
"""
CHANNEL_FROM_ENV = """
[[alerts.channels]]
name = "ops-room"
url_env = "RM_TEST_CHANNEL_URL"
"""


@pytest.mark.parametrize(("db_url", "channel", "key", "held"), [
    (f"postgresql+psycopg://monitor:{DB_SECRET}@127.0.0.1:9/monitor", CHANNEL_FROM_ENV,
     "[database] url", "database password"),
    (f"postgresql+psycopg://monitor@127.0.0.1:9/monitor?password={DB_SECRET}",
     CHANNEL_FROM_ENV, "[database] url", "database password"),
    ("sqlite:///monitor.db", INLINE_CHANNEL, "alerts.channels[0].url", "channel URL"),
], ids=["database-userinfo", "database-query", "channel-url"])
def test_it_warns_of_secrets_in_a_config_file_others_can_read(
    tmp_path: Path, db_url: str, channel: str, key: str, held: str,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(db_url) + channel)
    env = {TOKEN_ENV: SECRET_TOKEN, "RM_TEST_CHANNEL_URL": f"json://127.0.0.1:9/{CHANNEL_SECRET}"}
    config.chmod(0o644)

    warnings = load_config(config, environ=env).warnings
    result = cli("check-config", "--config", str(config), env=env)

    assert any(held in w and key in w and "readable by other users" in w for w in warnings), \
        warnings
    assert result.returncode == 0, output(result)
    assert "readable by other users" in output(result)
    for secret in (DB_SECRET, CHANNEL_SECRET, SECRET_TOKEN):
        assert secret not in output(result)
        assert all(secret not in w for w in warnings)

    config.chmod(0o600)
    assert load_config(config, environ=env).warnings == []


def test_a_config_file_others_can_read_is_fine_without_secrets_in_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text("postgresql+psycopg://monitor@127.0.0.1:9/monitor"
                                  "?sslmode=require&passfile=/etc/pgpass") + CHANNEL_FROM_ENV
                      + '[[alerts.channels]]\nname = "log"\nurl = "console://"\n')
    config.chmod(0o644)
    env = {TOKEN_ENV: SECRET_TOKEN, "RM_TEST_CHANNEL_URL": f"json://127.0.0.1:9/{CHANNEL_SECRET}"}

    assert load_config(config, environ=env).warnings == []
