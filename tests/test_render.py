"""Alert text carries everything an on-call engineer needs, for every kind of notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.model import Notice, NoticeKind, Transition, TransitionKind
from monitor.core.render import format_duration, render_notice
from monitor.core.status import RECOMMENDED_ACTION

AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical-xyz"


def transition(from_status: str | None, to_status: str, *,
               kind: TransitionKind = TransitionKind.CHANGED) -> Transition:
    return Transition(account="sales", line_id="uuid-1", phone_number="+12025550100", kind=kind,
                      from_status=from_status, to_status=to_status, doc_url=DOC, at=AT,
                      previous_since=AT - timedelta(hours=3, minutes=5) if from_status else None)


@pytest.mark.parametrize("kind", [NoticeKind.DEGRADED, NoticeKind.IMPROVED, NoticeKind.RECOVERED])
def test_every_notice_names_account_line_change_time_action_and_exact_doc_url(
        kind: NoticeKind) -> None:
    to_status = {"degraded": "CRITICAL", "improved": "AT_RISK", "recovered": "HEALTHY"}[kind]
    message = render_notice(Notice("ops", kind, transition("CRITICAL" if kind != "degraded"
                                                            else "AT_RISK", to_status)))
    text = message.title + "\n" + message.body
    assert "sales" in text and "+12025550100" in text
    assert f"→ {to_status}" in text
    assert "2026-11-27 09:30:00 UTC" in message.body
    assert RECOMMENDED_ACTION[to_status] in message.body
    assert DOC in message.body
    assert "3h 5m" in message.body


def test_a_first_seen_degraded_line_says_so() -> None:
    body = render_notice(Notice("ops", NoticeKind.DEGRADED,
                                transition(None, "AT_RISK", kind=TransitionKind.FIRST_SEEN))).body
    assert "First time" in body and "(new line) → AT_RISK" in body


def test_an_unknown_status_is_shown_verbatim_with_a_cautious_action() -> None:
    message = render_notice(Notice("ops", NoticeKind.UNKNOWN, transition("HEALTHY", "FLAGGED")))
    assert "[FLAGGED]" in message.title
    assert "not a status Linq documents" in message.body


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (125, "2m 5s"),
                                               (3 * 86400 + 4 * 3600 + 60, "3d 4h")])
def test_durations_read_like_a_human_wrote_them(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
