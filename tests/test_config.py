"""Config validation: one clear error naming the key; secrets resolved, never echoed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.checks import ALERT_CHECKS
from monitor.config import load_config, parse_config, parse_duration
from monitor.errors import ConfigError

ENV = {"LINQ_API_V3_API_KEY": "tok-SECRET-123"}


def config(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"accounts": [{"name": "main"}]}
    raw.update(overrides)
    return raw


def error_of(raw: dict[str, Any], env: dict[str, str] = ENV) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ=env, checks=ALERT_CHECKS)
    return info.value


def test_it_applies_documented_defaults() -> None:
    cfg = parse_config(config(), environ=ENV)
    account = cfg.accounts[0]
    assert account.base_url == "https://api.linqapp.com/api/partner"
    assert account.poll_interval == timedelta(seconds=60)
    assert account.api_token.get_secret_value() == "tok-SECRET-123"
    assert cfg.database.url == "sqlite:///reputation-monitor.db"
    assert cfg.server.listen == "127.0.0.1:9464"
    assert cfg.alerts.notify_recovery is True


def test_retention_defaults_to_400_days_and_can_be_turned_off() -> None:
    assert parse_config(config(), environ=ENV).database.retention == timedelta(days=400)
    off = parse_config(config(database={"retention": "off"}), environ=ENV)
    assert off.database.retention is None
    assert error_of(config(database={"retention": "forever"})).key == "database.retention"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400),
                                               ("7d", 604800), ("250ms", 0.25), ("0s", 0),
                                               ("1h 30m", 5400), (" 2m ", 120)])
def test_it_reads_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(("raw", "key", "reason"), [
    (config(accounts=[{"name": "main", "pol_interval": "5s"}]), "accounts[0].pol_interval",
     "unknown key"),
    (config(accounts=[{"name": "main", "poll_interval": "5 minutes"}]),
     "accounts[0].poll_interval", "not a duration"),
    (config(accounts=[{"name": "main", "poll_interval": "0s"}]), "accounts[0].poll_interval",
     "at least 1s"),
    (config(accounts=[{"name": "a"}, {"name": "a"}]), "accounts", "unique"),
    (config(server={"listen": "nowhere"}), "server.listen", "HOST:PORT"),
    (config(database={"url": "mysql://x"}), "database.url", "sqlite"),
    (config(alerts={"channels": [{"name": "ops", "url": "json://h", "min_status": "LOW"}]}),
     "alerts.channels[0].min_status", "AT_RISK"),
    (config(alerts={"channels": [{"name": "ops"}]}), "alerts.channels[0]", "exactly one"),
    ({"accounts": []}, "accounts", "at least 1"),
    ({}, "accounts", "required"),
    (config(alerts={"channels": [{"name": "ops", "url": "json://h",
                                  "quiet_hours": "22h-7h"}]}),
     "alerts.channels[0].quiet_hours", "HH:MM-HH:MM"),
    (config(alerts={"channels": [{"name": "ops", "url": "json://h",
                                  "timezone": "Mars/Olympus"}]}),
     "alerts.channels[0].timezone", "IANA"),
    (config(alerts={"channels": [{"name": "ops", "url": "json://h", "accounts": ["eu"]}]}),
     "alerts.channels[0].accounts", "unknown account(s): eu"),
    (config(alerts={"channels": [{"name": "ops", "url": "json://h",
                                  "repeat_interval": "0s"}]}),
     "alerts.channels[0].repeat_interval", "at least 1s"),
    (config(alerts={"confirm_polls": 0}), "alerts.confirm_polls", "greater than or equal to 1"),
])
def test_it_names_the_bad_key(raw: dict[str, Any], key: str, reason: str) -> None:
    error = error_of(raw)
    assert error.key == key
    assert reason in error.reason


def test_a_missing_token_env_var_names_the_key_and_the_variable() -> None:
    error = error_of(config(accounts=[{"name": "main", "token_env": "MY_LINQ_TOKEN"}]), env={})
    assert error.key == "accounts[0].token_env"
    assert "MY_LINQ_TOKEN" in error.reason


def test_an_unreadable_token_file_names_the_key(tmp_path: Path) -> None:
    raw = config(accounts=[{"name": "main", "token_file": str(tmp_path / "nope")}])
    assert error_of(raw).key == "accounts[0].token_file"


def test_a_malformed_apprise_url_is_refused_without_echoing_it() -> None:
    raw = config(alerts={"channels": [{"name": "ops", "url": "nosuchscheme://hooks-SECRET-456"}]})
    error = error_of(raw)
    assert error.key == "alerts.channels[0].url"
    assert "SECRET" not in str(error)


def test_without_the_alert_checks_a_url_and_a_template_are_taken_as_written() -> None:
    # The layer below alerts cannot judge them; the command line always passes the checks.
    raw = config(alerts={"channels": [{"name": "ops", "url": "nosuchscheme://x",
                                       "body_template": "{{ oops }"}]})
    assert parse_config(raw, environ=ENV).alerts.channels[0].name == "ops"


def test_it_warns_about_an_inline_token_in_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[accounts]]\nname = "main"\ntoken = "tok-SECRET-123"\n')
    path.chmod(0o644)
    cfg = load_config(path)
    assert any("readable by other users" in w for w in cfg.warnings)
    assert all("tok-SECRET-123" not in w for w in cfg.warnings)
    path.chmod(0o600)
    assert load_config(path).warnings == []


def test_secrets_do_not_show_in_the_config_repr() -> None:
    raw = config(alerts={"channels": [{"name": "ops", "url": "json://127.0.0.1/hooks-SECRET-456"}]})
    cfg = parse_config(raw, environ=ENV)
    assert "SECRET" not in repr(cfg) and "SECRET" not in str(cfg.model_dump())


def test_the_shipped_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    monkeypatch.setenv("LINQ_API_V3_API_KEY", "tok-SECRET-123")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")
    monkeypatch.setenv("PAGERDUTY_URL", "pagerduty://integration-key@api-key")
    cfg = load_config(example)
    assert [a.name for a in cfg.accounts]
