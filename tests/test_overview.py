"""The status page's overview selection and timeline (monitor/core/overview.py), as values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.model import LineState
from monitor.core.overview import Filters, select, sort_key, ticks, timeline

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
STATUSES = ["HEALTHY", "HEALTHY", "HEALTHY", "AT_RISK", "CRITICAL", "WATCH", "SOMETHING_NEW"]


def fleet(count: int, seed: int = 7) -> list[LineState]:
    rng = random.Random(seed)
    return [LineState(account=rng.choice(["main", "eu"]), line_id=f"id-{i}",
                      phone_number=f"+1555{i:07d}", status=rng.choice(STATUSES), doc_url=None,
                      since=NOW - timedelta(minutes=rng.randrange(10_000)),
                      service_status=rng.choice([None, None, "ACTIVE", "FLAGGED"]))
            for i in range(count)]


def labels(state: LineState) -> dict[str, str]:
    return {"team": "sales"} if state.phone_number.endswith(("1", "2")) else {}


def name(state: LineState) -> str | None:
    return "Front Desk" if state.phone_number.endswith("3") else None


@pytest.mark.parametrize("offset", [0, 50, 300, 950, 2000])
def test_it_pages_through_every_line_worst_first_exactly_as_one_full_sort_would(
        offset: int) -> None:
    states = fleet(1000)
    chosen = select(states, Filters(), offset=offset, limit=50, labels_for=labels,
                    name_for=name)
    assert chosen.lines == sorted(states, key=sort_key)[offset:offset + 50]
    assert chosen.matched == 1000


def test_it_puts_unknown_statuses_first_then_critical_then_flagged_lines_within_a_status(
        ) -> None:
    states = fleet(400)
    page = select(states, Filters(), offset=0, limit=400, labels_for=labels,
                  name_for=name).lines
    order = [s.status for s in page]
    assert order.index("CRITICAL") > max(i for i, s in enumerate(order) if s == "SOMETHING_NEW")
    critical = [s for s in page if s.status == "CRITICAL"]
    flags = [s.service_status == "FLAGGED" for s in critical]
    assert flags == sorted(flags, reverse=True)


def test_it_counts_every_line_per_account_and_status_whatever_the_filters() -> None:
    states = fleet(500)
    chosen = select(states, Filters(account="eu", status="CRITICAL"), offset=0, limit=10,
                    labels_for=labels, name_for=name)
    for account in ("main", "eu"):
        for status in set(STATUSES):
            assert chosen.counts[account][status] == sum(
                1 for s in states if s.account == account and s.status == status)
        assert chosen.flagged[account] == sum(
            1 for s in states if s.account == account and s.service_status == "FLAGGED")
    assert all(s.account == "eu" and s.status == "CRITICAL" for s in chosen.lines)
    assert chosen.matched == sum(1 for s in states if s.account == "eu" and s.status == "CRITICAL")


@pytest.mark.parametrize(("filters", "expected"), [
    (Filters(status="FLAGGED"), lambda s: s.service_status == "FLAGGED"),
    (Filters(label="team=sales"), lambda s: bool(labels(s))),
    (Filters(label="team"), lambda s: bool(labels(s))),
    (Filters(label="team=support"), lambda s: False),
    (Filters(text="front desk"), lambda s: name(s) is not None),
    (Filters(text="5550000012"), lambda s: "5550000012" in s.phone_number),
    (Filters(text="ID-7"), lambda s: s.line_id.startswith("id-7")),
])
def test_each_filter_keeps_exactly_the_lines_it_names(filters: Filters, expected) -> None:
    states = fleet(300)
    chosen = select(states, filters, offset=0, limit=1000, labels_for=labels, name_for=name)
    assert sorted(s.line_id for s in chosen.lines) == sorted(
        s.line_id for s in states if expected(s))


def test_the_timeline_covers_the_window_with_each_status_in_turn() -> None:
    start = NOW - timedelta(days=10)
    segments = timeline("HEALTHY", [(NOW - timedelta(days=5), "CRITICAL"),
                                    (NOW - timedelta(days=1), None)],
                        start=start, end=NOW)
    assert [(s.status, s.x, s.width) for s in segments] == [
        ("HEALTHY", 0.0, 50.0), ("CRITICAL", 50.0, 40.0), (None, 90.0, 10.0)]


def test_a_status_held_for_seconds_of_a_long_window_is_still_visible_and_inside_it() -> None:
    start = NOW - timedelta(days=90)
    segments = timeline(None, [(NOW - timedelta(seconds=30), "CRITICAL")], start=start, end=NOW)
    last = segments[-1]
    assert last.status == "CRITICAL" and last.width > 0.3 and last.x + last.width <= 100
    assert [t for _, t in ticks(start, NOW, count=6)][::6] == [start, NOW]
