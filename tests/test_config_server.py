"""Config keys for webhooks, audits and the server's API: each bad one is named."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.simulator.webhooks import new_secret


def config(account: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
           env: dict[str, str] | None = None) -> Any:
    return parse_config({"accounts": [{"name": "main", "token": "t", **(account or {})}],
                         "server": server or {}}, environ=env or {})


def test_webhooks_are_off_when_the_default_secret_variable_is_unset() -> None:
    assert config().accounts[0].webhook_secret is None
    secret = new_secret()
    resolved = config(env={"LINQ_WEBHOOK_SECRET": secret}).accounts[0].webhook_secret
    assert resolved is not None and resolved.get_secret_value() == secret


def test_a_named_secret_variable_must_be_set_and_hold_a_signing_secret() -> None:
    with pytest.raises(ConfigError) as unset:
        config({"webhook_secret_env": "MY_SECRET"})
    assert unset.value.key == "accounts[0].webhook_secret_env"
    with pytest.raises(ConfigError) as bad:
        config({"webhook_secret_env": "MY_SECRET"}, env={"MY_SECRET": "hunter2-not-base64!"})
    assert bad.value.key == "accounts[0].webhook_secret_env"
    assert "hunter2" not in str(bad.value)


def test_audit_keys_have_defaults_and_are_checked() -> None:
    account = config().accounts[0]
    assert account.audit_on == ["CRITICAL"] and account.audit_wait.total_seconds() == 20
    with pytest.raises(ConfigError) as bad:
        config({"audit_wait": "soon"})
    assert bad.value.key == "accounts[0].audit_wait"


def test_the_api_token_comes_from_its_variable_and_protecting_metrics_needs_one() -> None:
    server = config(server={"api_token_env": "API_TOKEN"}, env={"API_TOKEN": "abc"}).server
    assert server.api_token is not None and server.api_token.get_secret_value() == "abc"
    with pytest.raises(ConfigError) as unset:
        config(server={"api_token_env": "API_TOKEN"})
    assert unset.value.key == "server.api_token_env"
    with pytest.raises(ConfigError) as lonely:
        config(server={"protect_metrics": True})
    assert lonely.value.key == "server.protect_metrics"
    with pytest.raises(ConfigError) as tiny:
        config(server={"max_body_bytes": 10})
    assert tiny.value.key == "server.max_body_bytes"
