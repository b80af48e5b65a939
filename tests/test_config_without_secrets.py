"""A config loaded for a read-only command needs no secret, yet is still checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.errors import ConfigError

CONFIG = """
[[accounts]]
name = "main"
token_env = "RM_TEST_UNSET_TOKEN"
webhook_secret_env = "RM_TEST_UNSET_WEBHOOK_SECRET"

[[accounts]]
name = "eu"
token_file = "no-such-token-file"

[server]
api_token_env = "RM_TEST_UNSET_API_TOKEN"

[database]
url_env = "RM_TEST_DATABASE_URL"

[[alerts.channels]]
name = "ops"
url_env = "RM_TEST_UNSET_CHANNEL_URL"
"""
DATABASE_ENV = {"RM_TEST_DATABASE_URL": "sqlite:////var/lib/monitor/monitor.db"}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_it_loads_without_the_token_channel_url_or_other_secrets(path: Path) -> None:
    config = load_config(path, environ=DATABASE_ENV, secrets=False)
    assert [a.name for a in config.accounts] == ["main", "eu"]
    assert config.database_url() == "sqlite:////var/lib/monitor/monitor.db"


def test_with_secrets_the_same_config_names_every_missing_one(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=DATABASE_ENV)
    assert [key for key, _ in info.value.problems] == [
        "accounts[0].token_env", "accounts[0].webhook_secret_env", "accounts[1].token_file",
        "server.api_token_env", "alerts.channels[0].url_env"]


def test_the_database_variable_is_still_required(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={}, secrets=False)
    assert str(info.value) == ("database.url_env: environment variable RM_TEST_DATABASE_URL "
                               "is not set")


def test_the_rest_of_the_config_is_still_checked(path: Path) -> None:
    path.write_text(CONFIG.replace('name = "eu"', 'name = "eu"\npoll_interval = 60'))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=DATABASE_ENV, secrets=False)
    assert info.value.key == "accounts[1].poll_interval"


def test_asking_such_a_config_for_a_secret_is_a_clear_mistake(path: Path) -> None:
    config: Config = load_config(path, environ=DATABASE_ENV, secrets=False)
    main, channel = config.accounts[0], config.alerts.channels[0]
    asks = {"the API token of account 'main'": lambda: main.api_token,
            "the webhook secret of account 'main'": lambda: main.webhook_secret,
            "the URL of channel 'ops'": lambda: channel.apprise_url,
            "the server's API token": lambda: config.server.api_token}
    for what, ask in asks.items():
        with pytest.raises(RuntimeError, match="loaded with secrets=False") as info:
            ask()
        assert str(info.value).startswith(f"{what} was not read")
