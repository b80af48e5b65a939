"""What the daemon lets others see or read: secrets in database URLs, the modes of the
files it creates, a token sent over plain HTTP, secrets in a config file others can read."""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support.daemon import cli

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
