"""A webhook's status update through the alert policy (pure): FLAGGED is a level above
CRITICAL for routing, reminders and silences; one event is one round of notices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor.core import status as st
from monitor.core.event import EventPlan, plan_status_update
from monitor.core.model import LineState, Notice, NoticeKind, Told, TransitionKind
from monitor.core.policy import AlertPolicy, ChannelRule, reconcile
from monitor.core.render import render_entries, render_entry
from monitor.core.service import LEVEL

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
POLICY = AlertPolicy(channels=(
    ChannelRule("ops", st.rank(st.AT_RISK)),
    ChannelRule("pager", st.rank(st.CRITICAL), repeat_interval=timedelta(hours=1)),
))


def line(status: str = "AT_RISK", **told: str) -> LineState:
    return LineState(account="main", line_id="L1", phone_number="+12025550101", status=status,
                     doc_url="https://docs.linqapp.com/x", since=T0, previous_status="HEALTHY",
                     previous_since=T0 - timedelta(days=2), degraded_since=T0,
                     told={name: Told(heard, T0) for name, heard in told.items()})


def update(state: LineState, *, at: datetime, reputation: str | None = None,
           service: str | None = None, silenced: bool = False) -> EventPlan:
    return plan_status_update(state, new_reputation=reputation, new_status=service,
                              changed_at=at, received_at=at + MINUTE, now=at + MINUTE,
                              policy=POLICY, silenced=silenced)


def heard(notices: list[Notice]) -> list[tuple[str, NoticeKind, str | None]]:
    return [(n.channel, n.kind, n.entry.service) for n in notices]


def test_flagged_reaches_every_channel_that_hears_critical_and_says_pause() -> None:
    plan = update(line(ops="AT_RISK"), at=T0 + 10 * MINUTE, service="FLAGGED")
    assert [t.kind for t in plan.transitions] == [TransitionKind.SERVICE]
    assert heard(plan.notices) == [("ops", NoticeKind.DEGRADED, "FLAGGED"),
                                   ("pager", NoticeKind.DEGRADED, "FLAGGED")]
    message = render_entry(plan.notices[1].entry, now=T0 + 11 * MINUTE)
    assert message.title.startswith("[FLAGGED] +12025550101 flagged: service status ACTIVE")
    assert "Service status: ACTIVE → FLAGGED" in message.body
    assert "pause outbound" in message.body
    assert plan.state.told["pager"].status == LEVEL


def test_active_again_is_a_recovery_below_min_status_and_an_improvement_above() -> None:
    flagged = update(line(ops="AT_RISK"), at=T0 + 10 * MINUTE, service="FLAGGED").state
    plan = update(flagged, at=T0 + 30 * MINUTE, service="ACTIVE")
    # ops still hears AT_RISK lines: improving; pager only hears CRITICAL: recovered.
    assert heard(plan.notices) == [("ops", NoticeKind.IMPROVED, "ACTIVE"),
                                   ("pager", NoticeKind.RECOVERED, "ACTIVE")]
    text = render_entry(plan.notices[1].entry, now=T0 + 31 * MINUTE)
    assert "service restored: FLAGGED → ACTIVE" in text.title
    assert "pager" not in plan.state.told and plan.state.told["ops"].status == "AT_RISK"


def test_a_flagged_line_is_reminded_about_like_a_critical_one() -> None:
    flagged = update(line(ops="AT_RISK"), at=T0, service="FLAGGED").state
    later = T0 + timedelta(hours=1, minutes=2)
    notices, _ = reconcile(flagged, POLICY, now=later)
    assert heard(notices) == [("pager", NoticeKind.REMINDER, "FLAGGED")]


def test_reputation_and_flag_in_one_event_are_one_notice_per_channel() -> None:
    plan = update(line("HEALTHY"), at=T0 + MINUTE, reputation="CRITICAL", service="FLAGGED")
    assert [t.kind for t in plan.transitions] == [TransitionKind.CHANGED,
                                                  TransitionKind.SERVICE]
    assert heard(plan.notices) == [("ops", NoticeKind.DEGRADED, "FLAGGED"),
                                   ("pager", NoticeKind.DEGRADED, "FLAGGED")]
    # Linked to the reputation change: that is what an audit of the line explains.
    assert all(n.transition is plan.transitions[0] for n in plan.notices)
    body = render_entry(plan.notices[0].entry, now=T0 + 2 * MINUTE).body
    assert "Status: HEALTHY → CRITICAL" in body


def test_an_older_event_changes_nothing() -> None:
    flagged = update(line(ops="AT_RISK"), at=T0 + 10 * MINUTE, service="FLAGGED").state
    stale = update(flagged, at=T0 + 5 * MINUTE, service="ACTIVE")
    assert stale.stale and stale.state is flagged and stale.notices == []
    older_reputation = update(flagged, at=T0 - MINUTE, reputation="HEALTHY")
    assert older_reputation.stale and older_reputation.state is flagged


def test_a_silenced_line_records_the_flag_without_sending_it() -> None:
    plan = update(line(ops="AT_RISK"), at=T0, service="FLAGGED", silenced=True)
    assert [(n.channel, n.silenced) for n in plan.notices] == [("ops", True), ("pager", True)]
    assert plan.state.told["pager"] == Told(LEVEL, T0 + MINUTE, silenced=True)


def test_a_repeated_status_is_nothing_new() -> None:
    flagged = update(line(ops="AT_RISK"), at=T0, service="FLAGGED").state
    again = update(flagged, at=T0 + MINUTE, service="FLAGGED")
    assert again.transitions == [] and again.notices == []
    assert replace(again.state, service_changed_at=flagged.service_changed_at) == flagged


def test_a_flag_alone_shows_the_reputation_unchanged_not_a_reputation_change() -> None:
    plan = update(line(ops="AT_RISK"), at=T0 + 10 * MINUTE, service="FLAGGED")
    entry = plan.notices[0].entry
    body = render_entry(entry, now=T0 + 11 * MINUTE).body
    assert "Reputation: AT_RISK (unchanged)" in body
    assert "Status:" not in body and "First time" not in body
    grouped = render_entries([entry, replace(entry, line_id="L2", phone_number="+1202555")],
                             now=T0 + 11 * MINUTE).body
    assert "(reputation AT_RISK)" in grouped and "(new line)" not in grouped


def test_a_reputation_of_flagged_is_an_undocumented_status_not_the_service_flag() -> None:
    """The API has been seen to report FLAGGED as a reputation (drift): it alerts as an
    unknown status, and its recovery says nothing about a service status."""
    plan = update(line("HEALTHY"), at=T0 + MINUTE, reputation="FLAGGED")
    assert heard(plan.notices) == [("ops", NoticeKind.UNKNOWN, None),
                                   ("pager", NoticeKind.UNKNOWN, None)]
    back = update(plan.state, at=T0 + 2 * MINUTE, reputation="HEALTHY")
    assert heard(back.notices) == [("ops", NoticeKind.RECOVERED, None),
                                   ("pager", NoticeKind.RECOVERED, None)]
    text = render_entry(back.notices[0].entry, now=T0 + 3 * MINUTE)
    assert "Service status" not in text.body and "FLAGGED → HEALTHY" in text.title


def test_a_webhook_change_links_the_lines_own_guide_page_or_the_guide_where_it_is_now(
        ) -> None:
    own = update(line("HEALTHY"), at=T0 + 10 * MINUTE, reputation="CRITICAL").state
    assert own.doc_url == "https://docs.linqapp.com/x"  # the page it had, not its old section
    never = update(replace(line("HEALTHY"), doc_url=None), at=T0 + 10 * MINUTE,
                   reputation="CRITICAL").state
    # Not the guide's old path (/guides/...), which Linq moved under /channel/imessage/.
    assert never.doc_url == ("https://docs.linqapp.com/channel/imessage/guides/phone-numbers/"
                             "phone-reputation")
