"""A steady answer parsed through the previous one's items reads exactly as a fresh parse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.api.payload import PhoneNumberList, parse_phone_numbers
from monitor.api.recall import ItemRecall, parse_recalled
from monitor.errors import ApiPayloadError
from tests.support.fuzzing import BODIES, SEEDS, profiles


def item(n: int, status: str = "HEALTHY", **extra: Any) -> dict[str, Any]:
    return {"id": f"line-{n}", "phone_number": f"+1202555{n:04d}",
            "reputation": {"status": status, "doc_url": f"https://docs/{status}"}, **extra}


def body(*items: Any) -> bytes:
    return orjson.dumps({"phone_numbers": list(items)})


def both(data: bytes, recall: ItemRecall) -> PhoneNumberList | str:
    """parse_recalled's answer, checked against parse_phone_numbers' for the same body."""
    try:
        expected: PhoneNumberList | str = parse_phone_numbers(data, trace_id="t")
    except ApiPayloadError as exc:
        expected = str(exc)
    try:
        got: PhoneNumberList | str = parse_recalled(data, recall, trace_id="t")
    except ApiPayloadError as exc:
        got = str(exc)
    assert got == expected
    return got


def test_it_sees_a_changed_status_and_keeps_the_unchanged_lines() -> None:
    recall = ItemRecall()
    both(body(item(1), item(2), item(3)), recall)
    parsed = both(body(item(1), item(2, "CRITICAL"), item(3)), recall)
    assert isinstance(parsed, PhoneNumberList)
    assert [(o.line_id, o.status) for o in parsed.observations] == [
        ("line-1", "HEALTHY"), ("line-2", "CRITICAL"), ("line-3", "HEALTHY")]


def test_it_follows_lines_added_removed_and_reordered() -> None:
    recall = ItemRecall()
    both(body(item(1), item(2), item(3)), recall)
    parsed = both(body(item(3), item(4, "AT_RISK"), item(1)), recall)
    assert isinstance(parsed, PhoneNumberList)
    assert [o.line_id for o in parsed.observations] == ["line-3", "line-4", "line-1"]
    assert len(recall) == 3  # line-2 is forgotten, not kept forever


@pytest.mark.parametrize("second", [
    body(item(1), item(2), {"id": "line-1", "phone_number": "+1", "reputation": {}}),
    body(item(1), item(2), item(2)),  # a duplicate of a remembered item
    body(item(1), {**item(5), "id": "line-1"}),  # a new item repeating a remembered id
    body(item(1), {"id": "x", "phone_number": "+1", "reputation": {"status": 3}}),
    body(item(1), item(2, line_type=["odd"])),
    b'{"phone_numbers": [' + orjson.dumps(item(1)) + b', {"id": "\xff"}]}',
    body(item(1), item(2))[:-1] + b', "has_more": true}',
    b'{"phone_numbers": {}}',
    b"not json",
])
def test_it_skips_and_fails_exactly_as_a_fresh_parse(second: bytes) -> None:
    recall = ItemRecall()
    both(body(item(1), item(2)), recall)
    both(second, recall)
    both(body(item(1), item(2, "CRITICAL")), recall)  # and recovers after it


FLEET = [item(n) for n in range(300)]


@pytest.mark.parametrize("second", [
    [*FLEET[:10], item(10, "CRITICAL"), *FLEET[11:]],  # changed in place
    [*FLEET[:10], {**item(10, "CRITICAL"), "id": "line-20"}, *FLEET[11:]],  # repeats an id
    [*FLEET[:10], item(10), *FLEET[10:]],  # a line listed twice
    [item(1000), *FLEET],  # a line added at the front: every other one moved
    FLEET[1:],  # the first one gone
    [*FLEET[:5], *FLEET[6:150], *FLEET[150:][::-1], item(5)],  # reordered
])
def test_a_large_answer_parses_as_a_fresh_parse_however_it_changed(
        second: list[dict[str, Any]]) -> None:
    recall = ItemRecall()
    both(body(*FLEET), recall)
    both(body(*second), recall)
    both(body(*FLEET), recall)


@profiles(short=60, full=300)
def test_any_sequence_of_bodies_parses_as_each_would_alone(examples: int) -> None:
    @settings(max_examples=examples, deadline=timedelta(seconds=5),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(st.sampled_from(SEEDS) | BODIES, min_size=2, max_size=4))
    def same(bodies: list[bytes]) -> None:
        recall = ItemRecall()
        for data in bodies:
            both(data, recall)

    same()
