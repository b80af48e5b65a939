"""Time-in-status accounting, stepped through by hand, and the report command's output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core.report import Change, account_line

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_it_splits_the_window_by_status_and_measures_recovery() -> None:
    report = account_line("HEALTHY", [Change(at(10), "AT_RISK"), Change(at(12), "CRITICAL"),
                                      Change(at(15), "HEALTHY")], start=T0, end=at(24))
    assert report.seconds == {"HEALTHY": 19 * 3600, "AT_RISK": 2 * 3600, "CRITICAL": 3 * 3600}
    assert (report.changes, report.degradations) == (3, 2)
    assert report.mean_time_to_recover == 5 * 3600


def test_an_episode_open_at_the_window_start_counts_from_the_start() -> None:
    report = account_line("CRITICAL", [Change(at(2), "HEALTHY")], start=T0, end=at(4))
    assert report.recoveries == [2 * 3600]
    assert report.degradations == 0


def test_an_unfinished_episode_has_no_recovery_time() -> None:
    report = account_line("HEALTHY", [Change(at(1), "AT_RISK")], start=T0, end=at(4))
    assert report.mean_time_to_recover is None
    assert report.seconds["AT_RISK"] == 3 * 3600


def test_time_outside_the_account_is_not_counted() -> None:
    report = account_line(None, [Change(at(1), "HEALTHY"), Change(at(2), None),
                                 Change(at(3), "AT_RISK")], start=T0, end=at(4))
    assert report.seconds == {"HEALTHY": 3600, "AT_RISK": 3600}


def test_changes_outside_the_window_are_ignored() -> None:
    report = account_line("HEALTHY", [Change(at(-1), "CRITICAL"), Change(at(5), "AT_RISK")],
                          start=T0, end=at(4))
    assert report.seconds == {"HEALTHY": 4 * 3600}
