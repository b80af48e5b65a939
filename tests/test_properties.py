"""Property tests of the pure core: for any sequence of observations, detection and the alert
policy report only real changes, end in the last observed state, and never alert twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.api.payload import parse_phone_numbers
from monitor.core.detect import detect_line
from monitor.core.model import LineState, NoticeKind, Observation, TransitionKind
from monitor.core.policy import AlertPolicy, ChannelRule, reconcile
from monitor.errors import ApiPayloadError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = st.sampled_from(["HEALTHY", "AT_RISK", "CRITICAL", "FLAGGED"])
# None: the line is absent from that poll.
SEQUENCES = st.lists(st.one_of(st.none(), STATUSES), min_size=1, max_size=40)
POLICY = AlertPolicy(channels=(ChannelRule("ops", 1), ChannelRule("pager", 2)))


@given(SEQUENCES)
def test_events_happen_only_on_real_changes_and_the_end_state_is_the_last_seen(
        sequence: list[str | None]) -> None:
    state: LineState | None = None
    for minute, status in enumerate(sequence):
        before = state
        observation = Observation("L", "+1", status, None) if status else None
        state, transition = detect_line(state, observation, account="a",
                                        now=T0 + timedelta(minutes=minute))
        if transition is None:
            assert (before is None and status is None) or (
                before is not None and status == before.status and before.present
            ) or (before is not None and not before.present and status is None)
        elif transition.kind is TransitionKind.REMOVED:
            assert before is not None and before.present and status is None
        else:
            assert before is None or not before.present or before.status != status
    seen = [s for s in sequence if s is not None]
    if seen:
        assert state is not None and state.status == seen[-1]
        assert state.present == (sequence[-1] is not None)


@given(SEQUENCES)
def test_no_channel_hears_the_same_status_twice_in_a_row_and_recoveries_follow_alerts(
        sequence: list[str | None]) -> None:
    state: LineState | None = None
    last_heard: dict[str, tuple[NoticeKind, str]] = {}
    engaged: set[str] = set()
    for minute, status in enumerate(sequence):
        observation = Observation("L", "+1", status, None) if status else None
        state, transition = detect_line(state, observation, account="a",
                                        now=T0 + timedelta(minutes=minute))
        if transition is None or state is None:
            continue
        now = T0 + timedelta(minutes=minute)
        notices, state = reconcile(state, POLICY, now=now, transition=transition)
        for notice in notices:
            if notice.kind is NoticeKind.RECOVERED:
                assert notice.channel in engaged, "a recovery without an alert before it"
                engaged.discard(notice.channel)
            else:
                engaged.add(notice.channel)
            assert last_heard.get(notice.channel) != (notice.kind, transition.to_status), \
                "the same news twice"
            last_heard[notice.channel] = (notice.kind, transition.to_status)
        assert set(state.told) == engaged


INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON encoders round-trip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
ITEMS = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(), INTS, st.none()),
    "phone_number": st.one_of(st.text(), st.none()),
    "reputation": st.one_of(JSON_VALUES, st.fixed_dictionaries(
        {}, optional={"status": st.one_of(st.text(), JSON_VALUES), "doc_url": JSON_VALUES})),
    "health_status": JSON_VALUES,
})


@settings(max_examples=300)
@given(st.one_of(st.binary(), st.lists(st.one_of(ITEMS, JSON_VALUES), max_size=8)))
def test_the_parser_never_crashes_on_any_body(body: bytes | list[object]) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps({"phone_numbers": body})
    try:
        parsed = parse_phone_numbers(raw)
    except ApiPayloadError:
        return
    for o in parsed.observations:
        assert isinstance(o.line_id, str) and o.line_id
        assert isinstance(o.status, str) and o.status
    if not isinstance(body, bytes):
        assert len(parsed.observations) + len(parsed.skipped) == len(body)


WELL_FORMED = st.fixed_dictionaries(
    {"id": st.text(max_size=3), "phone_number": st.text(max_size=3),
     "reputation": st.one_of(st.none(), st.fixed_dictionaries(
         {"status": st.text(max_size=3)}, optional={"doc_url": st.one_of(st.none(), st.text())}))},
    optional={"health_status": st.one_of(st.none(), st.fixed_dictionaries(
        {"status": st.sampled_from(["HEALTHY", ""])})), "forwarding_number": JSON_VALUES})


def by_the_rules(item: object) -> tuple[str, str, str, str | None] | None:
    """The parsing rules of docs/alert-policy.md ("What gets alerted"), restated for one
    decoded item."""
    if not isinstance(item, dict):
        return None
    line_id, phone = item.get("id"), item.get("phone_number")
    reputation = item.get("reputation")
    if reputation is None:
        reputation = item.get("health_status")
    if not (isinstance(line_id, str) and line_id and isinstance(phone, str) and phone
            and isinstance(reputation, dict)):
        return None
    status, doc_url = reputation.get("status"), reputation.get("doc_url")
    if not (isinstance(status, str) and status):
        return None
    return line_id, phone, status, doc_url if isinstance(doc_url, str) else None


@settings(max_examples=300)
@given(st.one_of(st.lists(WELL_FORMED, max_size=6),
                 st.lists(st.one_of(WELL_FORMED, ITEMS, JSON_VALUES), max_size=6)))
def test_the_parser_applies_the_rules_to_each_item_alone(items: list[object]) -> None:
    """Well-typed bodies take the fast typed decode, odd ones the item-by-item fallback:
    either way each item is read, or skipped, exactly as the rules say, on its own."""
    parsed = parse_phone_numbers(orjson.dumps({"phone_numbers": items}))
    observed, skipped, seen = [], [], set()
    for index, item in enumerate(items):
        expected = by_the_rules(item)
        if expected is None or expected[0] in seen:
            skipped.append(index)
        else:
            seen.add(expected[0])
            observed.append(expected)
    assert [(o.line_id, o.phone_number, o.status, o.doc_url)
            for o in parsed.observations] == observed
    assert [s.index for s in parsed.skipped] == skipped
