"""[chats.watch]: the WATCH thresholds, per account and by label, with errors naming the key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.core.chats import DEFAULT_THRESHOLDS
from monitor.core.model import LineMeta
from monitor.errors import ConfigError

ENV = {"LINQ_API_V3_API_KEY": "tok"}


def config(watch: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"accounts": [{"name": "main"}, {"name": "sales"}], **more}
    if watch is not None:
        raw["chats"] = {"watch": watch}
    return raw


def error_of(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ=ENV)
    return info.value


def test_it_defaults_to_the_core_thresholds() -> None:
    rules = parse_config(config(), environ=ENV).chats.watch.rules()
    assert rules.base == DEFAULT_THRESHOLDS
    assert rules.for_line("main", LineMeta()) == DEFAULT_THRESHOLDS


def test_it_reads_thresholds_and_overrides_by_account_and_label() -> None:
    cfg = parse_config(config({
        "enter_share": 0.3, "exit_share": 0.15, "rise_within": "12h",
        "overrides": [
            {"accounts": ["sales"], "min_active": 20},
            {"labels": {"team": "support"}, "enter_unhealthy": 4, "exit_unhealthy": 2,
             "baseline_share": 0.1},
            {"accounts": ["sales"], "labels": {"team": "support"}, "min_active": 5},
        ]}), environ=ENV)
    rules = cfg.chats.watch.rules()
    assert rules.base.enter_share == 0.3 and rules.base.rise_within == timedelta(hours=12)
    support = LineMeta(labels={"team": "support"})
    main_plain = rules.for_line("main", LineMeta())
    assert (main_plain.min_active, main_plain.enter_unhealthy) == (10, 10)
    assert rules.for_line("sales", LineMeta()).min_active == 20
    main_support = rules.for_line("main", support)
    assert (main_support.min_active, main_support.enter_unhealthy) == (10, 4)
    assert (main_support.baseline_share, main_plain.baseline_share) == (0.1, 0.03)
    sales_support = rules.for_line("sales", support)  # later entries win
    assert (sales_support.min_active, sales_support.enter_unhealthy) == (5, 4)
    assert sales_support.enter_share == 0.3  # keys an override leaves alone: the base's


@pytest.mark.parametrize(("watch", "key", "reason"), [
    ({"enter_share": 1.5}, "chats.watch.enter_share", "less than or equal to 1"),
    ({"min_active": 0}, "chats.watch.min_active", "greater than or equal to 1"),
    ({"rise_within": "0s"}, "chats.watch.rise_within", "longer than 0s"),
    ({"noise_chance": 0}, "chats.watch.noise_chance", "greater than 0"),
    ({"baseline_share": 1}, "chats.watch.baseline_share", "less than 1"),
    ({"rise_within": "24"}, "chats.watch.rise_within", "no unit"),
    ({"enter_shar": 0.2}, "chats.watch.enter_shar", "unknown key"),
    ({"exit_share": 0.3}, "chats.watch", "exit_share (0.3) must not be above enter_share"),
    ({"enter_opted_out": 5, "exit_opted_out": 9}, "chats.watch",
     "exit_opted_out (9) must not be above"),
    ({"enter_opted_out": -1}, "chats.watch.enter_opted_out", "greater than or equal to 0"),
    ({"overrides": [{"labels": {"team": "a"}, "exit_unhealthy": 12}]}, "chats.watch",
     "overrides[0]: exit_unhealthy (12) must not be above enter_unhealthy (10)"),
    ({"overrides": [{"enter_share": 0}]}, "chats.watch.overrides[0].enter_share",
     "greater than 0"),
    ({"overrides": [{"accounts": ["nope"], "min_active": 3}]},
     "chats.watch.overrides[0].accounts", "unknown account(s): nope"),
])
def test_a_bad_threshold_names_its_key(watch: dict[str, Any], key: str, reason: str) -> None:
    error = error_of(config(watch))
    assert error.key == key
    assert reason in error.reason


def test_a_channel_may_opt_in_to_watch_and_the_default_stays_at_risk() -> None:
    cfg = parse_config(config(alerts={"channels": [
        {"name": "early", "url": "json://h", "min_status": "WATCH"},
        {"name": "ops", "url": "json://h"}]}), environ=ENV)
    assert [c.min_status for c in cfg.alerts.channels] == ["WATCH", "AT_RISK"]
