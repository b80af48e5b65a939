"""Every body the simulator serves, read by Linq's own SDK (linq-python 0.65.0).

The SDK is generated from Linq's OpenAPI spec, so its pydantic models are the contract: a
body that fails ``model_validate_json(..., strict=True)``, or carries a key the model does
not know (the SDK's models allow extras, so this test walks them for leftovers), means the
simulator has drifted from the real API and every test built on it proves less.

Coverage (body -> model):
- ``GET /v3/phone_numbers``                     -> PhoneNumberListResponse
- ``POST .../reputation_audit`` (new, joined)   -> ReputationAuditStarted
- ``GET .../reputation_audit/{id}``             -> ReputationAudit (pending, complete, error)
- ``GET /v3/webhook-subscriptions``             -> WebhookSubscriptionListResponse
- ``POST /v3/webhook-subscriptions``            -> WebhookSubscriptionCreateResponse
- ``PUT /v3/webhook-subscriptions/{id}``        -> WebhookSubscription
- every event ``WebhookSender`` builds          -> its ``*WebhookEvent`` model
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pydantic
import pytest
from linq._models import BaseModel as SdkModel
from linq.types import (
    Chat,
    ChatCreatedWebhookEvent,
    MessageReceivedWebhookEvent,
    PhoneNumberAssignedWebhookEvent,
    PhoneNumberForwardingUpdatedWebhookEvent,
    PhoneNumberListResponse,
    PhoneNumberReleasedWebhookEvent,
    PhoneNumberStatusUpdatedWebhookEvent,
    ReputationAudit,
    ReputationAuditStarted,
    WebhookSubscription,
    WebhookSubscriptionCreateResponse,
    WebhookSubscriptionListResponse,
)

from monitor.simulator import Simulator
from monitor.simulator.server import SimulatorServer
from monitor.simulator.webhooks import Delivery, WebhookSender, new_secret

M = TypeVar("M", bound=pydantic.BaseModel)
AUTH = {"Authorization": "Bearer sim-token"}
PHONE = "+12025550101"


def read_strictly(model: type[M], body: bytes) -> M:
    """``body`` as ``model``, failing on a missing, mistyped or unknown key anywhere."""
    parsed = model.model_validate_json(body, strict=True)
    leftovers = list(_extras(parsed, model.__name__))
    assert not leftovers, f"keys the SDK does not know: {leftovers}"
    return parsed


def _extras(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            yield f"{where}.{key}"
        for name in type(value).model_fields:
            yield from _extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _extras(item, f"{where}[{index}]")


@pytest.fixture
def api(sim_server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_server.url, headers=AUTH, timeout=10) as client:
        yield client


def test_it_serves_a_phone_number_list_the_sdk_reads(sim: Simulator, api: httpx.Client) -> None:
    sim.add_line(PHONE, status="AT_RISK", forwarding_number="+12025550199")
    sim.add_line("+12025550102", line_type="RCS")
    sim.add_line("+12025550103", status="CRITICAL", line_type=None)
    sim.add_lines(3, status="HEALTHY", prefix="+1303")

    answer = api.get("/v3/phone_numbers")

    assert answer.status_code == 200
    listing = read_strictly(PhoneNumberListResponse, answer.content)
    assert [(n.phone_number, n.reputation.status, n.line_type) for n in listing.phone_numbers][:3] \
        == [(PHONE, "AT_RISK", "iMessage"), ("+12025550102", "HEALTHY", "RCS"),
            ("+12025550103", "CRITICAL", None)]
    assert len(listing.phone_numbers) == 6


class ChatsPage(SdkModel):
    """A page of ``chats.list_chats`` as the SDK's ``ListChatsPagination`` reads it (that
    class needs a client to build; its two fields are these)."""

    chats: list[Chat]
    next_cursor: str | None = None


def test_it_serves_chat_pages_the_sdk_reads(sim: Simulator, api: httpx.Client) -> None:
    sim.add_line(PHONE)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    sim.chats.add_chats(PHONE, 3, at=at)
    sim.chats.add_chats(PHONE, 2, at=at, status="AT_RISK")

    first = read_strictly(ChatsPage, api.get("/v3/chats", params={"limit": 3}).content)
    assert first.next_cursor
    rest = read_strictly(ChatsPage, api.get(
        "/v3/chats", params={"limit": 3, "cursor": first.next_cursor}).content)

    assert rest.next_cursor is None
    chats = first.chats + rest.chats
    assert [c.health_status.status for c in chats if c.health_status] == \
        ["HEALTHY"] * 3 + ["AT_RISK"] * 2


def test_it_starts_and_reads_audits_the_sdk_reads(sim: Simulator, api: httpx.Client) -> None:
    sim.add_line(PHONE)
    sim.audits.configure(delay=3600)
    path = f"/v3/phone_numbers/{PHONE.replace('+', '%2B')}/reputation_audit"

    started = api.post(path)
    joined = api.post(path)
    pending = api.get(f"{path}/{started.json()['audit_id']}")
    sim.audits.finish_running()
    complete = api.get(f"{path}/{started.json()['audit_id']}")

    assert (started.status_code, joined.status_code) == (202, 202)
    assert read_strictly(ReputationAuditStarted, started.content) \
        == read_strictly(ReputationAuditStarted, joined.content)
    assert read_strictly(ReputationAudit, pending.content).status == "pending"
    report = read_strictly(ReputationAudit, complete.content)
    assert report.report is not None
    assert report.status == "complete" and report.report.action_items


def test_it_reads_a_failed_audit_the_sdk_reads(sim: Simulator, api: httpx.Client) -> None:
    sim.add_line(PHONE)
    sim.audits.configure(fail=True)
    path = f"/v3/phone_numbers/{PHONE.replace('+', '%2B')}/reputation_audit"

    audit_id = api.post(path).json()["audit_id"]
    failed = read_strictly(ReputationAudit, api.get(f"{path}/{audit_id}").content)

    assert failed.status == "error" and failed.error


def test_it_serves_webhook_subscriptions_the_sdk_reads(api: httpx.Client) -> None:
    created = api.post("/v3/webhook-subscriptions", json={
        "target_url": "https://monitor.example/webhooks/linq",
        "subscribed_events": ["phone_number.status_updated"]})
    updated = api.put(f"/v3/webhook-subscriptions/{created.json()['id']}",
                      json={"is_active": False})
    listed = api.get("/v3/webhook-subscriptions")

    assert created.status_code == 201
    secret = read_strictly(WebhookSubscriptionCreateResponse, created.content)
    assert secret.signing_secret.startswith("whsec_")
    change = read_strictly(WebhookSubscription, updated.content)
    assert change.is_active is False
    listing = read_strictly(WebhookSubscriptionListResponse, listed.content)
    assert [(s.target_url, s.is_active) for s in listing.subscriptions] \
        == [("https://monitor.example/webhooks/linq", False)]


def _a_chat() -> dict[str, Any]:
    """A chat as the simulator serves it (GET /v3/chats), for the chat-bearing events."""
    sim = Simulator()
    sim.add_line(PHONE)
    (chat_id,) = sim.chats.add_chats(PHONE, 1, at=datetime(2026, 11, 1, tzinfo=UTC),
                                     status="AT_RISK")
    return sim.chats.chat(chat_id)


# Each event builder of WebhookSender, called with every key Linq sends, and its model.
EVENTS: dict[str, tuple[Callable[[WebhookSender], Delivery], type[pydantic.BaseModel]]] = {
    "status_updated": (
        lambda sender: sender.status_updated(
            PHONE, previous_status="ACTIVE", new_status="FLAGGED",
            previous_reputation="AT_RISK", new_reputation="CRITICAL"),
        PhoneNumberStatusUpdatedWebhookEvent),
    "assigned": (lambda sender: sender.assigned(PHONE), PhoneNumberAssignedWebhookEvent),
    "released": (lambda sender: sender.released(PHONE), PhoneNumberReleasedWebhookEvent),
    "message_event": (lambda sender: sender.message_event(_a_chat()), MessageReceivedWebhookEvent),
    "chat_event": (lambda sender: sender.chat_event(_a_chat()), ChatCreatedWebhookEvent),
    "forwarding_updated": (
        lambda sender: sender.forwarding_updated(PHONE, before=None, after="+14155550199"),
        PhoneNumberForwardingUpdatedWebhookEvent),
}
_NOT_BUILDERS = {"event", "headers", "send"}


@pytest.mark.parametrize("builder", sorted(EVENTS))
def test_it_sends_webhook_events_the_sdk_reads(builder: str) -> None:
    build, model = EVENTS[builder]

    delivery = build(WebhookSender(new_secret()))

    event = read_strictly(model, delivery.body)
    assert event.model_dump()["event_id"] == delivery.event_id


def test_it_has_a_model_for_every_event_the_sender_builds() -> None:
    builders = {name for name, _ in inspect.getmembers(WebhookSender, inspect.isfunction)
                if not name.startswith("_")} - _NOT_BUILDERS
    assert builders == set(EVENTS), "a new WebhookSender event needs its SDK model here"
