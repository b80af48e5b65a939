"""The daily digest read from a real database (SQLite and PostgreSQL), filled the way the
poller fills it: detect() on observations, then commit_poll / record_failed_poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.detect import detect_account
from monitor.core.digest import render_digest
from monitor.core.model import LineMeta, Observation
from monitor.service.digest import build_digest
from monitor.store.state import PollRecord, commit_poll, load_lines, record_failed_poll

# These touch SQL: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation"
PHONES = {"L1": "+12025550101", "L2": "+12025550102", "L3": "+12025550103"}


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def poll(sessions: sessionmaker[Session], when: datetime, statuses: dict[str, str], *,
         account: str = "acme") -> None:
    """One successful poll of ``account`` seeing these lines in these statuses."""
    observations = [Observation(line_id, PHONES[line_id], status, f"{DOC}#{status.lower()}")
                    for line_id, status in statuses.items()]
    diff = detect_account(load_lines(sessions, account), observations, account=account,
                          now=when)
    known = load_lines(sessions, account)
    commit_poll(sessions, PollRecord(account, when, when, "success", len(observations)),
                new_lines=[s for s in diff.states if s.line_id not in known],
                changed_lines=[s for s in diff.states if s.line_id in known],
                transitions=diff.transitions, outgoing=[])


def failed_poll(sessions: sessionmaker[Session], when: datetime, error: str, *,
                account: str = "acme") -> None:
    record_failed_poll(sessions, PollRecord(account, when, when, "error", error=error))


def fill(sessions: sessionmaker[Session]) -> None:
    poll(sessions, hours_ago(30), {"L1": "HEALTHY", "L2": "HEALTHY", "L3": "AT_RISK"})
    poll(sessions, hours_ago(10), {"L1": "AT_RISK", "L2": "HEALTHY", "L3": "AT_RISK"})
    poll(sessions, hours_ago(4), {"L1": "CRITICAL", "L2": "AT_RISK", "L3": "AT_RISK"})
    failed_poll(sessions, hours_ago(2), "HTTP 503 from the Linq API (trace abc)")
    poll(sessions, hours_ago(1), {"L1": "CRITICAL", "L2": "HEALTHY", "L3": "AT_RISK"})


def test_it_lists_lines_not_healthy_worst_first_with_since(sessions) -> None:
    fill(sessions)
    digest = build_digest(sessions, now=NOW)
    assert [(d.phone_number, d.status, d.since) for d in digest.degraded] == [
        (PHONES["L1"], "CRITICAL", hours_ago(4)),
        (PHONES["L3"], "AT_RISK", hours_ago(30)),
    ]
    assert digest.degraded[0].doc_url == f"{DOC}#critical"


def test_it_lists_the_last_24h_of_changes_newest_first_with_time_in_previous(sessions) -> None:
    fill(sessions)
    digest = build_digest(sessions, now=NOW)
    assert [(c.phone_number, c.from_status, c.to_status, c.time_in_previous)
            for c in digest.changes] == [
        (PHONES["L2"], "AT_RISK", "HEALTHY", timedelta(hours=3)),
        (PHONES["L2"], "HEALTHY", "AT_RISK", timedelta(hours=26)),
        (PHONES["L1"], "AT_RISK", "CRITICAL", timedelta(hours=6)),
        (PHONES["L1"], "HEALTHY", "AT_RISK", timedelta(hours=20)),
    ]
    assert digest.change_count == 4


def test_it_accounts_time_at_risk_and_critical_per_line_over_24h(sessions) -> None:
    fill(sessions)
    times = {t.phone_number: (t.at_risk, t.critical)
             for t in build_digest(sessions, now=NOW).time_degraded}
    assert times == {
        PHONES["L1"]: (timedelta(hours=6), timedelta(hours=4)),
        PHONES["L3"]: (timedelta(hours=24), timedelta(0)),
        PHONES["L2"]: (timedelta(hours=3), timedelta(0)),
    }
    # Most time CRITICAL first.
    assert next(iter(times)) == PHONES["L1"]


def test_it_counts_poll_health_per_account_in_the_window(sessions) -> None:
    fill(sessions)
    failed_poll(sessions, hours_ago(1), "connection refused", account="eu")
    digest = build_digest(sessions, now=NOW, accounts=["acme", "eu", "never-polled"])
    health = {p.account: p for p in digest.polls}
    assert (health["acme"].successes, health["acme"].errors) == (3, 1)  # the 30 h one is out
    assert health["acme"].last_success == hours_ago(1)
    assert health["acme"].last_error == "HTTP 503 from the Linq API (trace abc)"
    assert (health["eu"].successes, health["eu"].errors, health["eu"].last_success) == (0, 1, None)
    assert (health["never-polled"].successes, health["never-polled"].errors) == (0, 0)


def test_it_keeps_to_the_accounts_a_channel_selects(sessions) -> None:
    fill(sessions)
    poll(sessions, hours_ago(1), {"L1": "CRITICAL"}, account="eu")
    digest = build_digest(sessions, now=NOW, accounts=["eu"])
    assert {d.account for d in digest.degraded} == {"eu"}
    assert {c.account for c in digest.changes} == {"eu"}
    assert {t.account for t in digest.time_degraded} == {"eu"}
    assert [p.account for p in digest.polls] == ["eu"]


def test_it_keeps_to_the_lines_a_channels_labels_select(sessions) -> None:
    fill(sessions)
    teams = {"L1": {"team": "sales"}, "L2": {"team": "support"}}
    digest = build_digest(sessions, now=NOW, labels={"team": "sales"}, max_changes=1,
                          line_meta=lambda line: LineMeta(
                              labels=teams.get(line.line_id, {})))
    assert [d.line_id for d in digest.degraded] == ["L1"]  # not L3 (no labels)
    assert {c.line_id for c in digest.changes} == {"L1"} and digest.change_count == 2
    assert [t.line_id for t in digest.time_degraded] == ["L1"]
    assert [p.account for p in digest.polls] == ["acme"]  # poll health is per account


def test_the_default_text_reads_every_section_with_names(sessions) -> None:
    fill(sessions)
    names = {"L1": "Sales 1"}
    digest = build_digest(sessions, now=NOW,
                          line_meta=lambda line: LineMeta(names.get(line.line_id)))
    message = render_digest(digest, now=NOW)
    assert message.title == ("Line reputation digest: 2 lines not HEALTHY (1 CRITICAL, "
                             "1 AT_RISK); 4 changes in 24h; 1 failed poll")
    body = message.body
    assert (f"- {PHONES['L1']} (Sales 1) CRITICAL for 4h (since 2026-11-27 05:00:00 UTC), "
            f"account acme\n  {DOC}#critical") in body
    assert (f"- 2026-11-27 05:00:00 UTC {PHONES['L1']} (Sales 1) AT_RISK → CRITICAL after 6h "
            f"in AT_RISK [acme]\n  {DOC}#critical") in body
    assert f"- {PHONES['L1']} (Sales 1) [acme]: CRITICAL 4h, AT_RISK 6h" in body
    assert ("- acme: 3 ok, 1 failed (75.0 % ok), last success 2026-11-27 08:00:00 UTC, "
            "last error: HTTP 503 from the Linq API (trace abc)") in body


def test_a_quiet_day_still_says_so(sessions) -> None:
    poll(sessions, hours_ago(30), {"L1": "HEALTHY"})
    digest = build_digest(sessions, now=NOW)
    assert digest.degraded == () and digest.changes == () and digest.time_degraded == ()
    message = render_digest(digest, now=NOW)
    assert message.title == "Line reputation digest: all lines HEALTHY; 0 changes in 24h"
    assert "- none" in message.body


def test_long_lists_are_capped_in_the_text(sessions) -> None:
    fill(sessions)
    digest = build_digest(sessions, now=NOW, max_changes=2)
    assert len(digest.changes) == 2 and digest.change_count == 4
    body = render_digest(digest, now=NOW, limit=1).body
    assert "Changes in the last 24h (4):" in body and "+3 more" in body
