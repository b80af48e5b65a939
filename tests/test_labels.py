"""Line names and labels from ``[[lines]]``: validation, merging, globs, the info metric."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_config, parse_config
from monitor.core.labels import Labeler, selector_matches
from monitor.core.model import LineKey, LineMeta, LineState
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import DaemonProcess, parse_metrics, wait_until, write_config
from tests.test_metrics import promtool

ENV = {"LINQ_API_V3_API_KEY": "tok"}
SINCE = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
INFO = "linq_reputation_line_info"


def key(line_id: str, phone_number: str, *, account: str = "main") -> LineKey:
    return LineKey(account, line_id, phone_number)


def labeler(*entries: dict[str, Any], accounts: tuple[str, ...] = ("main", "eu")) -> Labeler:
    config = parse_config({"accounts": [{"name": a} for a in accounts], "lines": list(entries)},
                          environ=ENV)
    return Labeler.from_config(config.lines)


def error_of(*entries: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config({"accounts": [{"name": "main"}], "lines": list(entries)}, environ=ENV)
    return info.value


# -- config ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entries", "key", "reason"), [
    ([{"name": "x"}], "lines[0].match", "required"),
    ([{"match": "+1", "labels": {"team": "a"}}, {"match": ""}], "lines[1].match",
     "at least 1"),
    ([{"match": "+1415 555"}], "lines[0].match", "spaces"),
    ([{"match": "+1", "labels": {"team-x": "a"}}], "lines[0].labels", "'team-x'"),
    ([{"match": "+1", "labels": {"9team": "a"}}], "lines[0].labels", "valid label name"),
    ([{"match": "+1", "labels": {"team": 7}}], "lines[0].labels.team", "string"),
    ([{"match": "+1", "nmae": "x"}], "lines[0].nmae", "unknown key"),
    ([{"match": "+1"}, {"match": "+2"}, {"match": "+3", "account": "nope"}],
     "lines[2].account", "no account named 'nope'"),
])
def test_a_bad_lines_entry_names_the_key(entries: list[Any], key: str, reason: str) -> None:
    error = error_of(*entries)
    assert error.key == key
    assert reason in error.reason


def test_the_config_has_no_lines_by_default_and_the_labeler_is_then_empty() -> None:
    config = parse_config({"accounts": [{"name": "main"}]}, environ=ENV)
    assert config.lines == []
    assert not Labeler.from_config(config.lines)


# -- labeler -----------------------------------------------------------------------------------

def test_an_exact_phone_number_or_line_id_gives_the_name_and_labels() -> None:
    lab = labeler({"match": "+14155550100", "name": "Front desk", "labels": {"team": "sales"}},
                  {"match": "line-7", "labels": {"team": "support"}})
    assert lab.meta(key("line-1", "+14155550100")) == LineMeta("Front desk", {"team": "sales"})
    assert lab.meta(key("line-7", "+12025550007")) == LineMeta(None, {"team": "support"})
    assert lab.meta(key("line-2", "+14155550101")) == LineMeta()


def test_a_glob_matches_the_phone_number_or_the_line_id() -> None:
    lab = labeler({"match": "+1415*", "labels": {"region": "sf"}},
                  {"match": "vip-??", "labels": {"tier": "vip"}},
                  {"match": "+1202555010[0-4]", "labels": {"batch": "a"}})
    assert lab.meta(key("x", "+14155550100")).labels == {"region": "sf"}
    assert lab.meta(key("vip-01", "+12025550999")).labels == {"tier": "vip"}
    assert lab.meta(key("vip-001", "+12025550999")).labels == {}
    assert lab.meta(key("x", "+12025550103")).labels == {"batch": "a"}
    assert lab.meta(key("x", "+12025550105")).labels == {}
    assert lab.meta(key("x", "+24155550100")).labels == {}  # anchored at both ends


def test_labels_of_every_matching_entry_merge_in_file_order_and_the_first_name_wins() -> None:
    lab = labeler({"match": "*", "labels": {"team": "ops", "env": "prod"}},
                  {"match": "+1415*", "labels": {"team": "sales"}},
                  {"match": "+14155550100", "name": "Front desk", "labels": {"floor": "2"}},
                  {"match": "line-1", "name": "Second name", "labels": {"team": "vip"}})
    meta = lab.meta(key("line-1", "+14155550100"))
    assert meta.name == "Front desk"
    assert meta.labels == {"team": "vip", "env": "prod", "floor": "2"}
    assert lab.meta(key("line-2", "+14155550101")) == LineMeta(
        None, {"team": "sales", "env": "prod"})
    assert lab.label_keys == ("env", "floor", "team")


def test_an_entry_for_one_account_leaves_the_same_number_elsewhere_alone() -> None:
    lab = labeler({"match": "+14155550100", "account": "eu", "name": "EU desk"},
                  {"match": "+1415*", "account": "main", "labels": {"team": "us"}})
    assert lab.meta(key("l1", "+14155550100", account="eu")) == LineMeta("EU desk", {})
    assert lab.meta(key("l1", "+14155550100")) == LineMeta(None, {"team": "us"})
    assert lab.meta(key("l2", "+14155550101", account="eu")) == LineMeta()


def test_a_selector_matches_when_all_its_pairs_are_among_the_labels() -> None:
    labels = {"team": "sales", "env": "prod"}
    assert selector_matches({}, labels)
    assert selector_matches({"team": "sales"}, labels)
    assert selector_matches({"team": "sales", "env": "prod"}, labels)
    assert not selector_matches({"team": "sales", "env": "dev"}, labels)
    assert not selector_matches({"region": "sf"}, labels)


# -- linq_reputation_line_info -----------------------------------------------------------------

def state(i: int, *, present: bool = True, account: str = "main") -> LineState:
    return LineState(account, f"id-{i}", f"+1415555{i:04d}", "HEALTHY", None, SINCE,
                     present=present)


def info_samples(metrics: Metrics) -> dict[str, dict[str, str]]:
    """line_id -> labels of its info series, from the parsed exposition."""
    samples = parse_metrics(metrics.render().decode())
    found = {s.labels["line_id"]: s.labels for s in samples if s.name == INFO}
    assert all(s.value == 1 for s in samples if s.name == INFO)
    return found


def test_the_info_series_carries_name_and_every_configured_label_key() -> None:
    metrics = Metrics(labeler=labeler(
        {"match": "+14155550001", "name": 'Desk "A"', "labels": {"team": "sales"}},
        {"match": "id-2", "labels": {"region": "sf"}}))
    metrics.line_series.update([state(i) for i in range(1, 4)])
    metrics.line_info.update([state(i) for i in range(1, 4)])
    info = info_samples(metrics)
    assert info == {
        "id-1": {"account": "main", "line_id": "id-1", "phone_number": "+14155550001",
                 "line_type": "", "name": 'Desk "A"', "label_team": "sales",
                 "label_region": ""},
        "id-2": {"account": "main", "line_id": "id-2", "phone_number": "+14155550002",
                 "line_type": "", "name": "", "label_team": "", "label_region": "sf"},
    }  # id-3 has neither name nor labels: no series


def test_a_removed_line_loses_its_info_series() -> None:
    metrics = Metrics(labeler=labeler({"match": "+1415*", "labels": {"team": "sales"}}))
    metrics.line_info.update([state(i) for i in range(5)])
    assert set(info_samples(metrics)) == {f"id-{i}" for i in range(5)}
    metrics.line_info.update([state(3, present=False)])
    assert set(info_samples(metrics)) == {"id-0", "id-1", "id-2", "id-4"}
    metrics.line_info.update([state(i, present=False) for i in (0, 1, 2, 4)])
    assert INFO not in metrics.render().decode()  # no lines: not even the HELP line


def test_a_fleet_without_lines_config_adds_no_info_series() -> None:
    metrics = Metrics(labeler=labeler())
    metrics.line_info.update([state(i) for i in range(100)])
    assert INFO not in metrics.render().decode()


def test_promtool_accepts_the_info_family() -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not found")
    metrics = Metrics(labeler=labeler({"match": "+1415*", "labels": {"team": "sales"}},
                                      {"match": "id-1", "name": "Front desk"}))
    metrics.line_series.update([state(i) for i in range(20)])
    metrics.line_info.update([state(i) for i in range(20)])
    result = subprocess.run([tool, "check", "metrics"], input=metrics.render(),
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_daemon_exposes_names_and_labels_and_drops_a_line_that_leaves(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_line("+14155550100")
    sim.add_line("+14155550101")
    sim.add_line("+12025550102")
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    config.write_text(config.read_text() + """
[[lines]]
match = "+1415*"
labels = { team = "sales" }

[[lines]]
match = "+14155550100"
name = "Front desk"
""")
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        daemon.wait_for_polls(1)
        info = {s.labels["phone_number"]: s.labels for s in daemon.samples() if s.name == INFO}
        assert set(info) == {"+14155550100", "+14155550101"}
        assert info["+14155550100"]["name"] == "Front desk"
        assert info["+14155550101"]["label_team"] == "sales"

        sim.remove_line("+14155550101")
        wait_until(lambda: [s for s in daemon.samples() if s.name == INFO
                            and s.labels["phone_number"] == "+14155550101"] == [],
                   what="the removed line's info series to go")
        assert any(s.name == INFO and s.labels["phone_number"] == "+14155550100"
                   for s in daemon.samples())
    finally:
        daemon.stop()


def test_the_commented_lines_example_in_the_shipped_config_is_valid(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """config.example.toml shows [[lines]] commented out; uncommented, it must load."""
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    text = example.read_text()
    block = text[text.index("# [[lines]]"):]
    uncommented = "\n".join(line.removeprefix("# ").removeprefix("#")
                            for line in block.splitlines())
    path = tmp_path / "config.toml"
    path.write_text(text[:text.index("# [[lines]]")] + uncommented)
    monkeypatch.setenv("LINQ_API_V3_API_KEY", "tok")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")
    monkeypatch.setenv("PAGERDUTY_URL", "pagerduty://integration-key@api-key")
    config = load_config(path)
    assert len(config.lines) == 3
    lab = Labeler.from_config(config.lines)
    assert lab.meta(key("l1", "+14155550100")) == LineMeta(
        "Front desk", {"team": "reception", "site": "sf", "region": "us"})
