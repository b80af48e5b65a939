"""The transition state machine, stepped through observation by observation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core.detect import detect_account, detect_line
from monitor.core.model import LineState, Observation, TransitionKind

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
URL = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#"


def obs(status: str, *, line_id: str = "L1", phone: str = "+12025550001") -> Observation:
    return Observation(line_id, phone, status, URL + status.lower())


def step(state: LineState | None, observation: Observation | None, minutes: int):
    return detect_line(state, observation, account="main", now=T0 + timedelta(minutes=minutes))


def test_it_records_a_new_line_as_first_seen() -> None:
    state, t = step(None, obs("HEALTHY"), 0)
    assert state is not None and state.status == "HEALTHY" and state.since == T0
    assert t is not None and t.kind is TransitionKind.FIRST_SEEN and t.from_status is None


def test_it_reports_nothing_while_the_status_holds() -> None:
    state, _ = step(None, obs("AT_RISK"), 0)
    again, t = step(state, obs("AT_RISK"), 1)
    assert t is None
    assert again is state  # identity: nothing to write


def test_it_steps_through_degradation_and_recovery() -> None:
    state, _ = step(None, obs("HEALTHY"), 0)
    seen = []
    for minute, status in enumerate(["AT_RISK", "AT_RISK", "CRITICAL", "HEALTHY"], start=1):
        state, t = step(state, obs(status), minute)
        assert state is not None and state.status == status
        if t:
            seen.append((t.from_status, t.to_status, t.at - t.previous_since))
    assert seen == [
        ("HEALTHY", "AT_RISK", timedelta(minutes=1)),
        ("AT_RISK", "CRITICAL", timedelta(minutes=2)),
        ("CRITICAL", "HEALTHY", timedelta(minutes=1)),
    ]
    assert state.since == T0 + timedelta(minutes=4)


def test_it_remembers_a_new_doc_url_without_an_event() -> None:
    state, _ = step(None, obs("AT_RISK"), 0)
    moved = Observation("L1", "+12025550001", "AT_RISK", URL + "new-anchor")
    after, t = step(state, moved, 1)
    assert t is None
    assert after is not None and after.doc_url == URL + "new-anchor" and after.since == T0


def test_it_records_removal_once_and_return_with_its_status() -> None:
    state, _ = step(None, obs("AT_RISK"), 0)
    removed, t = step(state, None, 1)
    assert removed is not None and not removed.present and t.kind is TransitionKind.REMOVED
    still, t2 = step(removed, None, 2)
    assert t2 is None and still is removed
    back, t3 = step(removed, obs("CRITICAL"), 3)
    assert back.present and t3.kind is TransitionKind.RETURNED
    assert (t3.from_status, t3.to_status) == ("AT_RISK", "CRITICAL")


def test_it_keeps_an_unknown_status_verbatim() -> None:
    state, _ = step(None, obs("HEALTHY"), 0)
    state, t = step(state, obs("FLAGGED"), 1)
    assert state.status == "FLAGGED" and t.to_status == "FLAGGED"


def test_account_diff_removes_absent_lines_but_not_protected_ones() -> None:
    first = detect_account({}, [obs("HEALTHY", line_id="A", phone="+1"),
                                obs("HEALTHY", line_id="B", phone="+2"),
                                obs("HEALTHY", line_id="C", phone="+3")], account="main", now=T0)
    known = {s.line_id: s for s in first.states}
    assert len(first.transitions) == 3
    diff = detect_account(known, [obs("HEALTHY", line_id="A", phone="+1")], account="main",
                          now=T0 + timedelta(minutes=1), protected=frozenset({"+2"}))
    assert [(t.line_id, t.kind) for t in diff.transitions] == [("C", TransitionKind.REMOVED)]


def test_account_diff_of_a_steady_poll_is_empty() -> None:
    observations = [obs("HEALTHY", line_id=str(i), phone=f"+1{i}") for i in range(100)]
    known = {s.line_id: s for s in detect_account({}, observations, account="m", now=T0).states}
    diff = detect_account(known, observations, account="m", now=T0 + timedelta(minutes=1))
    assert diff.states == [] and diff.transitions == []
