"""Parsing GET /v3/phone_numbers bodies, including every drift fixture from shared/."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.api.payload import parse_phone_numbers
from monitor.errors import ApiPayloadError

# A copy of ../shared/fixtures, so a clone tests the same bodies wherever it lives.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_it_reads_the_current_shape_and_keeps_doc_urls_verbatim() -> None:
    parsed = parse_phone_numbers(load("phone_numbers.json"))
    assert [(o.phone_number, o.status) for o in parsed.observations] == [
        ("+12025551234", "HEALTHY"), ("+12025555678", "AT_RISK"), ("+12025550100", "CRITICAL"),
    ]
    assert parsed.observations[2].doc_url == (
        "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical")
    assert parsed.skipped == []


def test_it_keeps_an_unknown_status_verbatim() -> None:
    parsed = parse_phone_numbers(load("drift/unknown_status.json"))
    assert parsed.observations[0].status == "FLAGGED"


def test_it_falls_back_to_the_deprecated_health_status() -> None:
    parsed = parse_phone_numbers(load("drift/only_health_status.json"))
    (line,) = parsed.observations
    assert line.status == "AT_RISK"
    assert line.doc_url.endswith("phone-health#at-risk")


def test_it_prefers_reputation_when_both_fields_disagree() -> None:
    body = (b'{"phone_numbers": [{"id": "a", "phone_number": "+1", '
            b'"reputation": {"status": "CRITICAL"}, "health_status": {"status": "HEALTHY"}}]}')
    assert parse_phone_numbers(body).observations[0].status == "CRITICAL"


def test_it_skips_an_item_without_reputation_and_protects_its_line() -> None:
    parsed = parse_phone_numbers(load("drift/no_reputation.json"))
    assert parsed.observations == []
    (skipped,) = parsed.skipped
    assert "reputation" in skipped.reason
    assert "550e8400-e29b-41d4-a716-446655440000" in parsed.protected()


def test_it_skips_an_item_without_id_but_protects_it_by_phone_number() -> None:
    parsed = parse_phone_numbers(load("drift/item_without_id.json"))
    assert [o.phone_number for o in parsed.observations] == ["+12025555678"]
    assert "+12025551234" in parsed.protected()


def test_it_rejects_a_wrong_top_level_shape() -> None:
    with pytest.raises(ApiPayloadError, match="phone_numbers"):
        parse_phone_numbers(load("drift/wrong_shape.json"), trace_id="abc")


@pytest.mark.parametrize("body", [b"", b"<html>502</html>", b'{"phone_numbers": [', b"[]",
                                  b'"text"', b"null"])
def test_it_rejects_bodies_that_are_not_the_documented_json(body: bytes) -> None:
    with pytest.raises(ApiPayloadError):
        parse_phone_numbers(body)


@pytest.mark.parametrize("item", [
    b"1", b'"x"', b"null", b'{"id": 5, "phone_number": "+1", "reputation": {"status": "HEALTHY"}}',
    b'{"id": "a", "phone_number": "+1", "reputation": "HEALTHY"}',
    b'{"id": "a", "phone_number": "+1", "reputation": {"status": 2}}',
    b'{"id": "a", "reputation": {"status": "HEALTHY"}}',
    # Strings that are not UTF-8 (found by the fuzz test): in a value, in a key, in an item
    # that also lacks a field. (A bad string in an unknown field is never read, so harmless.)
    b'{"id": "\xb6a", "phone_number": "+1", "reputation": {"status": "HEALTHY"}}',
    b'{"id": "a", "phone_number": "\xab1", "reputation": {"status": "HEALTHY"}}',
    b'{"\xf0hone_number": "+1", "reputation": {"status": "HEALTHY"}}',
])
def test_it_skips_malformed_items_without_failing_the_poll(item: bytes) -> None:
    body = b'{"phone_numbers": [' + item + b', {"id": "ok", "phone_number": "+2", ' \
           b'"reputation": {"status": "HEALTHY", "doc_url": null}}]}'
    parsed = parse_phone_numbers(body)
    assert [o.line_id for o in parsed.observations] == ["ok"]
    assert len(parsed.skipped) == 1


def test_an_item_with_bytes_that_are_not_utf8_keeps_its_line_by_id_and_phone() -> None:
    body = (b'{"phone_numbers": ['
            b'{"id": "a", "phone_number": "+1", "reputation": {"status": "AT_\xffRISK"}}, '
            b'{"id": "b", "phone_number": "+2", "name": "caf\xe9", '
            b'"reputation": {"status": "CRITICAL", "doc_url": "https://x/\xc3("}}]}')
    parsed = parse_phone_numbers(body)
    assert [(o.line_id, o.status, o.doc_url) for o in parsed.observations] == [
        ("b", "CRITICAL", None)]
    (skipped,) = parsed.skipped
    assert "not UTF-8" in skipped.reason
    assert {"a", "+1"} <= parsed.protected()


def test_a_byte_that_is_not_utf8_outside_any_string_fails_the_poll() -> None:
    body = b'{"phone_numbers": [\xff{"id": "a", "phone_number": "+1"}]}'
    with pytest.raises(ApiPayloadError, match="not JSON"):
        parse_phone_numbers(body)


def test_it_ignores_unknown_fields_and_a_non_string_doc_url() -> None:
    body = (b'{"extra": 1, "phone_numbers": [{"id": "a", "phone_number": "+1", "new": [1], '
            b'"reputation": {"status": "AT_RISK", "doc_url": 7, "score": 0.3}}]}')
    (line,) = parse_phone_numbers(body).observations
    assert (line.status, line.doc_url) == ("AT_RISK", None)


def test_it_keeps_the_first_of_duplicate_ids() -> None:
    body = (b'{"phone_numbers": ['
            b'{"id": "a", "phone_number": "+1", "reputation": {"status": "HEALTHY"}}, '
            b'{"id": "a", "phone_number": "+1", "reputation": {"status": "CRITICAL"}}]}')
    parsed = parse_phone_numbers(body)
    assert [o.status for o in parsed.observations] == ["HEALTHY"]
    assert parsed.skipped[0].reason == "duplicate id"


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/fixtures beside this checkout")
def test_it_tests_the_current_shared_fixtures() -> None:
    shared = {p.relative_to(SHARED): p.read_bytes() for p in SHARED.rglob("*.json")}
    copied = {p.relative_to(FIXTURES): p.read_bytes() for p in FIXTURES.rglob("*.json")}
    assert copied == shared, "tests/fixtures is out of date: copy ../shared/fixtures again"


@pytest.mark.parametrize("envelope", [
    b'"next_cursor": "c2", "has_more": true', b'"has_more": true', b'"next_cursor": "c2"'])
@pytest.mark.parametrize("item", [
    b'{"id": "a", "phone_number": "+12025551234", "reputation": {"status": "HEALTHY"}}',
    b'{"id": "a", "phone_number": 12, "reputation": {"status": "HEALTHY"}}',  # drifted item
    b'{"id": "a", "phone_number": "+1202\xff", "reputation": {"status": "HEALTHY"}}',  # not UTF-8
])
def test_one_page_of_several_is_refused_never_read_as_every_line(envelope: bytes,
                                                                 item: bytes) -> None:
    with pytest.raises(ApiPayloadError, match="one page of several"):
        parse_phone_numbers(b'{"phone_numbers": [' + item + b"], " + envelope + b"}")


def test_a_last_page_marker_is_the_whole_list() -> None:
    parsed = parse_phone_numbers(
        b'{"phone_numbers": [{"id": "a", "phone_number": "+12025551234", "reputation": '
        b'{"status": "HEALTHY"}}], "next_cursor": null, "has_more": false}')
    assert [o.phone_number for o in parsed.observations] == ["+12025551234"]
