"""A real Prometheus (Debian's binary) scrapes the running daemon, which polls the simulator,
with deploy/prometheus/rules.yml loaded: what an operator's Prometheus and Grafana would see.

Nothing sleeps a guessed amount: every test waits, with a deadline, for Prometheus to report
the state it asserts (it scrapes and evaluates rules every second).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.prometheus import ROOT, PrometheusServer, require_tool

pytestmark = pytest.mark.timeout(180)

RULES = ROOT / "deploy/prometheus/rules.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboard.json"
LINES = 10  # one CRITICAL line is 10 %: under the "share AT_RISK or worse" threshold (20 %)


@dataclass
class Stack:
    sim: Simulator
    ids: list[str]
    phones: dict[str, str]  # line id -> phone number
    daemon: DaemonProcess
    prometheus: PrometheusServer

    def severities(self) -> dict[str, float]:
        """linq_reputation_line_severity per line id, as Prometheus answers it."""
        return {r["metric"]["line_id"]: float(r["value"][1])
                for r in self.prometheus.query("linq_reputation_line_severity")}


def fast_copy_of_critical_rule(path: Path) -> Path:
    """The shipped LinqLineCritical rule with ``for: 0s``, in a group of its own.

    Why a copy: the shipped ``for: 5m`` would hold every run of this test for over five
    minutes. The copy keeps the shipped expression, labels and annotations (the test checks
    that only ``for`` differs), so its firing shows that the real expression matches a
    CRITICAL line scraped from the real daemon; the shipped rule itself is checked to be
    pending for that line, on its way to firing.
    """
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    (rule,) = [r for r in group["rules"] if r.get("alert") == "LinqLineCritical"]
    fast = copy.deepcopy(rule)
    fast["for"] = "0s"
    path.write_text(yaml.safe_dump({"groups": [
        {"name": "linq-reputation-for-0s", "rules": [fast]}]}))
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prometheus_binary = require_tool("prometheus")
    sim = Simulator(token="sim-token")
    ids = sim.add_lines(LINES)
    phones = {line["id"]: line["phone_number"] for line in sim.lines()}
    with SimulatorServer(sim) as sim_server:
        config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                              database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
                              poll_interval="1s")
        daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
        host_port = daemon.url.removeprefix("http://")
        rule_files = [RULES, fast_copy_of_critical_rule(tmp_path / "fast-rules.yml")]
        try:
            with PrometheusServer(prometheus_binary, workdir=tmp_path, target=host_port,
                                  rule_files=rule_files) as prometheus:
                yield Stack(sim, ids, phones, daemon, prometheus)
        finally:
            daemon.stop()


def rules_by_name(stack: Stack, group: str) -> dict[str, dict[str, Any]]:
    (found,) = [g for g in stack.prometheus.rule_groups() if g["name"] == group]
    return {r["name"]: r for r in found["rules"]}


def test_it_shows_each_lines_severity_as_scraped_from_the_daemon(stack: Stack) -> None:
    healthy = {line_id: 0.0 for line_id in stack.ids}
    wait_until(lambda: stack.severities() == healthy, timeout=30,
               what="every line HEALTHY (0) in Prometheus")
    assert [r["value"][1] for r in stack.prometheus.query(
        'up{job="reputation-monitor"}')] == ["1"]

    stack.sim.set_status(stack.ids[1], "CRITICAL")
    stack.sim.set_status(stack.ids[2], "AT_RISK")
    expected = {**healthy, stack.ids[1]: 2.0, stack.ids[2]: 1.0}
    wait_until(lambda: stack.severities() == expected, timeout=30,
               what=f"severities {expected} in Prometheus")

    (critical,) = stack.prometheus.query("linq_reputation_line_severity == 2")
    assert critical["metric"]["phone_number"] == stack.phones[stack.ids[1]]
    assert critical["metric"]["account"] == "main"
    counts = {r["metric"]["status"]: float(r["value"][1])
              for r in stack.prometheus.query("linq_reputation_lines")}
    # WATCH (the chat-health early warning) is exported at 0 like every monitor status.
    assert counts == {"HEALTHY": LINES - 2, "WATCH": 0, "AT_RISK": 1, "CRITICAL": 1}


def test_it_loads_the_shipped_rules_and_alerts_on_a_critical_line(stack: Stack) -> None:
    shipped = {r["alert"] for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]}
    wait_until(lambda: stack.severities() == {i: 0.0 for i in stack.ids}, timeout=30,
               what="the first poll in Prometheus")
    def states() -> dict[str, str]:
        return {name: rule["state"] if rule["health"] == "ok" else rule["lastError"]
                for name, rule in rules_by_name(stack, "linq-reputation").items()}

    assert set(states()) == shipped
    # A healthy fleet, polled and scraped: once Prometheus has scraped the daemon (before
    # that, LinqMonitorDown's absent(up) is briefly pending), nothing is pending or firing.
    wait_until(lambda: states() == dict.fromkeys(shipped, "inactive"), timeout=30,
               what="every shipped rule evaluated without error, and inactive")

    line = stack.ids[3]
    stack.sim.set_status(line, "CRITICAL")

    def critical_alert(group: str, state: str) -> dict[str, Any] | None:
        rule = rules_by_name(stack, group)["LinqLineCritical"]
        return next((a for a in rule["alerts"] if a["state"] == state), None)

    fired = wait_until(lambda: critical_alert("linq-reputation-for-0s", "firing"),
                       timeout=30, what="the CRITICAL-line rule to fire")
    assert fired["labels"]["line_id"] == line
    assert fired["labels"]["severity"] == "critical"
    assert fired["annotations"]["summary"] == (
        f"Line {stack.phones[line]} (main) has been CRITICAL for 5 minutes")

    pending = wait_until(lambda: critical_alert("linq-reputation", "pending"),
                         timeout=30, what="the shipped CRITICAL-line rule to be pending")
    assert pending["labels"]["line_id"] == line
    real = rules_by_name(stack, "linq-reputation")
    assert real["LinqLineCritical"]["duration"] == 300
    assert len(real["LinqLineCritical"]["alerts"]) == 1  # only that line
    fast = rules_by_name(stack, "linq-reputation-for-0s")["LinqLineCritical"]
    assert {k: v for k, v in fast.items() if k in ("query", "labels", "annotations")} == {
        k: v for k, v in real["LinqLineCritical"].items()
        if k in ("query", "labels", "annotations")}

    # Prometheus's own alerts API agrees.
    alerts = stack.prometheus.api("alerts")["alerts"]
    assert {(a["labels"]["alertname"], a["labels"]["line_id"], a["state"])
            for a in alerts} == {("LinqLineCritical", line, "firing"),
                                 ("LinqLineCritical", line, "pending")}


GRAFANA_VARIABLES = {
    # Grafana's built-ins, as it would substitute them for a 1-hour range.
    "$__rate_interval": "1m", "$__interval": "15s", "$__range_s": "3600",
    "$__range": "1h",
    # The dashboard's own variables with "All" selected.
    "$account": ".*", "$line": ".*",
}


def as_prometheus_sees_it(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def test_every_dashboard_query_runs_on_prometheus_and_the_main_panels_show_the_lines(
        stack: Stack) -> None:
    stack.sim.set_status(stack.ids[0], "CRITICAL")
    stack.sim.set_status(stack.ids[4], "AT_RISK")
    wait_until(lambda: stack.severities().get(stack.ids[4]) == 1.0, timeout=30,
               what="the AT_RISK line in Prometheus")

    by_title: dict[str, list[list[dict[str, Any]]]] = {}
    for title, expr in dashboard_targets():
        by_title.setdefault(title, []).append(stack.prometheus.query(as_prometheus_sees_it(expr)))

    (timeline,) = by_title["Line status"]
    assert {r["metric"]["phone_number"]: r["value"][1] for r in timeline} == {
        stack.phones[i]: {stack.ids[0]: "2", stack.ids[4]: "1"}.get(i, "0")
        for i in stack.ids}
    worst, since = by_title["Worst lines now"]
    assert [r["metric"]["phone_number"] for r in worst] == [
        stack.phones[stack.ids[0]], stack.phones[stack.ids[4]]]
    assert {r["metric"]["phone_number"] for r in since} == {
        stack.phones[stack.ids[0]], stack.phones[stack.ids[4]]}
    (last_poll,) = by_title["Last poll"]
    assert [(r["metric"]["account"], r["value"][1]) for r in last_poll] == [("main", "1")]

    # The template variables, as Grafana's label_values() asks for them.
    dashboard = json.loads(DASHBOARD.read_text())
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        values = stack.prometheus.api(f"label/{match[2]}/values",
                                      **{"match[]": as_prometheus_sees_it(match[1])})
        expected = ["main"] if variable["name"] == "account" else sorted(
            stack.phones.values())
        assert values == expected, variable["name"]
