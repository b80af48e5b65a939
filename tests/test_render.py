"""Alert text carries everything an on-call engineer needs, for every kind of message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.model import Entry, NoticeKind
from monitor.core.render import (
    TITLE_LIMIT,
    format_duration,
    render_entries,
    summarize,
)
from monitor.core.status import RECOMMENDED_ACTION
from monitor.core.trouble import Trouble, TroubleKind, render_trouble

AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
NOW = AT + timedelta(seconds=5)
DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical-xyz"
PHONE = "+12025550100"

# (kind, from, to) for every kind of line message.
KINDS = [
    (NoticeKind.DEGRADED, "HEALTHY", "AT_RISK"),
    (NoticeKind.DEGRADED, "AT_RISK", "CRITICAL"),
    (NoticeKind.IMPROVED, "CRITICAL", "AT_RISK"),
    (NoticeKind.RECOVERED, "AT_RISK", "HEALTHY"),
    (NoticeKind.UNKNOWN, "HEALTHY", "FLAGGED"),
    (NoticeKind.REMINDER, "HEALTHY", "AT_RISK"),
    (NoticeKind.FLAPPING, "HEALTHY", "AT_RISK"),
    (NoticeKind.SETTLED, "HEALTHY", "AT_RISK"),
]


def entry(kind: NoticeKind = NoticeKind.DEGRADED, from_status: str | None = "HEALTHY",
          to_status: str = "AT_RISK", *, phone: str = PHONE, name: str | None = "Sales 1",
          account: str = "sales", **changes: object) -> Entry:
    e = Entry(kind=kind, account=account, line_id=f"uuid-{phone[-4:]}", phone_number=phone,
              from_status=from_status, to_status=to_status, at=AT,
              previous_since=AT - timedelta(hours=3, minutes=5) if from_status else None,
              doc_url=f"{DOC}-{phone[-4:]}", name=name,
              degraded_since=AT - timedelta(hours=3, minutes=10),
              sequence=((AT - timedelta(minutes=12), "AT_RISK"),
                        (AT - timedelta(minutes=8), "HEALTHY"),
                        (AT, "AT_RISK")))
    return replace(e, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "from_status", "to_status"), KINDS)
def test_every_kind_names_the_line_its_change_time_in_previous_action_and_doc_url(
        kind: NoticeKind, from_status: str, to_status: str) -> None:
    message = render_entries([entry(kind, from_status, to_status)], now=NOW)
    assert message.body_format == "text"
    assert PHONE in message.title and "sales" in message.title
    assert len(message.title) <= TITLE_LIMIT
    for needle in ("Account: sales", f'{PHONE} "Sales 1" (id uuid-0100)',
                   f"{from_status} → {to_status}", f"Time in {from_status}: 3h 5m",
                   "2026-11-27 09:30:00 UTC", f"Guide: {DOC}-0100"):
        assert needle in message.body
    if to_status in RECOMMENDED_ACTION:
        assert RECOMMENDED_ACTION[to_status] in message.body


def test_a_degradation_reads_like_todays_alert() -> None:
    message = render_entries([entry(name=None)], now=NOW)
    assert message.title == f"[AT_RISK] {PHONE} degraded: HEALTHY → AT_RISK (sales)"


def test_improving_is_not_called_resolved() -> None:
    message = render_entries([entry(NoticeKind.IMPROVED, "CRITICAL", "AT_RISK")], now=NOW)
    assert "improving: CRITICAL → AT_RISK" in message.title
    assert "not resolved" in message.body and "still AT_RISK" in message.body


def test_a_recovery_says_recovered() -> None:
    message = render_entries([entry(NoticeKind.RECOVERED, "AT_RISK", "HEALTHY")], now=NOW)
    assert message.title.startswith(f"[HEALTHY] {PHONE} (Sales 1) recovered: AT_RISK → HEALTHY")


def test_a_reminder_says_how_long_the_line_has_been_degraded() -> None:
    message = render_entries([entry(NoticeKind.REMINDER)], now=AT)
    assert "still AT_RISK for 3h 10m" in message.title
    assert "degraded since 2026-11-27 06:20:00 UTC" in message.body


def test_a_flapping_notice_lists_the_sequence_and_when_alerts_resume() -> None:
    message = render_entries([entry(NoticeKind.FLAPPING)], now=NOW,
                             flap_window=timedelta(minutes=30))
    assert "flapping: 3 changes in 12m" in message.title
    assert "2026-11-27 09:18:00 UTC  AT_RISK" in message.body
    assert "2026-11-27 09:22:00 UTC  HEALTHY" in message.body
    assert "paused until it is stable for 30m" in message.body


def test_a_flapping_notice_is_badged_with_the_worst_status_it_went_through() -> None:
    flapping = entry(NoticeKind.FLAPPING, "CRITICAL", "HEALTHY", sequence=(
        (AT - timedelta(minutes=3), "CRITICAL"), (AT, "HEALTHY")))
    assert render_entries([flapping], now=NOW).title.startswith(f"[CRITICAL] {PHONE} ")


def test_a_settled_notice_says_where_the_line_settled() -> None:
    message = render_entries([entry(NoticeKind.SETTLED, "HEALTHY", "CRITICAL")], now=NOW)
    assert "settled at CRITICAL after flapping" in message.title
    assert "Settled at CRITICAL (since 2026-11-27 09:30:00 UTC)" in message.body


def test_a_first_seen_degraded_line_says_so() -> None:
    body = render_entries([entry(from_status=None)], now=NOW).body
    assert "First time" in body and "(new line) → AT_RISK" in body


def test_an_unknown_status_is_shown_verbatim_with_a_cautious_action() -> None:
    message = render_entries([entry(NoticeKind.UNKNOWN, "HEALTHY", "FLAGGED")], now=NOW)
    assert "[FLAGGED]" in message.title
    assert "not a status Linq documents" in message.body


def test_labels_and_reason_are_shown() -> None:
    body = render_entries([entry(labels={"team": "sales", "tier": "1"},
                                 reason="silence ended")], now=NOW).body
    assert "Labels: team=sales, tier=1" in body and "Reason: silence ended" in body


def six_lines() -> list[Entry]:
    return [
        entry(phone="+12025550101", to_status="AT_RISK"),
        entry(phone="+12025550102", to_status="AT_RISK", name=None),
        entry(phone="+12025550103", to_status="CRITICAL", from_status="AT_RISK"),
        entry(phone="+12025550104", to_status="AT_RISK"),
        entry(phone="+12025550105", to_status="CRITICAL"),
        entry(phone="+12025550106", to_status="AT_RISK"),
        entry(NoticeKind.RECOVERED, "AT_RISK", "HEALTHY", phone="+12025550107"),
    ]


def test_many_lines_become_one_message_with_a_summary_line() -> None:
    message = render_entries(six_lines(), now=NOW)
    summary = "6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered"
    assert message.title == f"[CRITICAL] {summary} (sales)"
    assert message.body.splitlines()[0] == summary


def test_a_grouped_message_gives_every_line_phone_name_change_time_and_doc_url() -> None:
    body = render_entries(six_lines(), now=NOW).body
    assert "- +12025550103 (Sales 1) degraded: AT_RISK → CRITICAL after 3h 5m in AT_RISK, " \
           "at 09:30:00 UTC" in body
    assert "- +12025550107 (Sales 1) recovered: AT_RISK → HEALTHY after 3h 5m in AT_RISK" in body
    for n in range(101, 108):
        assert f"+12025550{n}" in body and f"{DOC}-0{n}" in body
    # Worst first: CRITICAL degradations before AT_RISK ones, recoveries last.
    assert body.index("+12025550103") < body.index("+12025550101") < body.index("+12025550107")


def test_a_grouped_message_is_capped_with_a_count_of_the_rest() -> None:
    entries = [entry(phone=f"+1202555{n:04d}") for n in range(500)]
    message = render_entries(entries, now=NOW, limit=20)
    assert message.title.startswith("[AT_RISK] 500 lines degraded: 500 AT_RISK")
    assert message.body.count("\n- ") == 20
    assert message.body.endswith("+480 more")


def test_a_group_across_accounts_names_each_lines_account() -> None:
    message = render_entries([entry(account="us"), entry(account="eu", phone="+4930555")],
                             now=NOW)
    assert message.title.endswith("(2 accounts)")
    assert "[eu]" in message.body and "[us]" in message.body


def test_summaries_word_reminders_flapping_and_settling() -> None:
    text = summarize([entry(NoticeKind.REMINDER, to_status="CRITICAL"),
                      entry(NoticeKind.REMINDER), entry(NoticeKind.FLAPPING),
                      entry(NoticeKind.SETTLED, to_status="HEALTHY"),
                      entry(NoticeKind.IMPROVED, "CRITICAL", "AT_RISK")])
    assert text == ("1 line flapping; 2 still degraded: 1 AT_RISK, 1 CRITICAL; "
                    "1 improving: 1 AT_RISK; 1 settled after flapping: 1 HEALTHY")


def test_older_changes_in_a_group_show_their_date() -> None:
    body = render_entries([entry(), entry(phone="+12025550999")],
                          now=AT + timedelta(days=1)).body
    assert "at Nov 27 09:30:00 UTC" in body


def test_nothing_to_render_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_entries([], now=NOW)


def test_polls_failing_is_announced_with_since_failures_and_last_error() -> None:
    trouble = Trouble(TroubleKind.POLLS_FAILING, "acme", since=AT, failures=12,
                      last_success=AT - timedelta(minutes=1), last_error="HTTP 503 " + "x" * 400)
    message = render_trouble(trouble, now=AT + timedelta(minutes=12))
    assert message.title == "[MONITOR] polls of account acme failing for 12m"
    assert "since 2026-11-27 09:30:00 UTC" in message.body
    assert "Failed attempts: 12" in message.body
    assert "Last success: 2026-11-27 09:29:00 UTC" in message.body
    last_error = message.body.splitlines()[-1]
    assert last_error.startswith("Last error: HTTP 503 x") and len(last_error) < 330


def test_trouble_clearing_says_how_long_it_lasted() -> None:
    trouble = Trouble(TroubleKind.DELIVERY_FAILING, "pager", since=AT,
                      cleared_at=AT + timedelta(minutes=25))
    message = render_trouble(trouble, now=AT + timedelta(minutes=25))
    assert message.title == "[RESOLVED] monitor: deliveries to channel pager working again " \
                            "after 25m"


def test_trouble_survives_the_outbox_as_json() -> None:
    trouble = Trouble(TroubleKind.POLLS_FAILING, "acme", since=AT, failures=3,
                      last_error="timeout")
    assert Trouble.from_json(trouble.to_json()) == trouble


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (0.9, "1s"), (45, "45s"),
                                               (125, "2m 5s"), (-3, "0s"),
                                               (3 * 86400 + 4 * 3600 + 60, "3d 4h")])
def test_durations_read_like_a_human_wrote_them(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
