"""The fake Linq API, exercised over a real socket the way the monitor's client will use it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from monitor.simulator import (
    Simulator,
    SimulatorServer,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
)

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
AUTH = {"Authorization": "Bearer sim-token"}
GUIDE = "https://docs.linqapp.com/channel/imessage/guides/phone-numbers/phone-reputation#"


@contextmanager
def serving(sim: Simulator, *, timeout: float = 5.0) -> Iterator[httpx.Client]:
    with (
        SimulatorServer(sim) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=timeout) as client,
    ):
        yield client


def statuses(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    items = response.json()["phone_numbers"]
    return {item["phone_number"]: item["reputation"]["status"] for item in items}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False
    assert body["trace_id"] == response.headers["x-trace-id"]
    error: dict[str, Any] = body["error"]
    assert error["status"] == response.status_code
    return error


def test_it_rejects_a_missing_or_wrong_token_with_linq_error_envelope() -> None:
    sim = Simulator()
    with serving(sim) as client:
        missing = client.get("/v3/phone_numbers", headers={"Authorization": ""})
        wrong = client.get("/v3/phone_numbers", headers={"Authorization": "Bearer nope"})

    for response in (missing, wrong):
        assert response.status_code == 401
        assert TRACE_ID.match(response.headers["x-trace-id"])
        error = error_of(response)
        assert error["code"] == 2004
        assert error["doc_url"] == "https://docs.linqapp.com/error/codes/2xxx/2004/"
        assert error["message"]
    assert missing.headers["x-trace-id"] != wrong.headers["x-trace-id"]
    assert (sim.request_count, sim.served_count) == (2, 0)


def test_it_serves_every_line_in_the_documented_shape_on_both_paths() -> None:
    sim = Simulator(token="secret")
    line_id = sim.add_line("+12025551234", status="AT_RISK", forwarding_number="+12025559999")
    with serving(sim) as client:
        client.headers["Authorization"] = "Bearer secret"
        short = client.get("/v3/phone_numbers")
        full = client.get("/api/partner/v3/phone_numbers")

    assert short.headers["content-type"] == "application/json"
    assert TRACE_ID.match(short.headers["x-trace-id"])
    assert short.json() == full.json()
    assert short.json() == {
        "phone_numbers": [
            {
                "id": line_id,
                "phone_number": "+12025551234",
                "reputation": {"status": "AT_RISK", "doc_url": GUIDE + "at-risk"},
                "forwarding_number": "+12025559999",
                "line_type": "iMessage",
            }
        ]
    }
    assert line_id == str(uuid.uuid5(uuid.NAMESPACE_URL, "+12025551234"))
    assert (sim.request_count, sim.served_count) == (2, 2)


def test_it_reflects_status_changes_on_the_next_poll() -> None:
    sim = Simulator()
    first, second = sim.add_lines(2)
    with serving(sim) as client:
        before = statuses(client.get("/v3/phone_numbers"))
        sim.set_status("+12020000001", "CRITICAL", doc_url="https://example.test/why")
        sim.set_many({second: "FLAGGED"})
        after = client.get("/v3/phone_numbers")

    assert before == {"+12020000001": "HEALTHY", "+12020000002": "HEALTHY"}
    assert statuses(after) == {"+12020000001": "CRITICAL", "+12020000002": "FLAGGED"}
    reputations = [item["reputation"] for item in after.json()["phone_numbers"]]
    assert reputations[0]["doc_url"] == "https://example.test/why"
    assert reputations[1]["doc_url"] == GUIDE + "flagged"
    assert [line["id"] for line in sim.lines()] == [first, second]


def test_it_answers_a_queued_500_once_then_serves_normally() -> None:
    sim = Simulator()
    sim.add_lines(1)
    sim.queue_error(500)
    with serving(sim) as client:
        failed = client.get("/v3/phone_numbers")
        ok = client.get("/v3/phone_numbers")

    assert failed.status_code == 500
    error = error_of(failed)
    assert error["code"] == 3006
    assert error["doc_url"] == "https://docs.linqapp.com/error/codes/3xxx/3006/"
    assert ok.status_code == 200
    assert (sim.request_count, sim.served_count) == (2, 1)


def test_it_sends_retry_after_in_seconds_with_a_429() -> None:
    sim = Simulator()
    sim.queue_error(429, retry_after=2, times=2)
    with serving(sim) as client:
        responses = [client.get("/v3/phone_numbers") for _ in range(3)]

    assert [response.status_code for response in responses] == [429, 429, 200]
    assert responses[0].headers["retry-after"] == "2"
    error = error_of(responses[0])
    assert (error["code"], error["retry_after"]) == (1007, 2)
    assert "retry-after" not in responses[2].headers


def test_it_sends_retry_after_as_an_http_date_when_asked() -> None:
    sim = Simulator()
    sim.queue_error(429, retry_after=30, retry_after_date=True)
    with serving(sim) as client:
        before = datetime.now(UTC).replace(microsecond=0)
        response = client.get("/v3/phone_numbers")

    when = parsedate_to_datetime(response.headers["retry-after"])
    assert before + timedelta(seconds=30) <= when <= before + timedelta(seconds=32)
    assert error_of(response)["retry_after"] == 30


def test_it_serves_a_queued_raw_body_byte_for_byte() -> None:
    sim = Simulator()
    sim.queue_raw("<html>Bad Gateway</html>", status=502, content_type="text/html")
    sim.queue_raw(b'{"data": []}')
    with serving(sim) as client:
        html = client.get("/v3/phone_numbers")
        drift = client.get("/v3/phone_numbers")

    assert (html.status_code, html.text) == (502, "<html>Bad Gateway</html>")
    assert html.headers["content-type"] == "text/html"
    assert TRACE_ID.match(html.headers["x-trace-id"])
    assert (drift.status_code, drift.content) == (200, b'{"data": []}')
    assert sim.served_count == 0


@pytest.mark.timeout(10)
def test_it_holds_a_delayed_answer_long_enough_for_a_client_timeout() -> None:
    sim = Simulator()
    sim.queue_delay(30)
    # The server notices the client leaving, so stopping it does not wait out the 30 s.
    with serving(sim, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v3/phone_numbers")
        sim.queue_delay(0.1)
        assert client.get("/v3/phone_numbers").status_code == 200
        assert client.get("/v3/phone_numbers").status_code == 200
    assert sim.served_count == 3  # the abandoned answer was produced, just never read


def test_it_advances_one_step_per_authorized_poll_and_loops() -> None:
    scenario = parse_scenario(
        """
        lines = 2
        loop = true
        [[step]]
        set = { "+12025550001" = "AT_RISK" }
        [[step]]
        set = { "+12025550002" = "AT_RISK" }
        error = 500
        [[step]]
        set = { "+12025550001" = "CRITICAL" }
        """
    )
    sim = Simulator(scenario)
    with serving(sim) as client:
        first = statuses(client.get("/v3/phone_numbers"))
        assert client.get("/v3/phone_numbers", headers={"Authorization": "x"}).status_code == 401
        assert client.get("/v3/phone_numbers").status_code == 500
        sim.queue_error(503)  # a queued answer does not consume a step
        assert client.get("/v3/phone_numbers").status_code == 503
        third = statuses(client.get("/v3/phone_numbers"))
        looped = statuses(client.get("/v3/phone_numbers"))

    assert first == {"+12025550001": "AT_RISK", "+12025550002": "HEALTHY"}
    assert third == {"+12025550001": "CRITICAL", "+12025550002": "AT_RISK"}
    # Looping restarts from the initial fleet, then applies step 1 again.
    assert looped == first


def test_it_keeps_serving_the_last_state_after_the_last_step_without_loop() -> None:
    scenario = parse_scenario('lines = 1\n[[step]]\nset = { "+12025550001" = "CRITICAL" }')
    sim = Simulator(scenario)
    with serving(sim) as client:
        polls = [statuses(client.get("/v3/phone_numbers")) for _ in range(3)]

    assert polls == [{"+12025550001": "CRITICAL"}] * 3


def test_it_removes_a_line_and_brings_it_back_with_the_same_id() -> None:
    scenario = parse_scenario(
        """
        lines = 3
        [[step]]
        remove = ["+12025550003"]
        [[step]]
        add = [{ phone_number = "+12025550003", status = "CRITICAL" }]
        """
    )
    sim = Simulator(scenario)
    original_id = sim.lines()[2]["id"]
    with serving(sim) as client:
        removed = statuses(client.get("/v3/phone_numbers"))
        returned = client.get("/v3/phone_numbers").json()["phone_numbers"]
        sim.remove_line(original_id)
        gone = statuses(client.get("/v3/phone_numbers"))

    assert "+12025550003" not in removed
    assert returned[-1]["id"] == original_id
    assert returned[-1]["reputation"]["status"] == "CRITICAL"
    assert gone == {"+12025550001": "HEALTHY", "+12025550002": "HEALTHY"}


def test_it_emits_the_deprecated_health_status_when_asked() -> None:
    scenario = parse_scenario("lines = 1\n[[step]]\n[[step]]\nlegacy_field = true")
    sim = Simulator(scenario)
    with serving(sim) as client:
        current = client.get("/v3/phone_numbers").json()["phone_numbers"][0]
        both = client.get("/v3/phone_numbers").json()["phone_numbers"][0]
        sim.set_legacy("only")
        only = client.get("/v3/phone_numbers").json()["phone_numbers"][0]

    assert "health_status" not in current
    assert both["health_status"] == both["reputation"]
    assert "reputation" not in only
    assert only["health_status"]["status"] == "HEALTHY"


@pytest.mark.timeout(60)
def test_it_renders_100k_lines_once_until_something_changes() -> None:
    sim = Simulator()
    ids = sim.add_lines(100_000)
    with serving(sim, timeout=30) as client:
        first = client.get("/v3/phone_numbers")
        second = client.get("/v3/phone_numbers")
        assert sim.render_count == 1
        assert sim.next_response().body is sim.next_response().body
        sim.set_status(ids[-1], "AT_RISK")
        changed = client.get("/v3/phone_numbers")

    assert first.content == second.content
    items = first.json()["phone_numbers"]
    assert (len(items), items[-1]["phone_number"]) == (100_000, "+12020100000")
    assert sim.render_count == 2
    assert ids[0] == str(uuid.uuid5(uuid.NAMESPACE_URL, "+12020000001"))
    assert changed.json()["phone_numbers"][-1]["reputation"]["status"] == "AT_RISK"


def test_it_answers_health_and_unknown_paths_with_a_trace_id() -> None:
    with SimulatorServer(Simulator()) as server:
        health = httpx.get(server.url + "/_sim/health")
        missing = httpx.get(server.url + "/v3/nothing-here")

    assert (health.status_code, health.text) == (200, "ok")
    assert missing.status_code == 404
    assert TRACE_ID.match(health.headers["x-trace-id"])
    assert TRACE_ID.match(missing.headers["x-trace-id"])


@pytest.mark.parametrize("name", builtin_scenarios())
def test_it_ships_scenarios_that_load_and_play_through(name: str) -> None:
    scenario = load_scenario(name)
    sim = Simulator(scenario)
    answers = [sim.next_response() for _ in range(2 * len(scenario.step) + 1)]

    assert sim.lines(), name
    assert any(answer.status == 200 for answer in answers)


def test_it_ships_a_demo_that_tells_the_promised_story() -> None:
    scenario = load_scenario("demo")
    statuses_set = {status for step in scenario.step for status in step.changes.values()}

    assert (scenario.lines, scenario.loop) == (12, True)
    assert {"AT_RISK", "CRITICAL", "HEALTHY", "FLAGGED"} <= statuses_set
    assert {step.error for step in scenario.step} >= {500, 429}
    assert any(step.remove for step in scenario.step)
    assert any(step.add for step in scenario.step)
    assert set(builtin_scenarios()) >= {"demo", "steady", "flaky-api"}


def test_it_numbers_generated_lines_on_from_the_last_batch() -> None:
    sim = Simulator()
    sim.add_lines(2)
    sim.add_lines(1, prefix="+44")
    sim.add_lines(1, status="AT_RISK")

    assert [(line["phone_number"], line["reputation"]["status"]) for line in sim.lines()] == [
        ("+12020000001", "HEALTHY"),
        ("+12020000002", "HEALTHY"),
        ("+44000000001", "HEALTHY"),
        ("+12020000003", "AT_RISK"),
    ]
    with pytest.raises(ValueError, match="already exists"):
        sim.add_line("+12020000003")


def test_it_generates_scenario_lines_with_stable_ids() -> None:
    sim = Simulator(parse_scenario('lines = 2\n[[line]]\nphone_number = "+12025559000"'))

    assert [line["phone_number"] for line in sim.lines()] == [
        "+12025550001",
        "+12025550002",
        "+12025559000",
    ]
    assert sim.lines()[0]["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, "+12025550001"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lines = 2\nbogus = 1", "bogus: Extra inputs are not permitted"),
        ('[[step]]\nset = { "+12025550001" = "AT_RISK" }', "step[0].set: no line"),
        ("lines = 1\n[[step]]\nerror = 200", "step[0].error"),
        ("[[step]]\nretry_after = 2", "step[0]: retry_after"),
        ('[[line]]\nphone_number = "12345"', "line[0].phone_number"),
        ("lines = [", "not valid TOML"),
    ],
)
def test_it_rejects_a_bad_scenario_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_scenario(text, source="bad.toml")
