"""One duration syntax: a number and its unit, never a bare number; zero only where it means
something; what the monitor prints reads back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.config import parse_config, parse_duration
from monitor.core.render import format_duration
from monitor.errors import ConfigError

ENV = {"LINQ_API_V3_API_KEY": "tok-123"}
CHANNEL = {"name": "ops", "url": "json://127.0.0.1:9/x"}


def error_of(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ=ENV)
    return info.value


@pytest.mark.parametrize("value", [60, 1.5, "60", " 90 "])
def test_it_refuses_a_bare_number_naming_the_key_and_how_to_write_it(value: object) -> None:
    error = error_of({"accounts": [{"name": "main", "poll_interval": value}]})
    number = str(value).strip()
    assert str(error) == (f'accounts[0].poll_interval: {number} has no unit: '
                          f'write "{number}s" (or ms, m, h, d)')


@pytest.mark.parametrize("value", [-5, "-5m"])
def test_it_refuses_a_negative_duration(value: object) -> None:
    error = error_of({"accounts": [{"name": "main"}], "alerts": {"retry_max": value}})
    assert (error.key, error.reason) == ("alerts.retry_max", "a duration cannot be negative")


@pytest.mark.parametrize(("section", "key"), [
    ("account", "timeout"),
    ("server", "request_timeout"),
    ("database", "retention"),
    ("alerts", "policy_interval"),
    ("alerts", "delivery_timeout"),
    ("alerts", "retry_initial"),
    ("alerts", "retry_max"),
    ("alerts", "give_up_after"),
    ("alerts", "stale_after"),
])
def test_it_refuses_zero_where_zero_makes_no_sense(section: str, key: str) -> None:
    account: dict[str, Any] = {"name": "main"}
    raw: dict[str, Any] = {"accounts": [account]}
    if section == "account":
        account[key] = "0s"
        path = f"accounts[0].{key}"
    else:
        raw[section] = {key: "0s"}
        path = f"{section}.{key}"
    error = error_of(raw)
    assert error.key == path
    assert "must be longer than 0s" in error.reason


def test_a_flap_window_of_zero_is_refused_only_when_flapping_is_on() -> None:
    off = parse_config({"accounts": [{"name": "main"}],
                        "alerts": {"flap_window": "0s"}}, environ=ENV)
    assert off.alerts.flap_window == timedelta(0)
    error = error_of({"accounts": [{"name": "main"}],
                      "alerts": {"flap_changes": 3, "flap_window": "0s"}})
    assert error.key == "alerts.flap_window" and "flap_changes" in error.reason


def test_zero_is_accepted_where_it_means_at_once() -> None:
    config = parse_config({"accounts": [{"name": "main", "audit_wait": "0s"}],
                           "alerts": {"channels": [{**CHANNEL, "group_wait": "0s"}]}},
                          environ=ENV)
    assert config.accounts[0].audit_wait == timedelta(0)
    assert config.alerts.channels[0].group_wait == timedelta(0)


@pytest.mark.parametrize("seconds", [0, 45, 125, 3600 + 5 * 60, 3 * 86400 + 4 * 3600])
def test_what_format_duration_prints_reads_back(seconds: int) -> None:
    printed = format_duration(timedelta(seconds=seconds))
    assert parse_duration(printed) == timedelta(seconds=seconds)
