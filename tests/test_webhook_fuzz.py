"""Fuzzing the webhook endpoint (bounded): arbitrary bodies and headers, signed or not, never
crash it or get a 5xx; only a validly signed status update is ever recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from monitor.config import parse_config
from monitor.http.server import build_app
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import SimulatorServer
from monitor.simulator.webhooks import new_secret
from monitor.store.schema import WebhookEvent
from monitor.webhooks.verify import sign
from tests.support.fuzzing import profiles

SECRET = new_secret()
HEADER_NAMES = ["webhook-id", "webhook-timestamp", "webhook-signature", "x-webhook-signature",
                "x-webhook-timestamp", "content-type", "content-length"]
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
# Any bytes a header can carry on the wire (not CR, LF or NUL): non-ASCII ones included.
header_values = printable | st.binary(max_size=80).filter(
    lambda value: not any(c in value for c in b"\r\n\x00"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12)
envelopes = st.fixed_dictionaries({
    "event_type": st.sampled_from(["phone_number.status_updated", "other.event", ""]) | st.text(),
    "event_id": st.text(max_size=300) | st.none(),
    "data": st.fixed_dictionaries({}, optional={
        "phone_number": st.sampled_from(["+12025550101", ""]) | st.text(max_size=20),
        "new_status": st.sampled_from(["FLAGGED", "ACTIVE"]) | json_values,
        "new_reputation": st.sampled_from(["CRITICAL", "AT_RISK"]) | json_values,
        "changed_at": st.sampled_from(["2026-02-18T18:35:05.000Z", "yesterday"]) | json_values,
    }) | json_values,
}).map(orjson.dumps)
bodies = st.binary(max_size=2000) | envelopes
async def _pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


STATUS_UPDATE = (Path(__file__).parent / "fixtures" / "status_updated.json").read_bytes()


@pytest.mark.timeout(600)
@profiles(short=50, full=250)
def test_no_request_crashes_the_endpoint_or_gets_a_5xx(
        database_url: str, sim_server: SimulatorServer, tmp_path: Path, examples: int) -> None:
    config = parse_config({
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                      "webhook_secret_env": "FUZZ_SECRET", "accept_legacy_signatures": True}],
        "database": {"url": database_url},
        "server": {"max_body_bytes": 4096},
    }, environ={"FUZZ_SECRET": SECRET})
    with asyncio.Runner() as runner:
        engine, sessions = open_database(config)
        runtime = runner.run(Runtime(config, engine, sessions).__aenter__())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(
            app=build_app(runtime, started_at=datetime.now(UTC))), base_url="http://monitor")
        answered: list[int] = []

        # One request of each kind the endpoint must tell apart, whatever the draw.
        @example(body=STATUS_UPDATE, headers={}, signed=True, webhook_id="w-fixture",
                 chunked=False)
        @example(body=STATUS_UPDATE, headers={}, signed=False, webhook_id="", chunked=False)
        @example(body=b"{not json", headers={}, signed=True, webhook_id="w-garbage",
                 chunked=True)
        @example(body=b"x" * 5000, headers={}, signed=False, webhook_id="", chunked=True)
        @example(body=b"{}", headers={"x-webhook-signature": b"\xff\xfe",
                                      "x-webhook-timestamp": b"1"}, signed=False,
                 webhook_id="", chunked=False)
        @given(body=bodies, headers=st.dictionaries(st.sampled_from(HEADER_NAMES),
                                                    header_values, max_size=5),
               signed=st.booleans(), webhook_id=printable, chunked=st.booleans())
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def one_request(body: bytes, headers: dict[str, str | bytes], signed: bool,
                        webhook_id: str, chunked: bool) -> None:
            if signed:
                headers = {**headers, **sign(SECRET, webhook_id=webhook_id or "id",
                                             timestamp=int(datetime.now(UTC).timestamp()),
                                             body=body)}
            content: bytes | AsyncIterator[bytes] = body
            if signed or chunked:
                headers.pop("content-length", None)
            if chunked:  # no Content-Length: the size is learnt as the pieces arrive
                content = _pieces(body[:len(body) // 2], body[len(body) // 2:])
            response = runner.run(client.post("/webhooks/linq", content=content,
                                              headers=headers))
            runner.run(runtime.webhooks.drain())
            assert response.status_code in {200, 400, 401, 413}, response.text
            answered.append(response.status_code)

        try:
            one_request()
        finally:
            runner.run(client.aclose())
            runner.run(runtime.__aexit__(None, None, None))
    assert {200, 400, 401} <= set(answered)  # the fuzz reached every branch
    engine = open_database(config, upgrade=False)[0]
    with engine.connect() as conn:
        recorded = conn.scalar(select(func.count()).select_from(WebhookEvent))
    engine.dispose()
    assert recorded is not None and 0 < recorded <= answered.count(200)
