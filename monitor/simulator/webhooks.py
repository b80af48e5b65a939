"""The simulator's webhook sender: Linq's phone-number events (``status_updated``,
``assigned``, ``released``, ``forwarding_updated``, shaped as in ``linq-python``'s
``PhoneNumber*WebhookEvent`` models), and message and chat events carrying
``chat.health_status``, signed with a ``whsec_`` secret the way Linq signs them, or
deliberately unsigned, forged or stale.

    sender = WebhookSender(secret)
    sender.send(url, sender.status_updated("+12025550101", new_status="FLAGGED"))
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from monitor.simulator.wire import new_trace_id
from monitor.webhooks.verify import sign


def new_secret() -> str:
    """A fresh signing secret in Linq's (Standard Webhooks') format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    event_id: str
    headers: dict[str, str] = field(default_factory=dict)
    event_type: str = "phone_number.status_updated"


class WebhookSender:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def status_updated(
        self,
        phone_number: str,
        *,
        new_status: str | None = None,
        previous_status: str | None = None,
        new_reputation: str | None = None,
        previous_reputation: str | None = None,
        changed_at: datetime | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """A status_updated event; keys left None are omitted from ``data``."""
        data: dict[str, Any] = {"phone_number": phone_number}
        for key, value in (("previous_status", previous_status), ("new_status", new_status),
                           ("previous_reputation", previous_reputation),
                           ("new_reputation", new_reputation)):
            if value is not None:
                data[key] = value
        moment = changed_at or datetime.now(UTC)
        data["changed_at"] = _iso(moment)
        return self.event("phone_number.status_updated", data, event_id=event_id)

    def assigned(self, phone_number: str, *, changed_at: datetime | None = None,
                 event_id: str | None = None) -> Delivery:
        """``phone_number.assigned``: the number joined the account (no id, no reputation)."""
        return self.event("phone_number.assigned", {
            "phone_number": phone_number,
            "changed_at": _iso(changed_at or datetime.now(UTC))}, event_id=event_id)

    def released(self, phone_number: str, *, changed_at: datetime | None = None,
                 event_id: str | None = None) -> Delivery:
        """``phone_number.released``: the number left the account."""
        return self.event("phone_number.released", {
            "phone_number": phone_number,
            "changed_at": _iso(changed_at or datetime.now(UTC))}, event_id=event_id)

    def forwarding_updated(self, phone_number: str, *, before: str | None, after: str | None,
                           event_id: str | None = None) -> Delivery:
        """``phone_number.forwarding_updated``, an account event (``data.change``)."""
        return self.event("phone_number.forwarding_updated", {
            "summary": "Forwarding number updated", "occurred_at": _iso(datetime.now(UTC)),
            "actor": {"type": "api"}, "origin": "api", "phone_number": phone_number,
            "change": {"from": before, "to": after}}, event_id=event_id)

    def message_event(self, chat: dict[str, Any], *, event_type: str = "message.received",
                      at: datetime | None = None, event_id: str | None = None) -> Delivery:
        """A message event (``MessageEventV2``, 2026-02-03 format) in `chat` (a chat in the
        API's shape, e.g. ``sim.chats.chat(id)``): ``data.chat`` carries its id, health
        and our handle as ``owner_handle``."""
        moment = _iso(at or datetime.now(UTC))
        me = next((h for h in chat["handles"] if h.get("is_me")), chat["handles"][0])
        other = next((h for h in chat["handles"] if h is not me), me)
        inbound = event_type == "message.received"
        data = {
            "id": f"msg_{uuid.uuid4().hex[:16]}",
            "chat": {"id": chat["id"], "health_status": chat["health_status"],
                     "is_group": chat.get("is_group", False), "owner_handle": me},
            "direction": "inbound" if inbound else "outbound",
            "parts": [{"type": "text", "value": "hello"}],
            "sender_handle": other if inbound else me,
            "service": chat.get("service") or "iMessage",
            "sent_at": moment,
        }
        return self.event(event_type, data, event_id=event_id)

    def chat_event(self, chat: dict[str, Any], *, event_type: str = "chat.created",
                   event_id: str | None = None) -> Delivery:
        """A chat event whose ``data`` is the chat in ``chat.created``'s shape: the chat as
        listed, less ``is_archived``, which that event does not carry (linq-python's
        ``ChatCreatedWebhookEvent``)."""
        data = {key: value for key, value in chat.items() if key != "is_archived"}
        return self.event(event_type, data, event_id=event_id)

    def event(self, event_type: str, data: dict[str, Any], *, event_id: str | None = None
              ) -> Delivery:
        event_id = event_id or str(uuid.uuid4())
        body = orjson.dumps({
            "api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
            "event_id": event_id, "created_at": _iso(datetime.now(UTC)),
            "trace_id": new_trace_id(), "partner_id": "sim-partner", "data": data,
        })
        return Delivery(body, event_id, event_type=event_type)

    def headers(self, delivery: Delivery, *, timestamp: int | None = None,
                secret: str | None = None) -> dict[str, str]:
        """Signed headers (standard and legacy) for ``delivery``."""
        return sign(secret or self.secret, webhook_id=delivery.event_id,
                    timestamp=int(time.time()) if timestamp is None else timestamp,
                    body=delivery.body, event_type=delivery.event_type)

    def send(self, url: str, delivery: Delivery, *, mode: str = "signed",
             timestamp_offset: int = 0, timeout: float = 10) -> httpx.Response:
        """POST ``delivery`` to ``url``.

        ``mode``: "signed" (what Linq sends), "unsigned" (no signature headers), "forged"
        (signed with another secret), "legacy" (only the deprecated X-Webhook-* headers).
        ``timestamp_offset`` shifts the signed timestamp (stale or future deliveries).
        """
        stamp = int(time.time()) + timestamp_offset
        if mode == "unsigned":
            headers: dict[str, str] = {}
        elif mode == "forged":
            headers = self.headers(delivery, timestamp=stamp, secret=new_secret())
        else:
            headers = self.headers(delivery, timestamp=stamp)
            if mode == "legacy":
                headers = {k: v for k, v in headers.items() if k.startswith("X-")}
        headers["Content-Type"] = "application/json"
        return httpx.post(url, content=delivery.body, headers=headers, timeout=timeout)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SubscriptionDesk:
    """Linq's ``/v3/webhook-subscriptions``: create (secret shown once), list, update, delete.

    A target URL may be used once per account, and must be HTTPS, as Linq requires. Items
    carry what linq-python 0.65.0's ``WebhookSubscription`` requires (``created_at``,
    ``updated_at``, ``is_active``, ``subscribed_events``, ``target_url``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, str] = {}  # id -> signing secret, for tests to sign with

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("target_url"), str):
            return 400, {"success": False, "error": {"status": 400, "code": 1000,
                                                     "message": "target_url is required"}}
        url = body["target_url"]
        with self._lock:
            if not url.startswith("https://") or any(
                    i["target_url"] == url for i in self._items.values()):
                return 400, {"success": False, "error": {
                    "status": 400, "code": 1000,
                    "message": "target_url must be https and unused in this account"}}
            now = _iso(datetime.now(UTC))
            item = {"id": f"whsub_{uuid.uuid4().hex[:12]}", "target_url": url,
                    "subscribed_events": list(body.get("subscribed_events") or []),
                    "phone_numbers": body.get("phone_numbers"), "is_active": True,
                    "created_at": now, "updated_at": now}
            self._items[item["id"]] = item
            secret = self.secrets[item["id"]] = new_secret()
            return 201, {**item, "signing_secret": secret}

    def list(self) -> dict[str, Any]:
        with self._lock:
            return {"subscriptions": [dict(i) for i in self._items.values()]}

    def update(self, subscription_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """PUT: change ``is_active``, ``target_url``, ``subscribed_events``, ``phone_numbers``."""
        if not isinstance(body, dict):
            return 400, {"success": False, "error": {"status": 400, "code": 1000,
                                                     "message": "body must be an object"}}
        with self._lock:
            item = self._items.get(subscription_id)
            if item is None:
                return 404, {"success": False, "error": {"status": 404, "code": 2000,
                                                         "message": "subscription not found"}}
            for key in ("is_active", "target_url", "subscribed_events", "phone_numbers"):
                if key in body:
                    item[key] = body[key]
            item["updated_at"] = _iso(datetime.now(UTC))
            return 200, dict(item)

    def delete(self, subscription_id: str) -> bool:
        with self._lock:
            self.secrets.pop(subscription_id, None)
            return self._items.pop(subscription_id, None) is not None
