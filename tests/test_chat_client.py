"""The chats page fetch: one request per call, the tolerant decoder, errors mapped."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from monitor.api.chats import decode_chat, parse_chat_page
from monitor.api.client import LinqClient
from monitor.errors import ApiAuthError, ApiPayloadError, ApiRateLimited
from monitor.simulator import Simulator, SimulatorServer

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _chat(**over: object) -> dict[str, object]:
    chat: dict[str, object] = {
        "id": "c1", "updated_at": "2026-11-02T00:00:00Z", "created_at": "2026-11-01T00:00:00Z",
        "handles": [{"handle": "+15550000000", "is_me": False},
                    {"handle": "+12025550001", "is_me": True}],
        "health_status": {"status": "AT_RISK", "doc_url": "https://d/x",
                          "updated_at": "2026-11-01T12:00:00Z"},
        "is_archived": False, "is_group": False,
    }
    chat.update(over)
    return chat


async def test_it_fetches_one_page_and_follows_the_cursor() -> None:
    sim = Simulator(token="sim-token")
    sim.chats.add_chats("+12025550001", 150, at=T0, status="CRITICAL")
    with SimulatorServer(sim) as server:
        async with LinqClient(base_url=server.url, token="sim-token") as client:
            first = await client.list_chats()
            second = await client.list_chats(cursor=first.next_cursor)
    assert (len(first.records), first.next_cursor) == (100, "100")
    assert (len(second.records), second.next_cursor) == (50, None)
    record = first.records[0]
    assert (record.phone_number, record.status, record.changed_at) == (
        "+12025550001", "CRITICAL", T0)
    assert record.doc_url and record.doc_url.endswith("#critical")
    assert len(first.trace_id or "") == 32
    assert sim.chats.requests == 2


async def test_a_429_is_one_request_and_carries_retry_after() -> None:
    sim = Simulator(token="sim-token")
    sim.chats.set_rate_limit(1)
    with SimulatorServer(sim) as server:
        async with LinqClient(base_url=server.url, token="sim-token", max_retries=2) as client:
            await client.list_chats()
            with pytest.raises(ApiRateLimited) as caught:
                await client.list_chats()
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 60
    assert sim.chats.requests == 2  # no retry spent the budget


async def test_a_wrong_token_is_an_auth_error() -> None:
    sim = Simulator(token="sim-token")
    with SimulatorServer(sim) as server:
        async with LinqClient(base_url=server.url, token="nope") as client:
            with pytest.raises(ApiAuthError):
                await client.list_chats()


def test_the_decoder_skips_an_odd_chat_alone_and_keeps_unknown_statuses() -> None:
    body = orjson.dumps({"chats": [
        _chat(),
        _chat(id="c2", health_status={"status": "SOURING", "updated_at": "2026-11-01T00:00:00Z"}),
        _chat(id="c3", handles=[]),  # no line of ours: cannot be attributed
        _chat(id="c4", health_status="bad"),
        {"id": 5},
        _chat(id="c6", updated_at=None, health_status={"status": "HEALTHY"}),  # no time at all
    ], "next_cursor": 200, "extra": True})
    page = parse_chat_page(body)
    assert [(r.chat_id, r.status) for r in page.records] == [("c1", "AT_RISK"),
                                                            ("c2", "SOURING")]
    assert page.skipped == 4
    assert page.next_cursor == "200"
    c1 = page.records[0]
    assert c1.updated_at == datetime(2026, 11, 2, tzinfo=UTC)
    assert c1.changed_at == datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("body", [b"<html>", b'{"data": []}', b'{"chats": 3}', b"[]"])
def test_a_page_of_the_wrong_shape_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(ApiPayloadError):
        parse_chat_page(body)


def test_a_message_events_chat_takes_its_line_and_activity_from_the_event() -> None:
    at = datetime(2026, 11, 3, tzinfo=UTC)
    record = decode_chat({"id": "c9", "health_status": {
        "status": "OPTED_OUT", "doc_url": "https://d/o", "updated_at": "2026-11-02T00:00:00Z"},
        "owner_handle": {"handle": "+12025550001"}}, line="+12025550001", active_at=at)
    assert record is not None
    assert (record.phone_number, record.status, record.updated_at) == (
        "+12025550001", "OPTED_OUT", at)
    assert decode_chat({"id": "c9"}, line="+12025550001", active_at=at) is None
