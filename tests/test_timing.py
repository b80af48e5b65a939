"""When a channel's queued notices go out: grouping and quiet hours, as pure decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from monitor.core.model import Entry, Message, NoticeKind
from monitor.core.timing import ChannelTiming, DueRow, plan_delivery, quiet_until

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
QUIET = ChannelTiming(quiet_hours=(time(22, 0), time(7, 0)), timezone="Europe/Paris")


def row(row_id: int, line: str, to_status: str, kind: NoticeKind = NoticeKind.DEGRADED, *,
        created: datetime = T0, due: datetime | None = None, deferred: bool = False) -> DueRow:
    entry = Entry(kind, "sales", line, f"+1{line}", "HEALTHY", to_status, created, None, None)
    return DueRow(row_id, line, created, entry, None, next_attempt_at=due or created,
                  deferred=deferred)


def test_rows_wait_for_group_wait_then_go_out_as_one_message() -> None:
    timing = ChannelTiming(group_wait=timedelta(seconds=5))
    rows = [row(i, f"L{i}", "AT_RISK", created=T0 + timedelta(seconds=i % 3))
            for i in range(500)]
    assert plan_delivery(rows, timing, T0 + timedelta(seconds=4)).batches == []
    plan = plan_delivery(rows, timing, T0 + timedelta(seconds=5))
    assert len(plan.batches) == 1 and len(plan.batches[0]) == 500


def test_critical_can_skip_the_wait_and_takes_the_rest_along() -> None:
    timing = ChannelTiming(group_wait=timedelta(seconds=30), critical_skips_group_wait=True)
    rows = [row(1, "A", "AT_RISK"), row(2, "B", "CRITICAL")]
    (batch,) = plan_delivery(rows, timing, T0).batches
    assert [r.id for r in batch] == [1, 2]


def test_a_line_waiting_for_a_retry_holds_back_its_newer_rows_only() -> None:
    rows = [row(1, "A", "AT_RISK", due=T0 + timedelta(minutes=1)), row(2, "A", "CRITICAL"),
            row(3, "B", "AT_RISK")]
    (batch,) = plan_delivery(rows, ChannelTiming(), T0).batches
    assert [r.id for r in batch] == [3]


def test_quiet_hours_wrap_midnight_in_the_channel_time_zone() -> None:
    # 22:30 in Paris (UTC+1 in November) is 21:30 UTC; quiet until 07:00 Paris = 06:00 UTC.
    assert quiet_until(datetime(2026, 11, 27, 21, 30, tzinfo=UTC), QUIET) == datetime(
        2026, 11, 28, 6, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 28, 5, 59, tzinfo=UTC), QUIET) == datetime(
        2026, 11, 28, 6, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 28, 6, 0, tzinfo=UTC), QUIET) is None
    assert quiet_until(datetime(2026, 11, 27, 20, 59, tzinfo=UTC), QUIET) is None


def test_quiet_hours_defer_non_critical_and_let_critical_through() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    plan = plan_delivery([row(1, "A", "AT_RISK", created=night),
                          row(2, "B", "CRITICAL", created=night)], QUIET, night)
    assert plan.defer == [1] and plan.defer_until == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    assert [[r.id for r in b] for b in plan.batches] == [[2]]
    held = plan_delivery([row(1, "A", "CRITICAL", created=night)],
                         ChannelTiming(quiet_hours=QUIET.quiet_hours, timezone="Europe/Paris",
                                       defer_critical=True), night)
    assert held.defer == [1] and held.batches == []


def test_the_end_of_quiet_hours_is_one_summary_without_lines_that_recovered() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    morning = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    rows = [row(1, "A", "AT_RISK", created=night, due=morning, deferred=True),
            row(2, "B", "AT_RISK", created=night, due=morning, deferred=True),
            row(3, "B", "HEALTHY", NoticeKind.RECOVERED, created=night, due=morning,
                deferred=True),
            row(4, "C", "AT_RISK", created=night, due=morning, deferred=True)]
    plan = plan_delivery(rows, QUIET, morning)
    assert plan.drop == [2, 3]
    assert [[r.id for r in b] for b in plan.batches] == [[1, 4]]


def test_critical_news_during_quiet_hours_supersedes_what_was_parked_for_that_line() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    rows = [row(1, "A", "AT_RISK", created=night, due=datetime(2026, 11, 28, 6, tzinfo=UTC),
                deferred=True),
            row(2, "A", "CRITICAL", created=night + timedelta(minutes=5))]
    plan = plan_delivery(rows, QUIET, night + timedelta(minutes=5))
    assert plan.drop == [1] and [[r.id for r in b] for b in plan.batches] == [[2]]


def test_a_flagged_line_is_as_urgent_as_a_critical_one_whatever_its_reputation() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    flagged = row(2, "B", "AT_RISK", created=night)
    assert flagged.entry is not None
    flagged = replace(flagged, entry=replace(flagged.entry, service="FLAGGED"))
    plan = plan_delivery([row(1, "A", "AT_RISK", created=night), flagged], QUIET, night)
    assert plan.defer == [1]  # quiet hours hold the AT_RISK line, not the flagged one
    assert [[r.id for r in b] for b in plan.batches] == [[2]]
    skips = ChannelTiming(group_wait=timedelta(seconds=30), critical_skips_group_wait=True)
    (batch,) = plan_delivery([replace(flagged, created_at=T0, next_attempt_at=T0)], skips,
                             T0).batches
    assert [r.id for r in batch] == [2]


def test_the_monitors_own_trouble_is_routed_like_critical_through_quiet_hours() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    trouble = DueRow(7, "", night, None, Message("[MONITOR] polls failing", "..."),
                     next_attempt_at=night)
    plan = plan_delivery([row(1, "A", "AT_RISK", created=night), trouble], QUIET, night)
    assert plan.defer == [1] and [[r.id for r in b] for b in plan.batches] == [[7]]
    defer_all = replace(QUIET, defer_critical=True)
    held = plan_delivery([trouble], defer_all, night)
    assert held.defer == [7] and held.batches == []
    # At the end of quiet hours it goes out on its own, beside the summary, and what was
    # parked for lines stays parked for them.
    morning = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    ended = plan_delivery([replace(trouble, deferred=True, next_attempt_at=morning),
                           row(2, "B", "AT_RISK", created=night, due=morning, deferred=True)],
                          defer_all, morning)
    assert [[r.id for r in b] for b in ended.batches] == [[7], [2]] and ended.drop == []


def test_a_parked_row_another_deliverer_is_sending_holds_back_its_line() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    morning = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    sending = replace(row(1, "A", "AT_RISK", created=night, due=morning, deferred=True),
                      claimed_until=morning + timedelta(minutes=1))
    plan = plan_delivery([sending, row(2, "A", "CRITICAL", created=morning)], QUIET, morning)
    assert plan.batches == [] and plan.drop == [] and plan.defer == []


def test_news_that_passes_quiet_hours_drops_only_the_older_rows_held_for_its_line() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    rows = [row(1, "A", "AT_RISK", created=night), row(2, "A", "CRITICAL", created=night),
            row(3, "A", "AT_RISK", NoticeKind.IMPROVED, created=night)]
    plan = plan_delivery(rows, QUIET, night)
    assert [[r.id for r in b] for b in plan.batches] == [[2]]
    assert plan.drop == [1] and plan.defer == [3]


def test_a_finished_message_supersedes_nothing_that_is_parked() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    morning = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    # Parked while the channel deferred everything; the config has since let CRITICAL pass.
    parked = DueRow(7, "", night, None, Message("[MONITOR] polls failing", "..."),
                    next_attempt_at=morning, deferred=True)
    fresh = DueRow(8, "", night, None, Message("[MONITOR] polls failing", "..."),
                   next_attempt_at=night)
    plan = plan_delivery([parked, fresh], QUIET, night)
    assert [[r.id for r in b] for b in plan.batches] == [[8]] and plan.drop == []


def test_a_parked_row_whose_old_claim_expired_is_still_superseded_by_critical_news() -> None:
    night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    morning = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    # Claimed once (a failed send), then parked: the stale claim blocks nothing.
    parked = replace(row(1, "A", "AT_RISK", created=night, due=morning, deferred=True),
                     claimed_until=night - timedelta(minutes=1))
    plan = plan_delivery([parked, row(2, "A", "CRITICAL", created=night)], QUIET, night)
    assert plan.drop == [1] and [[r.id for r in b] for b in plan.batches] == [[2]]
