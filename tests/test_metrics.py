"""The /metrics exposition: per-line series, their removal, the cardinality modes, validity."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.model import LineState
from monitor.metrics import Metrics, stream, text

SINCE = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def line(i: int, status: str = "HEALTHY", *, present: bool = True, phone: str | None = None
         ) -> LineState:
    return LineState("main", f"id-{i}", phone or f"+1202555{i:04d}", status, None, SINCE,
                     present=present)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_it_exposes_each_line_as_a_state_set_a_severity_and_a_since_time() -> None:
    metrics = Metrics()
    metrics.line_series.update([line(1, "AT_RISK")])
    key = {"account": "main", "line_id": "id-1", "phone_number": "+12025550001"}
    assert value(metrics, "linq_reputation_line_status", **key, status="AT_RISK") == 1
    assert value(metrics, "linq_reputation_line_status", **key, status="HEALTHY") == 0
    assert value(metrics, "linq_reputation_line_status", **key, status="CRITICAL") == 0
    assert value(metrics, "linq_reputation_line_severity", **key) == 1
    assert value(metrics, "linq_reputation_line_status_since_timestamp_seconds",
                 **key) == SINCE.timestamp()


def test_a_change_shows_on_the_next_scrape_and_a_removed_line_disappears() -> None:
    metrics = Metrics()
    metrics.line_series.update([line(i) for i in range(2000)])
    metrics.render()
    metrics.line_series.update([line(7, "CRITICAL"), line(8, present=False)])
    after = samples(metrics)
    assert after[("linq_reputation_line_severity", frozenset(
        {"account": "main", "line_id": "id-7", "phone_number": "+12025550007"}.items()))] == 2
    assert not any(("line_id", "id-8") in labels for _, labels in after)
    assert sum(1 for name, _ in after if name == "linq_reputation_line_severity") == 1999


def test_a_rendering_on_another_thread_shows_updates_made_before_it_and_none_after() -> None:
    metrics = Metrics()
    metrics.line_series.update([line(i) for i in range(100)])
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(metrics.line_series.pieces).result()
        metrics.line_series.update([line(5, "CRITICAL")])  # after that snapshot
        second = pool.submit(metrics.line_series.pieces).result()
    assert b'line_id="id-5",phone_number="+12025550005"} 0' in text(first)
    assert b'line_id="id-5",phone_number="+12025550005"} 2' in text(second)


def test_an_undocumented_status_gets_its_own_sample_and_severity_3() -> None:
    metrics = Metrics()
    metrics.line_series.update([line(1, "FLAGGED")])
    key = {"account": "main", "line_id": "id-1", "phone_number": "+12025550001"}
    assert value(metrics, "linq_reputation_line_status", **key, status="FLAGGED") == 1
    assert value(metrics, "linq_reputation_line_severity", **key) == 3


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.line_series.update([line(1, 'WEIRD"\\\nSTATUS', phone='+1"\\')])
    statuses = {dict(labels).get("status") for name, labels in samples(metrics)
                if name == "linq_reputation_line_status"}
    assert 'WEIRD"\\\nSTATUS' in statuses


@pytest.mark.parametrize(("mode", "families"), [
    ("full", {"linq_reputation_line_status", "linq_reputation_line_severity",
              "linq_reputation_line_status_since_timestamp_seconds"}),
    ("severity", {"linq_reputation_line_severity"}),
    ("off", set()),
])
def test_the_cardinality_option_keeps_only_what_it_says(mode: str, families: set[str]) -> None:
    metrics = Metrics(per_line=mode)
    metrics.line_series.update([line(i) for i in range(10)])
    per_line = {name for name, labels in samples(metrics) if ("line_id", "id-3") in labels}
    assert per_line == families


def promtool() -> str | None:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    cached = Path(__file__).resolve().parents[1] / ".ci-tools/prometheus/usr/bin/promtool"
    if not found and cached.exists():
        found = str(cached)
    return found


def test_promtool_accepts_the_exposition() -> None:
    tool = promtool()
    if tool is None:
        if os.environ.get("REQUIRE_PROMTOOL") == "1":
            pytest.fail("REQUIRE_PROMTOOL=1 but promtool was not found")
        pytest.skip("promtool not found (bash .ci/run fetches Debian's prometheus package)")
    metrics = Metrics()
    metrics.polls.labels("main", "success").inc()
    metrics.poll_duration.labels("main").observe(0.2)
    metrics.line_series.update([line(i, ("HEALTHY", "AT_RISK", "CRITICAL", "FLAGGED")[i % 4])
                                for i in range(500)])
    result = subprocess.run([tool, "check", "metrics"], input=metrics.render(),
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_counters_exist_at_zero_before_their_first_event() -> None:
    metrics = Metrics()
    metrics.declare(accounts=["main"], channels=["ops"])
    assert value(metrics, "linq_reputation_polls_total", account="main", outcome="error") == 0
    assert value(metrics, "linq_reputation_notifications_total", channel="ops",
                 outcome="gave_up") == 0
    assert value(metrics, "linq_reputation_transitions_total", account="main",
                 from_status="HEALTHY", to_status="CRITICAL") == 0


def test_a_scrape_streams_the_same_text_whatever_the_write_size() -> None:
    metrics = Metrics()
    metrics.line_series.update([line(i, ("HEALTHY", "AT_RISK", "ODD")[i % 3])
                                for i in range(3000)])
    whole = metrics.render()
    for chunk in (1, 1000, 1 << 20):
        assert b"".join(stream(metrics.pieces(), chunk=chunk)) == whole
    assert whole.count(b'linq_reputation_line_status{account="main",line_id="id-2",') == 4
    assert (b'linq_reputation_line_status{account="main",line_id="id-2",'
            b'phone_number="+12025550002",status="ODD"} 1\n') in whole
