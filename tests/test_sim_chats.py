"""The simulator's chats: GET /v3/chats pages, its rate limit, the souring scenario and the
message/chat webhook events that carry chat.health_status."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from monitor.simulator import Simulator, SimulatorServer, load_scenario, parse_scenario
from monitor.simulator.chats import ChatDesk
from monitor.simulator.webhooks import WebhookSender, new_secret
from monitor.webhooks.verify import Signer, verify

AUTH = {"Authorization": "Bearer sim-token"}
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_it_pages_every_chat_once_following_next_cursor_on_both_paths() -> None:
    sim = Simulator(token="sim-token")
    for n in range(3):
        sim.chats.add_chats(f"+1202555000{n}", 90, at=T0)
    seen: list[str] = []
    with SimulatorServer(sim) as server:
        for prefix in ("", "/api/partner"):
            seen.clear()
            cursor: str | None = None
            pages = 0
            while True:
                params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
                answer = httpx.get(f"{server.url}{prefix}/v3/chats", params=params,
                                   headers=AUTH)
                assert answer.status_code == 200
                assert len(answer.headers["x-trace-id"]) == 32
                body = answer.json()
                seen += [chat["id"] for chat in body["chats"]]
                pages += 1
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert pages == 3
            assert len(seen) == len(set(seen)) == 270
    assert sim.chats.requests == 6


def test_it_serves_the_sdk_chat_shape_and_filters_by_line() -> None:
    sim = Simulator(token="sim-token")
    sim.chats.add_chats("+12025550001", 3, at=T0)
    sim.chats.add_chats("+12025550002", 2, at=T0, status="AT_RISK")
    body = orjson.loads(sim.chats.list({"from": "+12025550002"}).body)
    assert body["next_cursor"] is None
    assert [c["health_status"]["status"] for c in body["chats"]] == ["AT_RISK", "AT_RISK"]
    chat = body["chats"][0]
    assert {"id", "created_at", "updated_at", "display_name", "handles", "health_status",
            "is_archived", "is_group", "service"} <= chat.keys()
    me = [h for h in chat["handles"] if h["is_me"]]
    assert [h["handle"] for h in me] == ["+12025550002"]
    assert chat["health_status"]["doc_url"].endswith("#at-risk")
    assert chat["health_status"]["updated_at"] == "2026-11-01T00:00:00.000Z"


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"cursor": "x"},
                                    {"limit": "ten"}])
def test_it_answers_a_bad_limit_or_cursor_with_400(params: dict[str, str]) -> None:
    assert ChatDesk().list(params).status == 400


def test_it_answers_429_with_retry_after_over_its_rate_limit() -> None:
    clock = [100.0]
    desk = ChatDesk(rate_limit=3, monotonic=lambda: clock[0])
    assert [desk.list({}).status for _ in range(3)] == [200, 200, 200]
    clock[0] += 20
    limited = desk.list({})
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "40"
    assert orjson.loads(limited.body)["error"]["code"] == 1007
    clock[0] += 40
    assert desk.list({}).status == 200
    assert (desk.requests, desk.limited) == (5, 1)


def test_it_needs_the_token_for_chats() -> None:
    sim = Simulator(token="sim-token")
    with SimulatorServer(sim) as server:
        answer = httpx.get(f"{server.url}/v3/chats", headers={"Authorization": "Bearer no"})
    assert answer.status_code == 401
    assert sim.chats.requests == 0


def test_the_souring_scenario_turns_one_lines_chats_bad_on_its_clock_before_the_line() -> None:
    sim = Simulator(load_scenario("souring-chats"))
    assert len(sim.chats) == 200
    line = "+12025550004"

    def unhealthy() -> int:
        return sum(c["health_status"]["status"] != "HEALTHY" for c in sim.chats.chats_of(line))

    history = []
    for _ in range(14):
        body = orjson.loads(sim.next_response().body)
        status = next(i["reputation"]["status"] for i in body["phone_numbers"]
                      if i["phone_number"] == line)
        history.append((unhealthy(), status))
    assert history[2] == (1, "HEALTHY")  # step 3: the first chat goes bad
    assert history[10] == (9, "HEALTHY")  # step 11: nine of twenty, line still HEALTHY
    assert history[13] == (9, "AT_RISK")  # step 14: only now the line itself
    # Step 3 happened 3 x 6 h after the start on the scenario clock.
    changed = [c["health_status"]["updated_at"] for c in sim.chats.chats_of(line)]
    assert "2026-11-01T18:00:00.000Z" in changed
    others = [c for n in (1, 2, 3, 5) for c in sim.chats.chats_of(f"+1202555000{n}")]
    assert {c["health_status"]["status"] for c in others} == {"HEALTHY"}


def test_set_counts_changes_as_few_chats_as_it_can() -> None:
    desk = ChatDesk()
    desk.add_chats("+12025550001", 5, at=T0)
    later = datetime(2026, 11, 2, tzinfo=UTC)
    desk.set_counts("+12025550001", {"AT_RISK": 2}, at=T0)
    desk.set_counts("+12025550001", {"AT_RISK": 1, "CRITICAL": 1}, at=later)
    statuses = [c["health_status"]["status"] for c in desk.chats_of("+12025550001")]
    assert statuses == ["AT_RISK", "CRITICAL", "HEALTHY", "HEALTHY", "HEALTHY"]
    stamps = [c["health_status"]["updated_at"] for c in desk.chats_of("+12025550001")]
    assert stamps[0].startswith("2026-11-01") and stamps[1].startswith("2026-11-02")
    with pytest.raises(ValueError, match="5 chats"):
        desk.set_counts("+12025550001", {"AT_RISK": 6}, at=later)


def test_a_scenario_naming_more_unhealthy_chats_than_a_line_has_is_refused() -> None:
    with pytest.raises(ValueError, match=r"step\[0\]\.chats"):
        parse_scenario('lines = 1\nchats = 2\n[[step]]\nchats = { "+12025550001" = '
                       '{ AT_RISK = 3 } }\n')


def test_message_and_chat_events_carry_the_chats_health_and_are_signed() -> None:
    desk = ChatDesk()
    [chat_id] = desk.add_chats("+12025550001", 1, at=T0, status="OPTED_OUT")
    sender = WebhookSender(new_secret())
    for delivery in (sender.message_event(desk.chat(chat_id)),
                     sender.chat_event(desk.chat(chat_id))):
        headers = {k.lower(): v for k, v in sender.headers(delivery).items()}
        assert verify(delivery.body, headers, [Signer("a", sender.secret)]).account == "a"
        data = orjson.loads(delivery.body)["data"]
        chat = data.get("chat", data)
        assert chat["id"] == chat_id
        assert chat["health_status"]["status"] == "OPTED_OUT"
    message = orjson.loads(sender.message_event(desk.chat(chat_id)).body)
    assert message["event_type"] == "message.received"
    assert message["data"]["chat"]["owner_handle"]["handle"] == "+12025550001"


def test_a_scenario_sets_the_chats_rate_limit() -> None:
    sim = Simulator(parse_scenario("chats_rate_limit = 2\n"))
    assert [sim.chats.list({}).status for _ in range(3)] == [200, 200, 429]
