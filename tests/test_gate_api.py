"""The pre-send gate API: what it answers (from memory), its auth, and its OpenAPI contract
checked by schemathesis against the daemon subprocess on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from monitor.config import parse_config
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from tests.support.daemon import DaemonProcess, write_config

SECRET = new_secret()
API_TOKEN = "gate-token-5f1c9a"
HEALTHY, AT_RISK, CRITICAL, FLAGGED = ("+12025550101", "+12025550102", "+12025550103",
                                       "+12025550104")


@pytest.fixture
async def runtime(database_url: str, sim_server: SimulatorServer) -> AsyncIterator[Runtime]:
    config = parse_config({
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                      "webhook_secret_env": "GATE_WEBHOOK_SECRET"}],
        "database": {"url": database_url},
        "server": {"api_token_env": "GATE_API_TOKEN"},
        "lines": [{"match": CRITICAL, "name": "sales 1", "labels": {"team": "sales"}}],
    }, environ={"GATE_WEBHOOK_SECRET": SECRET, "GATE_API_TOKEN": API_TOKEN})
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as rt:
        yield rt


@pytest.fixture
async def api(runtime: Runtime, sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """The gate, with four lines: one per status, and one FLAGGED by a webhook."""
    ids = {phone: sim.add_line(phone, status=status) for phone, status in
           ((HEALTHY, "HEALTHY"), (AT_RISK, "AT_RISK"), (CRITICAL, "CRITICAL"),
            (FLAGGED, "HEALTHY"))}
    assert (await runtime.pollers["main"].poll()).ok
    app = build_app(runtime, started_at=datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate",
                                 headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        sender = WebhookSender(SECRET)
        delivery = sender.status_updated(FLAGGED, new_status="FLAGGED")
        answer = await client.post("/webhooks/linq", content=delivery.body,
                                   headers=sender.headers(delivery))
        assert answer.status_code == 200
        await runtime.webhooks.drain()
        client.line_ids = ids  # type: ignore[attr-defined]
        yield client


async def test_a_line_says_whether_to_send_with_its_status_and_since_when(
        api: httpx.AsyncClient) -> None:
    answers = {phone: (await api.get(f"/api/v1/lines/{phone}")).json()
               for phone in (HEALTHY, AT_RISK, CRITICAL, FLAGGED)}
    assert {p: a["advice"] for p, a in answers.items()} == {
        HEALTHY: "send", AT_RISK: "slow_down", CRITICAL: "pause", FLAGGED: "pause"}
    critical = answers[CRITICAL]
    assert critical["status"] == "CRITICAL" and critical["severity"] == 2
    assert critical["doc_url"].startswith("https://docs.linqapp.com/")
    assert datetime.fromisoformat(critical["since"]) <= datetime.now(UTC)
    assert (answers[FLAGGED]["service_status"], answers[FLAGGED]["flagged"]) == ("FLAGGED", True)
    assert answers[HEALTHY]["service_status"] is None
    assert answers[HEALTHY]["labels"] == {} and answers[HEALTHY]["flapping"] is False
    by_id = (await api.get(f"/api/v1/lines/{critical['line_id']}")).json()
    assert by_id == critical


async def test_the_list_filters_by_status_account_and_flag(api: httpx.AsyncClient) -> None:
    everything = (await api.get("/api/v1/lines")).json()
    assert everything["count"] == 4
    assert [x["phone_number"] for x in everything["lines"]] == [HEALTHY, AT_RISK, CRITICAL,
                                                                FLAGGED]
    critical = (await api.get("/api/v1/lines", params={"status": "CRITICAL"})).json()
    assert [x["phone_number"] for x in critical["lines"]] == [CRITICAL]
    flagged = (await api.get("/api/v1/lines", params={"status": "FLAGGED"})).json()
    assert [x["phone_number"] for x in flagged["lines"]] == [FLAGGED]
    assert (await api.get("/api/v1/lines", params={"account": "other"})).json()["count"] == 0
    # Labels come from [[lines]] in the config.
    sales = (await api.get("/api/v1/lines", params={"label": "team=sales"})).json()
    assert [(x["phone_number"], x["labels"]) for x in sales["lines"]] == [
        (CRITICAL, {"team": "sales"})]
    assert (await api.get("/api/v1/lines", params={"label": "team"})).json()["count"] == 1
    assert (await api.get("/api/v1/lines", params={"label": "team=ops"})).json()["count"] == 0


async def test_history_lists_changes_newest_first_with_their_source(
        api: httpx.AsyncClient) -> None:
    history = (await api.get(f"/api/v1/lines/{FLAGGED}/history")).json()
    assert [(c["kind"], c["to_status"], c["source"]) for c in history["changes"]] == [
        ("service", "FLAGGED", "webhook"), ("first_seen", "HEALTHY", "poll")]


async def test_an_unknown_line_is_a_json_404(api: httpx.AsyncClient) -> None:
    for path in ("/api/v1/lines/+19995550000", "/api/v1/lines/nope/history", "/api/v1/nothing"):
        answer = await api.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"]


async def test_the_api_needs_the_bearer_token_when_one_is_configured(
        api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {API_TOKEN}"}):
        answer = await api.get(f"/api/v1/lines/{HEALTHY}", headers=headers)
        assert answer.status_code == 401
        assert API_TOKEN not in answer.text
    # Probes and (without protect_metrics) the scrape stay open.
    assert (await api.get("/healthz", headers={"Authorization": ""})).status_code == 200
    assert (await api.get("/metrics", headers={"Authorization": ""})).status_code == 200


# -- the OpenAPI contract, against the real daemon ------------------------------------------------

@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp: Path = tmp_path_factory.mktemp("gate")
    sim = Simulator(token="sim-token")
    sim.add_line(HEALTHY)
    sim.add_line(CRITICAL, status="CRITICAL")
    with SimulatorServer(sim) as server:
        config = write_config(tmp / "config.toml", base_url=server.url,
                              database_url=f"sqlite:///{tmp / 'monitor.db'}", poll_interval="1h")
        process = DaemonProcess(config, log=tmp / "daemon.log").start()
        try:
            process.wait_for_polls(1)
            yield process
        finally:
            process.stop()


@pytest.fixture(scope="module")
def api_schema(daemon: DaemonProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(daemon.url + "/api/v1/openapi.json")


def test_every_answer_matches_the_openapi_document(api_schema: schemathesis.BaseSchema
                                                  ) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} == {
        "/api/v1/lines", "/api/v1/lines/{phone_or_id}", "/api/v1/lines/{phone_or_id}/history"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate()

        conforms()


def test_the_contract_covers_a_known_line(daemon: DaemonProcess,
                                          api_schema: schemathesis.BaseSchema) -> None:
    """Generated ids are almost never real lines: check a 200 against the schema too."""
    operation = api_schema["/api/v1/lines/{phone_or_id}"]["GET"]
    case = operation.Case(path_parameters={"phone_or_id": CRITICAL})
    response = case.call_and_validate()
    assert response.status_code == 200
    history = api_schema["/api/v1/lines/{phone_or_id}/history"]["GET"]
    assert history.Case(path_parameters={"phone_or_id": CRITICAL}).call_and_validate(
    ).status_code == 200
