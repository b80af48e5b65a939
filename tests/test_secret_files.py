"""Every secret can come from a file (``*_file``), as the partner token always could: the
webhook secret, the gate's token, each channel URL and the database URL. A file that is
missing, unreadable or empty is refused naming the key, never showing the content."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.alerts.checks import ALERT_CHECKS
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.simulator.webhooks import new_secret
from tests.support.daemon import cli

WEBHOOK_SECRET = new_secret()
GATE_TOKEN = "gate-SECRET-file-77"
CHANNEL_URL = "json://user:channel-SECRET-88@127.0.0.1:9/hook"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def config_with_files(tmp_path: Path, *, database_url: str | None = None) -> Path:
    write(tmp_path / "token", "tok-file-1")
    write(tmp_path / "webhook", WEBHOOK_SECRET + "\n")
    write(tmp_path / "gate", GATE_TOKEN)
    write(tmp_path / "channel", CHANNEL_URL)
    write(tmp_path / "database", database_url or f"sqlite:///{tmp_path / 'monitor.db'}")
    return write(tmp_path / "config.toml", """
[[accounts]]
name = "main"
base_url = "https://api.example"
token_file = "token"
webhook_secret_file = "webhook"

[database]
url_file = "database"

[server]
api_token_file = "gate"
protect_metrics = true

[[alerts.channels]]
name = "ops"
url_file = "channel"
""")


def test_every_secret_is_read_from_its_file_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(config_with_files(tmp_path), environ={}, checks=ALERT_CHECKS)

    secret = config.accounts[0].webhook_secret
    assert secret is not None and secret.get_secret_value() == WEBHOOK_SECRET
    token = config.server.api_token
    assert token is not None and token.get_secret_value() == GATE_TOKEN
    assert config.alerts.channels[0].apprise_url.get_secret_value() == CHANNEL_URL
    assert config.database_url() == f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.mark.parametrize(("file", "key"), [
    ("webhook", "accounts[0].webhook_secret_file"),
    ("gate", "server.api_token_file"),
    ("channel", "alerts.channels[0].url_file"),
    ("database", "database.url_file"),
])
def test_a_missing_or_empty_file_is_refused_naming_its_key(
        tmp_path: Path, file: str, key: str) -> None:
    path = config_with_files(tmp_path)
    (tmp_path / file).unlink()
    with pytest.raises(ConfigError) as missing:
        load_config(path, environ={})
    write(tmp_path / file, "  \n")
    with pytest.raises(ConfigError) as empty:
        load_config(path, environ={})

    assert (key, f"cannot read {tmp_path / file}: No such file or directory") \
        in missing.value.problems
    assert (key, f"{tmp_path / file} is empty") in empty.value.problems


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused_naming_its_key(tmp_path: Path) -> None:
    path = config_with_files(tmp_path)
    (tmp_path / "gate").chmod(0)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert ("server.api_token_file", f"cannot read {tmp_path / 'gate'}: Permission denied") \
        in caught.value.problems


def test_a_file_that_holds_the_wrong_kind_of_secret_is_refused_without_echoing_it(
        tmp_path: Path) -> None:
    path = config_with_files(tmp_path, database_url="mysql://root:db-SECRET-99@db/x")
    write(tmp_path / "webhook", "not-a-whsec-SECRET")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert "accounts[0].webhook_secret_file" in text and "database.url_file" in text
    assert "SECRET" not in text


@pytest.mark.parametrize(("section", "keys"), [
    ("[[accounts]]\nname = \"main\"\n", 'webhook_secret_env = "X"\nwebhook_secret_file = "f"'),
    ("[server]\n", 'api_token_env = "X"\napi_token_file = "f"'),
    ("[database]\n", 'url_env = "X"\nurl_file = "f"'),
])
def test_a_secret_has_one_source(tmp_path: Path, section: str, keys: str) -> None:
    accounts = "" if section.startswith("[[accounts]]") else '[[accounts]]\nname = "m"\n'
    path = write(tmp_path / "config.toml", f'{accounts}{section}{keys}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"LINQ_API_V3_API_KEY": "t", "X": "x"})
    assert "set only one of" in str(caught.value)


def test_check_config_says_where_the_file_secrets_come_from(tmp_path: Path) -> None:
    result = cli("check-config", "--config", str(config_with_files(tmp_path)))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"bearer token from file {tmp_path / 'gate'}" not in result.stdout  # as written
    assert "bearer token from file gate, /metrics too" in result.stdout
    assert "webhooks on (secret from file webhook)" in result.stdout
    for secret in (GATE_TOKEN, WEBHOOK_SECRET, "channel-SECRET-88"):
        assert secret not in result.stdout + result.stderr
