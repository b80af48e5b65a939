"""Sequence tests of the alert policy: feed observations and a clock, assert what is sent when.

``Line`` runs a line through the same pure functions the poller and the policy tick use
(detect_line → note_change → reconcile on a poll; settle → reconcile on a tick).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core.detect import NO_DEBOUNCE, Debounce, detect_line
from monitor.core.model import LineMeta, LineState, Notice, NoticeKind, Observation
from monitor.core.policy import (
    NO_META,
    AlertPolicy,
    ChannelRule,
    needs_review,
    note_change,
    reconcile,
    settle,
)
from monitor.core.render import render_entries

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OPS = ChannelRule("ops", 1)  # AT_RISK and worse
PAGER = ChannelRule("pager", 2)  # CRITICAL and worse
DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical"


class Line:
    def __init__(self, policy: AlertPolicy, *, debounce: Debounce = NO_DEBOUNCE,
                 meta: LineMeta = NO_META) -> None:
        self.policy = policy
        self.debounce = debounce
        self.meta = meta
        self.state: LineState | None = None
        self.silenced = False
        self.sent: list[tuple[int, str, NoticeKind, str]] = []  # (minute, channel, kind, to)
        self.silenced_log: list[tuple[int, str, NoticeKind]] = []

    def poll(self, minute: int, status: str) -> list[Notice]:
        now = T0 + timedelta(minutes=minute)
        self.state, transition = detect_line(self.state, Observation("L1", "+12025550100",
                                                                     status, DOC),
                                             account="sales", now=now, debounce=self.debounce)
        notices: list[Notice] = []
        if transition is not None and self.state is not None:
            flapping, self.state = note_change(self.state, transition, self.policy,
                                               meta=self.meta, silenced=self.silenced)
            found, self.state = reconcile(self.state, self.policy, now=now, meta=self.meta,
                                          silenced=self.silenced, transition=transition)
            notices = flapping + found
        return self._record(minute, notices)

    def tick(self, minute: int) -> list[Notice]:
        assert self.state is not None
        if not needs_review(self.state, self.policy):
            return []
        now = T0 + timedelta(minutes=minute)
        settled, self.state = settle(self.state, self.policy, now=now, meta=self.meta,
                                     silenced=self.silenced)
        found, self.state = reconcile(self.state, self.policy, now=now, meta=self.meta,
                                      silenced=self.silenced)
        return self._record(minute, settled + found)

    def _record(self, minute: int, notices: list[Notice]) -> list[Notice]:
        for n in notices:
            if n.silenced:
                self.silenced_log.append((minute, n.channel, n.kind))
            else:
                self.sent.append((minute, n.channel, n.kind, n.entry.to_status))
        return notices


def test_defaults_alert_every_confirmed_change_to_the_channels_engaged() -> None:
    line = Line(AlertPolicy(channels=(OPS, PAGER)))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    line.poll(2, "CRITICAL")
    line.poll(3, "AT_RISK")
    line.poll(4, "HEALTHY")
    assert line.sent == [
        (1, "ops", NoticeKind.DEGRADED, "AT_RISK"),
        (2, "ops", NoticeKind.DEGRADED, "CRITICAL"),
        (2, "pager", NoticeKind.DEGRADED, "CRITICAL"),
        (3, "ops", NoticeKind.IMPROVED, "AT_RISK"),  # improving, not resolved
        (3, "pager", NoticeKind.RECOVERED, "AT_RISK"),  # below the pager's min_status
        (4, "ops", NoticeKind.RECOVERED, "HEALTHY"),
    ]


def test_every_notice_carries_from_to_time_in_previous_and_the_doc_url() -> None:
    line = Line(AlertPolicy(channels=(OPS,)), meta=LineMeta("Sales 1", {"team": "sales"}))
    line.poll(0, "HEALTHY")
    (notice,) = line.poll(90, "AT_RISK")
    entry = notice.entry
    assert (entry.from_status, entry.to_status, entry.phone_number) == ("HEALTHY", "AT_RISK",
                                                                       "+12025550100")
    assert entry.time_in_previous == timedelta(minutes=90)
    assert entry.doc_url == DOC and entry.name == "Sales 1" and entry.labels == {"team": "sales"}


def test_confirm_polls_holds_a_worse_status_until_it_has_been_seen_that_many_times() -> None:
    line = Line(AlertPolicy(channels=(OPS,)), debounce=Debounce(confirm_polls=3))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    line.poll(2, "AT_RISK")
    line.poll(3, "HEALTHY")  # a blip: the candidate is dropped, nothing was said
    assert line.sent == []
    line.poll(4, "AT_RISK")
    line.poll(5, "AT_RISK")
    (notice,) = line.poll(6, "AT_RISK")
    assert line.sent == [(6, "ops", NoticeKind.DEGRADED, "AT_RISK")]
    # The change is dated from its first sighting, so "time in HEALTHY" stays truthful.
    assert notice.entry.at == T0 + timedelta(minutes=4)
    assert line.state is not None and line.state.since == T0 + timedelta(minutes=4)


def test_recover_polls_is_separate_from_confirm_polls() -> None:
    line = Line(AlertPolicy(channels=(OPS,)), debounce=Debounce(confirm_polls=1, recover_polls=2))
    line.poll(0, "HEALTHY")
    line.poll(1, "CRITICAL")
    line.poll(2, "HEALTHY")
    line.poll(3, "CRITICAL")  # the recovery candidate is dropped
    line.poll(4, "HEALTHY")
    line.poll(5, "HEALTHY")
    assert line.sent == [(1, "ops", NoticeKind.DEGRADED, "CRITICAL"),
                         (5, "ops", NoticeKind.RECOVERED, "HEALTHY")]


def test_a_flapping_line_says_so_once_goes_quiet_then_says_where_it_settled() -> None:
    policy = AlertPolicy(channels=(OPS, PAGER), flap_changes=3, flap_window=timedelta(minutes=30))
    line = Line(policy)
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    line.poll(2, "HEALTHY")
    line.poll(3, "AT_RISK")
    flapping = line.poll(4, "HEALTHY")  # the 4th change within 30m: flapping
    assert {(n.channel, n.kind) for n in flapping} == {("ops", NoticeKind.FLAPPING)}
    assert [s for _, s in flapping[0].entry.sequence] == ["AT_RISK", "HEALTHY", "AT_RISK",
                                                          "HEALTHY"]
    for minute in range(5, 12):
        line.poll(minute, "AT_RISK" if minute % 2 else "HEALTHY")
    line.poll(12, "AT_RISK")
    assert [s for s in line.sent if s[0] > 4] == []  # no per-change alerts while flapping
    assert line.tick(30) == []  # not yet stable for 30m
    settled = line.tick(42)
    assert [(n.channel, n.kind, n.entry.to_status) for n in settled] == [
        ("ops", NoticeKind.SETTLED, "AT_RISK")]
    assert line.state is not None and not line.state.flapping
    assert line.state.told.keys() == {"ops"}  # it heard where the line is now
    line.poll(50, "HEALTHY")
    assert line.sent[-1] == (50, "ops", NoticeKind.RECOVERED, "HEALTHY")


def test_reminders_repeat_at_the_interval_and_stop_on_recovery() -> None:
    ops = ChannelRule("ops", 1, repeat_interval=timedelta(hours=1))
    line = Line(AlertPolicy(channels=(ops,)))
    line.poll(0, "HEALTHY")
    line.poll(10, "AT_RISK")
    assert line.tick(60) == []
    (reminder,) = line.tick(70)
    assert reminder.kind is NoticeKind.REMINDER
    assert reminder.entry.degraded_since == T0 + timedelta(minutes=10)
    assert line.tick(75) == [] and len(line.tick(130)) == 1
    line.poll(140, "HEALTHY")
    assert line.tick(300) == []
    assert [k for _, _, k, _ in line.sent] == [NoticeKind.DEGRADED, NoticeKind.REMINDER,
                                               NoticeKind.REMINDER, NoticeKind.RECOVERED]


def test_a_reminder_says_when_the_line_changed_and_how_long_it_was_healthy_before() -> None:
    ops = ChannelRule("ops", 1, repeat_interval=timedelta(hours=4))
    line = Line(AlertPolicy(channels=(ops,)))
    line.poll(0, "HEALTHY")
    line.poll(6 * 24 * 60, "AT_RISK")  # HEALTHY for six days, then AT_RISK
    (reminder,) = line.tick(6 * 24 * 60 + 4 * 60)
    body = render_entries([reminder.entry], now=T0 + timedelta(days=6, hours=4)).body
    assert "Changed at: 2026-12-03 09:00:00 UTC" in body  # the change, not the reminder
    assert "Time in HEALTHY: 6d" in body  # not 6d 4h: the AT_RISK hours are not HEALTHY's
    assert "Reminder: still AT_RISK for 4h" in body


def test_a_settled_notice_dates_the_status_it_settled_at() -> None:
    policy = AlertPolicy(channels=(OPS,), flap_changes=2, flap_window=timedelta(minutes=30))
    line = Line(policy)
    for minute, status in enumerate(("HEALTHY", "AT_RISK", "HEALTHY", "AT_RISK")):
        line.poll(minute, status)
    (settled,) = line.tick(40)
    body = render_entries([settled.entry], now=T0 + timedelta(minutes=40)).body
    assert "Changed at: 2026-11-27 09:03:00 UTC" in body
    assert "Time in HEALTHY: 1m" in body
    assert "Settled at AT_RISK (since 2026-11-27 09:03:00 UTC)" in body


def test_a_reminder_overdue_after_downtime_is_sent_once_not_once_per_missed_interval() -> None:
    ops = ChannelRule("ops", 1, repeat_interval=timedelta(hours=1))
    line = Line(AlertPolicy(channels=(ops,)))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    # Ten hours without a tick (the daemon was down), then two ticks in a row.
    assert len(line.tick(600)) == 1 and line.tick(601) == []


def test_an_escalating_channel_hears_only_of_lines_degraded_for_long_enough() -> None:
    pager = ChannelRule("pager", 2, escalate_after=timedelta(minutes=30))
    line = Line(AlertPolicy(channels=(OPS, pager)))
    line.poll(0, "HEALTHY")
    line.poll(1, "CRITICAL")
    line.poll(10, "HEALTHY")  # a short episode: the pager never hears of it
    assert line.tick(45) == []
    line.poll(50, "CRITICAL")
    assert line.tick(70) == []
    (escalated,) = line.tick(81)
    assert escalated.channel == "pager" and escalated.kind is NoticeKind.DEGRADED
    assert escalated.entry.reason is not None and "Escalated" in escalated.entry.reason
    line.poll(90, "HEALTHY")
    assert [(c, k) for _, c, k, _ in line.sent if c == "pager"] == [
        ("pager", NoticeKind.DEGRADED), ("pager", NoticeKind.RECOVERED)]


def test_silenced_changes_are_recorded_not_sent_and_the_end_of_a_silence_speaks_once() -> None:
    line = Line(AlertPolicy(channels=(OPS,)))
    line.poll(0, "HEALTHY")
    line.silenced = True
    line.poll(1, "AT_RISK")
    line.poll(2, "CRITICAL")
    assert line.sent == []
    assert line.silenced_log == [(1, "ops", NoticeKind.DEGRADED), (2, "ops", NoticeKind.DEGRADED)]
    assert line.tick(3) == []
    line.silenced = False
    (notice,) = line.tick(4)
    assert notice.entry.to_status == "CRITICAL"
    assert "silence on this line ended" in str(notice.entry.reason)
    assert line.tick(5) == []  # once


def test_a_recovery_during_a_silence_is_said_once_the_silence_ends() -> None:
    line = Line(AlertPolicy(channels=(OPS,)))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")  # announced
    line.silenced = True  # e.g. silenced after the page, to stop reminders
    line.poll(5, "HEALTHY")
    assert line.silenced_log == [(5, "ops", NoticeKind.RECOVERED)]
    assert line.tick(6) == [] and line.tick(7) == []  # recorded once, held while silenced
    line.silenced = False
    (recovered,) = line.tick(8)
    assert recovered.kind is NoticeKind.RECOVERED and recovered.entry.to_status == "HEALTHY"
    assert "recovered during a silence" in str(recovered.entry.reason)
    assert line.tick(9) == []  # once
    assert [k for _, _, k, _ in line.sent] == [NoticeKind.DEGRADED, NoticeKind.RECOVERED]


def test_a_line_that_recovered_and_degraded_again_during_a_silence_is_told_as_degraded() -> None:
    line = Line(AlertPolicy(channels=(OPS,)))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    line.silenced = True
    line.poll(5, "HEALTHY")
    line.poll(6, "CRITICAL")
    line.silenced = False
    (notice,) = line.tick(8)
    assert notice.entry.to_status == "CRITICAL"
    assert "silence on this line ended" in str(notice.entry.reason)
    assert line.tick(9) == []


def test_a_line_that_went_and_came_back_during_a_silence_produces_nothing() -> None:
    line = Line(AlertPolicy(channels=(OPS,)))
    line.poll(0, "HEALTHY")
    line.silenced = True
    line.poll(1, "AT_RISK")
    line.poll(2, "HEALTHY")
    line.silenced = False
    assert line.tick(3) == [] and line.sent == []


def test_channels_select_lines_by_account_and_labels() -> None:
    sales_only = ChannelRule("sales", 1, labels={"team": "sales"})
    other_account = ChannelRule("other", 1, accounts=frozenset({"support"}))
    line = Line(AlertPolicy(channels=(sales_only, other_account)),
                meta=LineMeta(None, {"team": "sales"}))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    assert [c for _, c, _, _ in line.sent] == ["sales"]
    unlabelled = Line(AlertPolicy(channels=(sales_only,)))
    unlabelled.poll(0, "HEALTHY")
    unlabelled.poll(1, "AT_RISK")
    assert unlabelled.sent == []


def absent(line: Line, minute: int) -> None:
    """A poll in which the line is missing from its account, through the poller's path."""
    now = T0 + timedelta(minutes=minute)
    line.state, transition = detect_line(line.state, None, account="sales", now=now)
    assert line.state is not None and transition is not None
    found, line.state = reconcile(line.state, line.policy, now=now, transition=transition)
    assert found == []  # a removed line is frozen


def test_it_sends_no_recovery_with_notify_recovery_off_and_the_next_episode_is_news() -> None:
    line = Line(AlertPolicy(channels=(OPS,), notify_recovery=False))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    assert line.poll(2, "HEALTHY") == []
    assert line.state is not None and not line.state.told  # the episode is over for ops
    line.poll(3, "AT_RISK")
    assert line.sent == [(1, "ops", NoticeKind.DEGRADED, "AT_RISK"),
                         (3, "ops", NoticeKind.DEGRADED, "AT_RISK")]


def test_a_reminder_due_during_a_silence_waits_for_the_silence_to_end() -> None:
    ops = ChannelRule("ops", 1, repeat_interval=timedelta(hours=1))
    line = Line(AlertPolicy(channels=(ops,)))
    line.poll(0, "HEALTHY")
    line.poll(10, "AT_RISK")
    line.silenced = True
    assert line.tick(70) == [] and line.tick(100) == []
    assert line.silenced_log == []  # a reminder is not news: not even recorded
    line.silenced = False
    (reminder,) = line.tick(101)
    assert reminder.kind is NoticeKind.REMINDER and not reminder.silenced


def test_an_escalating_channel_still_waits_for_escalate_after_when_a_silence_ends() -> None:
    pager = ChannelRule("pager", 2, escalate_after=timedelta(minutes=30))
    line = Line(AlertPolicy(channels=(pager,)))
    line.poll(0, "HEALTHY")
    line.silenced = True
    line.poll(1, "CRITICAL")
    assert line.silenced_log == [(1, "pager", NoticeKind.DEGRADED)]
    line.silenced = False
    assert line.tick(10) == [] and line.tick(30) == []  # engaged for 29m only
    (notice,) = line.tick(31)
    assert notice.kind is NoticeKind.DEGRADED and notice.entry.to_status == "CRITICAL"
    assert "silence on this line ended" in str(notice.entry.reason)
    assert line.tick(32) == []


def test_a_channel_that_heard_an_escalation_hears_later_changes_without_that_reason() -> None:
    ops = ChannelRule("ops", 1, escalate_after=timedelta(minutes=30))
    line = Line(AlertPolicy(channels=(ops,)))
    line.poll(0, "HEALTHY")
    line.poll(1, "AT_RISK")
    (escalated,) = line.tick(31)
    assert "Escalated" in str(escalated.entry.reason)
    (worse,) = line.poll(40, "CRITICAL")
    assert worse.kind is NoticeKind.DEGRADED and worse.entry.reason is None


def test_a_line_back_in_the_account_says_so_to_the_channels_it_engages() -> None:
    line = Line(AlertPolicy(channels=(OPS,)))
    line.poll(0, "HEALTHY")
    absent(line, 1)
    (notice,) = line.poll(2, "AT_RISK")
    assert notice.kind is NoticeKind.DEGRADED and notice.entry.to_status == "AT_RISK"
    assert notice.entry.reason == "The line is back in the account after being absent."
