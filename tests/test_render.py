"""Alert text carries everything an on-call engineer needs, for every kind of notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.model import Entry, NoticeKind
from monitor.core.render import format_duration, render_entries, render_entry
from monitor.core.status import RECOMMENDED_ACTION

AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical-xyz"


def entry(from_status: str | None, to_status: str, kind: NoticeKind = NoticeKind.DEGRADED,
          **extra: object) -> Entry:
    fields: dict[str, object] = dict(
        kind=kind, account="sales", line_id="uuid-1", phone_number="+12025550100",
        from_status=from_status, to_status=to_status, doc_url=DOC, at=AT,
        previous_since=AT - timedelta(hours=3, minutes=5) if from_status else None)
    fields.update(extra)
    return Entry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [NoticeKind.DEGRADED, NoticeKind.IMPROVED, NoticeKind.RECOVERED])
def test_every_notice_names_account_line_change_time_action_and_exact_doc_url(
        kind: NoticeKind) -> None:
    to_status = {"degraded": "CRITICAL", "improved": "AT_RISK", "recovered": "HEALTHY"}[kind]
    message = render_entry(entry("CRITICAL" if kind != "degraded" else "AT_RISK", to_status,
                                 kind), now=AT)
    text = message.title + "\n" + message.body
    assert "sales" in text and "+12025550100" in text
    assert f"→ {to_status}" in text
    assert "2026-11-27 09:30:00 UTC" in message.body
    assert RECOMMENDED_ACTION[to_status] in message.body
    assert DOC in message.body
    assert "3h 5m" in message.body


def test_a_first_seen_degraded_line_says_so() -> None:
    body = render_entry(entry(None, "AT_RISK"), now=AT).body
    assert "First time" in body and "(new line) → AT_RISK" in body


def test_an_unknown_status_is_shown_verbatim_with_a_cautious_action() -> None:
    message = render_entry(entry("HEALTHY", "FLAGGED", NoticeKind.UNKNOWN), now=AT)
    assert "[FLAGGED]" in message.title
    assert "not a status Linq documents" in message.body


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (125, "2m 5s"),
                                               (3 * 86400 + 4 * 3600 + 60, "3d 4h")])
def test_durations_read_like_a_human_wrote_them(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_lines_due_together_are_one_message_with_a_summary_and_a_cap() -> None:
    entries = ([entry("HEALTHY", "AT_RISK", line_id=f"a{i}", phone_number=f"+1202555010{i}")
                for i in range(4)]
               + [entry("AT_RISK", "CRITICAL", line_id=f"c{i}", phone_number=f"+1202555020{i}")
                  for i in range(2)]
               + [entry("AT_RISK", "HEALTHY", NoticeKind.RECOVERED, line_id="r",
                        phone_number="+12025550300", name="Support line")])
    message = render_entries(entries, now=AT, limit=5)
    assert message.body.splitlines()[0] == "6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered"
    assert "+12025550100" in message.body and "after 3h 5m in HEALTHY" in message.body
    assert DOC in message.body
    assert message.body.splitlines()[-1] == "+2 more"
    assert "+12025550300" not in message.body  # past the cap


def test_a_reminder_says_for_how_long_the_line_has_been_degraded() -> None:
    reminder = entry("HEALTHY", "AT_RISK", NoticeKind.REMINDER, at=AT + timedelta(hours=2),
                     degraded_since=AT, name="Sales 1")
    message = render_entry(reminder, now=AT + timedelta(hours=2))
    assert "still degraded" in message.title and "+12025550100 (Sales 1)" in message.title
    assert "degraded for 2h" in message.body and DOC in message.body
