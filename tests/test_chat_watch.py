"""The WATCH early warning in the pure core: assessing chat health, hysteresis, fast rise,
per-line thresholds, and the HEALTHY <-> WATCH change through the alert policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core import status as st
from monitor.core.chats import (
    Assessment,
    ChatHealthSummary,
    WatchThresholds,
    WorstChat,
    noise_floor,
)
from monitor.core.chats import assess as core_assess
from monitor.core.directory import advice
from monitor.core.model import Entry, LineMeta, LineState, NoticeKind, Observation
from monitor.core.policy import AlertPolicy, ChannelRule, reconcile
from monitor.core.render import render_entry
from monitor.core.watch import WatchOverride, WatchRules, effective_status, overlay, plan_watch
from monitor.service.watch import ChatWatch

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PHONE = "+12025550101"
# The levels these cases exercise the mechanics at (enter at 20 %, a rise of 15 points,
# no noise gate); the shipped defaults are measured in docs/early-warning.md and have
# cases of their own below.
DEFAULT_THRESHOLDS = WatchThresholds(enter_share=0.20, rise_share=0.15, baseline_share=0)
SHIPPED = WatchThresholds()


def assess(summary: ChatHealthSummary, thresholds: WatchThresholds = DEFAULT_THRESHOLDS,
           previous: Assessment | None = None) -> Assessment:
    return core_assess(summary, thresholds, previous)


def summary(unhealthy: int = 0, active: int = 40, *, opted_out: int = 0, at: datetime = T0,
            critical: int = 0, worst: tuple[WorstChat, ...] = ()) -> ChatHealthSummary:
    counts = {"AT_RISK": unhealthy - critical, "CRITICAL": critical, "OPTED_OUT": opted_out,
              "HEALTHY": active - unhealthy - opted_out}
    return ChatHealthSummary("main", PHONE, counts, active, worst, at)


def step(assessment: Assessment | None, *shares: tuple[int, int],
         thresholds: WatchThresholds = DEFAULT_THRESHOLDS,
         every: timedelta = timedelta(hours=1)) -> list[bool]:
    """Feed (unhealthy, active) summaries one after another; whether each left it on WATCH."""
    seen = []
    at = T0 if assessment is None or assessment.summary is None else (
        assessment.summary.observed_at + every)
    for unhealthy, active in shares:
        assessment = assess(summary(unhealthy, active, at=at), thresholds, assessment)
        seen.append(assessment.watch)
        at += every
    return seen


# -- thresholds ---------------------------------------------------------------------------

def test_a_healthy_share_of_chats_does_not_warn() -> None:
    assert assess(summary(3, 40)).watch is False  # 7.5 %


def test_it_warns_once_a_fifth_of_the_active_chats_are_unhealthy() -> None:
    assessment = assess(summary(8, 40))
    assert assessment.watch is True
    assert assessment.reasons == (
        "8 of 40 active chats AT_RISK or CRITICAL (20%; WATCH from 20%)",)


def test_one_bad_chat_of_two_does_not_warn() -> None:
    assert assess(summary(1, 2)).watch is False  # 50 %, but two chats say nothing
    assert assess(summary(5, 9)).watch is False  # still below min_active
    assert assess(summary(5, 10)).watch is True


def test_many_unhealthy_chats_warn_whatever_the_share() -> None:
    assessment = assess(summary(10, 500))  # 2 %
    assert assessment.watch is True
    assert assessment.reasons == ("10 chats AT_RISK or CRITICAL (WATCH from 10)",)
    assert assess(summary(9, 500)).watch is False


def test_opted_out_chats_warn_where_the_signal_is_set() -> None:
    opt_outs = WatchThresholds(enter_opted_out=5)
    assessment = assess(summary(0, 100, opted_out=5), opt_outs)
    assert assessment.watch is True
    assert assessment.reasons == ("5 chats opted out (WATCH from 5)",)
    assert assess(summary(0, 100, opted_out=4), opt_outs).watch is False
    # ... and hold down to their exit level (2), then clear
    assert step(None, (0, 100), thresholds=opt_outs) == [False]
    held = assess(summary(0, 100, opted_out=2, at=T0 + timedelta(hours=1)), opt_outs,
                  assessment)
    assert held.reasons == ("2 chats opted out (clears below 2)",)
    assert assess(summary(0, 100, opted_out=1, at=T0 + timedelta(hours=2)), opt_outs,
                  held).watch is False


def test_by_default_opt_outs_neither_warn_nor_hold_a_line() -> None:
    # Opt-outs are for good and pile up on lines with ordinary traffic (bench/watch.py);
    # by default they are shown in the summary but put no line on WATCH ...
    quiet = core_assess(summary(0, 20, opted_out=9), SHIPPED)
    assert quiet.watch is False
    assert quiet.summary is not None and quiet.summary.opted_out == 9
    # ... nor keep one there once its unhealthy chats are back to normal.
    warned = core_assess(summary(8, 20, opted_out=6), SHIPPED)
    assert warned.watch is True
    later = summary(1, 20, opted_out=6, at=T0 + timedelta(hours=6))
    assert core_assess(later, SHIPPED, warned).watch is False


# -- the noise gate (shipped defaults) ---------------------------------------------------

def test_it_takes_more_than_ordinary_noise_to_warn_a_line_of_twenty_chats() -> None:
    # 6 of 20 (30 %) is above the 25 % share, but a line with ordinary traffic (3 % of its
    # chats unhealthy) shows that many now and then: bench/watch.py's noise held one
    # there for 36 h. 7 of 20 it shows less than once in 100,000.
    assert core_assess(summary(5, 20), SHIPPED).watch is False
    assert core_assess(summary(6, 20), SHIPPED).watch is False
    warned = core_assess(summary(7, 20), SHIPPED)
    assert warned.watch is True
    assert warned.reasons == (
        "7 of 20 active chats AT_RISK or CRITICAL (35%; WATCH from 25%)",)


def test_on_a_busier_line_the_share_is_the_bar() -> None:
    # On 36 chats noise reaches 8 unhealthy less than once in 100,000; 9 is 25 %.
    warned = core_assess(summary(9, 36), SHIPPED)
    assert warned.reasons == (
        "9 of 36 active chats AT_RISK or CRITICAL (25%; WATCH from 25%)",)
    assert core_assess(summary(8, 36), SHIPPED).watch is False  # 22 %


def test_a_fast_rise_within_ordinary_noise_does_not_warn() -> None:
    # 0 -> 6 of 20 in six hours is a rise of 30 points, yet still a count noise reaches.
    assert step(None, (0, 20), (6, 20), thresholds=SHIPPED, every=timedelta(hours=6)) == [
        False, False]
    assert step(None, (0, 20), (7, 20), thresholds=SHIPPED, every=timedelta(hours=6)) == [
        False, True]


def test_a_busy_line_with_ordinary_noise_is_not_on_watch_for_its_count() -> None:
    # 500 active chats, 3 % unhealthy as usual: 15, often 20-30; ten is no pattern there.
    assert core_assess(summary(30, 500), SHIPPED).watch is False
    warned = core_assess(summary(35, 500), SHIPPED)
    assert warned.reasons == ("35 chats AT_RISK or CRITICAL (WATCH from 35)",)
    # It clears once back at what that traffic shows on average (15 of 500), not at 5.
    assert step(warned, (20, 500), (16, 500), (15, 500), thresholds=SHIPPED) == [
        True, True, False]
    # On a line of dozens of chats the count is still ten.
    assert core_assess(summary(10, 45), SHIPPED).reasons == (
        "10 chats AT_RISK or CRITICAL (WATCH from 10)",)


def test_a_fast_rise_warns_a_line_of_forty_chats_a_chat_early() -> None:
    # 1 -> 9 of 40 in six hours: 22 %, below the share and the count (10), above noise (9).
    first = core_assess(summary(1, 40), SHIPPED)
    risen = core_assess(summary(9, 40, at=T0 + timedelta(hours=6)), SHIPPED, first)
    assert risen.reasons == (
        "unhealthy share rose from 2% to 22% within 24h (WATCH on a rise of 15%)",)
    # The same count reached over days is no rise: no warning yet.
    assert step(None, (1, 40), (5, 40), (9, 40), thresholds=SHIPPED,
                every=timedelta(hours=30)) == [False, False, False]


def test_a_line_that_entered_stays_until_its_exit_level_not_the_noise_level() -> None:
    # Entered at 8 of 20; 5 of 20 is below the noise level (7) but above the 10 % exit.
    assert step(None, (8, 20), (5, 20), (2, 20), (1, 20), thresholds=SHIPPED) == [
        True, True, True, False]


def test_baseline_share_zero_turns_the_gate_off() -> None:
    plain = WatchThresholds(baseline_share=0)
    assert core_assess(summary(5, 20), plain).watch is True


def test_the_noise_level_grows_with_the_active_chats() -> None:
    levels = {n: noise_floor(n, 0.03, 1e-5) for n in (10, 20, 40, 100, 1000)}
    assert levels == {10: 5, 20: 7, 40: 9, 100: 13, 1000: 57}
    assert noise_floor(20, 0.0, 1e-5) == 0
    assert noise_floor(20, 0.03, 1e-3) < noise_floor(20, 0.03, 1e-5)


# -- hysteresis ---------------------------------------------------------------------------

def test_it_stays_on_watch_until_every_signal_is_below_its_exit_level() -> None:
    # 20 % enters; 15 % and 10 % hold it (the share clears below 10 %, the count below 5
    # chats); 7.5 % and 3 chats clear it; 15 % is not enough to come back.
    assert step(None, (8, 40), (6, 40), (4, 40), (3, 40), (6, 40)) == [
        True, True, True, False, False]
    # Every signal must be below its exit level: 2 % of 400 is 8 chats, still >= 5.
    assert step(None, (8, 40), (8, 400), (4, 400)) == [True, True, False]


def test_a_line_held_by_its_share_says_when_it_clears() -> None:
    held = assess(summary(4, 40, at=T0 + timedelta(hours=1)),
                  previous=assess(summary(8, 40)))
    assert held.watch is True
    assert held.reasons == ("4 of 40 active chats AT_RISK or CRITICAL (10%; clears below 10%)",)


def test_a_share_hovering_around_the_threshold_does_not_flap() -> None:
    hovering = [(7, 40), (8, 40), (7, 40), (8, 40), (7, 40), (9, 40), (7, 40)]
    seen = step(None, *hovering)
    assert seen == [False, True, True, True, True, True, True]


def test_a_count_that_entered_holds_down_to_its_exit_level() -> None:
    # 10 unhealthy of 500 enters; 5 holds; 4 clears.
    assert step(None, (10, 500), (5, 500), (4, 500)) == [True, True, False]


def test_too_few_active_chats_no_longer_hold_a_share() -> None:
    # The line went quiet: 3 of 5 active chats are bad, but 5 chats are no evidence.
    assert step(None, (8, 40), (3, 5)) == [True, False]


def test_a_line_found_on_watch_after_a_restart_clears_only_below_the_exit_levels() -> None:
    restarted = Assessment(watch=True)
    assert assess(summary(5, 40), previous=restarted).watch is True
    assert assess(summary(3, 40), previous=restarted).watch is False


# -- fast rise ----------------------------------------------------------------------------

def test_a_fast_rise_warns_below_the_enter_share() -> None:
    # 2 % to 18 % within a day: below the 20 % level, but the slope is the early signal.
    first = assess(summary(1, 50))
    risen = assess(summary(9, 50, at=T0 + timedelta(hours=6)), previous=first)
    assert risen.watch is True
    assert risen.reasons == (
        "unhealthy share rose from 2% to 18% within 24h (WATCH on a rise of 15%)",)


def test_a_slow_rise_does_not_warn() -> None:
    seen = step(None, (1, 50), (4, 50), (7, 50), (9, 53), every=timedelta(hours=13))
    assert seen == [False, False, False, False]


def test_the_share_in_force_when_the_window_began_is_the_baseline() -> None:
    # No summary for 30 hours: the share was 2 % all along, so 18 % now is a rise.
    first = assess(summary(1, 50))
    assert assess(summary(9, 50, at=T0 + timedelta(hours=30)), previous=first).watch is True


def test_a_rise_needs_enough_active_chats() -> None:
    first = assess(summary(0, 6))
    assert assess(summary(1, 6, at=T0 + timedelta(hours=1)), previous=first).watch is False


def test_rise_share_zero_turns_the_rise_off() -> None:
    off = WatchThresholds(enter_share=0.20, rise_share=0)
    assert step(None, (1, 50), (9, 53), thresholds=off) == [False, False]


# -- thresholds per line ------------------------------------------------------------------

def test_overrides_apply_by_account_and_label_in_order() -> None:
    rules = WatchRules(DEFAULT_THRESHOLDS, (
        WatchOverride({"min_active": 30}, accounts=frozenset({"big"})),
        WatchOverride({"enter_share": 0.5, "exit_share": 0.3}, labels={"team": "support"}),
        WatchOverride({"min_active": 3}, accounts=frozenset({"big"}),
                      labels={"team": "support"}),
    ))
    support = LineMeta(labels={"team": "support", "site": "sf"})
    assert rules.for_line("main", LineMeta()) == DEFAULT_THRESHOLDS
    assert rules.for_line("big", LineMeta()).min_active == 30
    assert rules.for_line("main", support).enter_share == 0.5
    big_support = rules.for_line("big", support)
    assert (big_support.min_active, big_support.enter_share) == (3, 0.5)
    # The same summary: a WATCH for one line, nothing for a support line.
    assert assess(summary(8, 40), rules.for_line("main", LineMeta())).watch is True
    assert assess(summary(8, 40), rules.for_line("main", support)).watch is False


# -- the status and the line --------------------------------------------------------------

def test_watch_ranks_between_healthy_and_at_risk_without_moving_the_others() -> None:
    assert [st.rank(s) for s in st.MONITOR_STATUSES] == [0, 0.5, 1, 2]
    assert st.rank("FLAGGED") == 3
    assert st.status_for_rank(st.rank(st.WATCH)) == "WATCH"
    assert st.is_known(st.WATCH) and not st.is_degraded(st.WATCH)
    assert "Slow outbound on these chats; check reply rate." in st.recommended_action(st.WATCH)


def test_the_gate_says_slow_down_for_a_watch_line() -> None:
    assert advice(line(st.WATCH)) == "slow_down"
    assert advice(line(st.HEALTHY)) == "send"
    assert advice(line(st.AT_RISK)) == "slow_down"


def test_linq_s_own_status_wins_over_the_chats() -> None:
    assert effective_status("HEALTHY", watching=True) == "WATCH"
    assert effective_status("AT_RISK", watching=True) == "AT_RISK"
    assert effective_status("CRITICAL", watching=True) == "CRITICAL"
    assert effective_status("HEALTHY", watching=False) == "HEALTHY"
    seen = Observation("l1", PHONE, "HEALTHY", None)
    assert overlay(seen, watching=False) is seen
    assert overlay(seen, watching=True).status == "WATCH"


POLICY = AlertPolicy(channels=(ChannelRule("early", st.rank(st.WATCH)),
                               ChannelRule("ops", st.rank(st.AT_RISK))))


def line(status: str, **more: object) -> LineState:
    return LineState(account="main", line_id="l1", phone_number=PHONE, status=status,
                     doc_url="https://docs/x#healthy", since=T0 - timedelta(days=3),
                     **more)  # type: ignore[arg-type]


def test_a_healthy_line_goes_on_watch_and_only_a_watch_channel_hears_it() -> None:
    plan = plan_watch(line(st.HEALTHY), watching=True, now=T0, policy=POLICY)
    assert [(t.from_status, t.to_status) for t in plan.transitions] == [("HEALTHY", "WATCH")]
    assert plan.state.status == st.WATCH and plan.state.degraded_since is None
    assert [(n.channel, n.kind, n.entry.source) for n in plan.notices] == [
        ("early", NoticeKind.DEGRADED, "chats")]


def test_a_line_leaving_watch_clears_with_a_recovery_to_who_heard_it() -> None:
    watched = plan_watch(line(st.HEALTHY), watching=True, now=T0, policy=POLICY).state
    plan = plan_watch(watched, watching=False, now=T0 + timedelta(hours=5), policy=POLICY)
    assert plan.state.status == st.HEALTHY
    assert [(n.channel, n.kind, n.entry.below) for n in plan.notices] == [
        ("early", NoticeKind.RECOVERED, "WATCH")]


def test_a_line_already_at_risk_does_not_go_on_watch() -> None:
    at_risk = line(st.AT_RISK)
    plan = plan_watch(at_risk, watching=True, now=T0, policy=POLICY)
    assert plan.state is at_risk and not plan.transitions and not plan.notices


def test_a_silenced_line_records_watch_as_silenced() -> None:
    plan = plan_watch(line(st.HEALTHY), watching=True, now=T0, policy=POLICY, silenced=True)
    assert [(n.channel, n.silenced) for n in plan.notices] == [("early", True)]


def test_the_watch_message_lists_the_worst_chats_and_the_action() -> None:
    chats = (WorstChat("chat-9", "CRITICAL", T0 - timedelta(hours=2), "https://docs/c#critical"),
             WorstChat("chat-4", "AT_RISK", T0 - timedelta(days=1), None))
    entry = Entry(kind=NoticeKind.DEGRADED, account="main", line_id="l1", phone_number=PHONE,
                  from_status="HEALTHY", to_status="WATCH", at=T0,
                  previous_since=T0 - timedelta(days=3), doc_url=None, source="chats",
                  watch_reasons=("8 of 40 active chats AT_RISK or CRITICAL (20%; WATCH from "
                                 "20%)",), chats=chats)
    message = render_entry(entry, now=T0)
    assert message.title.startswith(f"[WATCH] {PHONE} degraded: HEALTHY → WATCH")
    assert "Why: 8 of 40 active chats AT_RISK or CRITICAL (20%; WATCH from 20%)." in message.body
    assert "  CRITICAL  chat chat-9 since 2026-11-30 07:00 UTC  https://docs/c#critical" \
        in message.body
    assert "  AT_RISK   chat chat-4 since 2026-11-29 09:00 UTC" in message.body
    assert "Recommended action: Slow outbound on these chats; check reply rate." in message.body
    assert Entry.from_json(entry.to_json()) == entry  # survives the outbox row


def test_a_watch_channel_is_reminded_with_the_chats_as_they_are_now() -> None:
    policy = AlertPolicy(channels=(ChannelRule("early", st.rank(st.WATCH),
                                               repeat_interval=timedelta(hours=24)),))
    watched = plan_watch(line(st.HEALTHY), watching=True, now=T0, policy=policy).state
    assert reconcile(watched, policy, now=T0 + timedelta(hours=23))[0] == []
    (reminder,), _ = reconcile(watched, policy, now=T0 + timedelta(hours=24))
    assert (reminder.kind, reminder.entry.to_status) == (NoticeKind.REMINDER, "WATCH")
    memory = ChatWatch(WatchRules())
    worst = (WorstChat("chat-1", "CRITICAL", T0, None),)
    memory.keep("l1", assess(summary(9, 40, worst=worst)))
    told = memory.annotate(reminder, {})
    assert told.entry.chats == worst
    assert told.entry.watch_reasons == (
        "9 of 40 active chats AT_RISK or CRITICAL (22%; WATCH from 20%)",)


def test_a_line_going_on_and_off_watch_too_often_is_flapping() -> None:
    policy = AlertPolicy(channels=(ChannelRule("early", st.rank(st.WATCH)),), flap_changes=2,
                         flap_window=timedelta(hours=1))
    state, kinds = line(st.HEALTHY), []
    for minute, watching in enumerate((True, False, True)):
        plan = plan_watch(state, watching=watching, now=T0 + timedelta(minutes=minute),
                          policy=policy)
        state = plan.state
        kinds += [n.kind for n in plan.notices]
    assert kinds == [NoticeKind.DEGRADED, NoticeKind.RECOVERED, NoticeKind.FLAPPING]
    assert state.flapping


def test_a_line_stored_as_watch_stays_on_watch_only_while_chat_health_is_on() -> None:
    stored = line(st.WATCH)
    on, off = ChatWatch(WatchRules()), ChatWatch(None)
    on.seed([stored])
    off.seed([stored])
    assert on.watching("l1") and not off.watching("l1")
