"""Every mistake in a config in one run: each named by its key, in file order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.checks import ALERT_CHECKS
from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.support.daemon import cli

UNSET = "RM_TEST_NEVER_SET_TOKEN"

THREE_MISTAKES = f"""
[[accounts]]
name = "main"
token_env = "{UNSET}"

[server]
lisen = "0.0.0.0:9464"

[alerts]
retry_max = "ten minutes"
"""


def problems_of(raw: dict[str, Any], env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ=env or {"LINQ_API_V3_API_KEY": "tok-123"})
    return info.value.problems


def test_check_config_reports_three_mistakes_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(THREE_MISTAKES)
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config error: 3 problems in the config:",
        f"  accounts[0].token_env: environment variable {UNSET} is not set",
        "  server.lisen: unknown key",
        "  alerts.retry_max: 'ten minutes' is not a duration (use e.g. '30s', '5m', '1h30m', "
        "'7d')",
    ]


def test_a_single_mistake_reads_as_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[accounts]]\nname = "main"\ntoken = "t"\npoll_interval = "5 minutes"\n')
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == ("config error: accounts[0].poll_interval: '5 minutes' is not a "
                             "duration (use e.g. '30s', '5m', '1h30m', '7d')\n")


def test_the_first_problem_stays_the_errors_key_and_reason() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"accounts": [{"name": "main", "pol_interval": "5s", "timeout": "x"}]},
                     environ={})
    error = info.value
    assert [key for key, _ in error.problems] == ["accounts[0].timeout",
                                                  "accounts[0].pol_interval"]
    assert (error.key, error.reason) == error.problems[0]


def test_a_malformed_account_does_not_hide_a_missing_token_in_another() -> None:
    raw = {"accounts": [{"name": "main", "timeout": "soon"},
                        {"name": "eu", "token_env": UNSET}]}
    assert [key for key, _ in problems_of(raw)] == ["accounts[0].timeout",
                                                    "accounts[1].token_env"]


def test_references_secrets_and_shape_are_reported_together() -> None:
    raw = {
        "accounts": [{"name": "main"}],
        "lines": [{"match": "+1415*", "account": "eu"}],
        "database": {"url_env": "RM_TEST_NEVER_SET_DB"},
        "alerts": {"channels": [{"name": "ops", "url_env": "RM_TEST_NEVER_SET_URL"},
                                {"name": "pager", "url": "json://h", "accounts": ["eu"]},
                                {"name": "mail", "url": "json://h", "min_status": "LOW"}]},
    }
    assert [key for key, _ in problems_of(raw)] == [
        "lines[0].account",
        "database.url_env",
        "alerts.channels[0].url_env",
        "alerts.channels[1].accounts",
        "alerts.channels[2].min_status",
    ]


def test_a_reference_to_a_malformed_account_is_not_called_unknown() -> None:
    raw = {"accounts": [{"name": "main"}, {"name": "eu", "timeout": "soon"}],
           "lines": [{"match": "*", "account": "eu"}]}
    assert [key for key, _ in problems_of(raw)] == ["accounts[1].timeout"]


def test_a_bad_key_does_not_bring_a_false_second_problem() -> None:
    channel = {"name": "ops", "url": "json://h", "body_template": "{% for e in entries %}",
               "body_format": "markdown"}
    with pytest.raises(ConfigError) as info:
        parse_config({"accounts": [{"name": "main", "token": "t"}],
                      "server": {"api_token_env": 5, "protect_metrics": True},
                      "alerts": {"channels": [channel]}}, environ={}, checks=ALERT_CHECKS)
    assert [key for key, _ in info.value.problems] == ["server.api_token_env",
                                                       "alerts.channels[0].body_template"]
