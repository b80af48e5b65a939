"""The webhook envelope and the phone-number events we act on, parsed tolerantly.

One parser per event type, in ``PARSERS`` (a plain dict: a new event type is one parser
here and one applier in ``process.py``). Only what we act on is required: an event type,
and for a phone-number event the number and when it changed. Everything else may be
missing (Linq's payloads drift): the older ``*_health_status`` keys stand in for
``*_reputation``. Shapes: ``linq-python``'s ``PhoneNumber*WebhookEvent`` models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.errors import WebhookMalformed

STATUS_UPDATED = "phone_number.status_updated"
ASSIGNED = "phone_number.assigned"
RELEASED = "phone_number.released"
FORWARDING_UPDATED = "phone_number.forwarding_updated"


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    phone_number: str
    changed_at: datetime
    previous_status: str | None = None  # service status: ACTIVE / FLAGGED
    new_status: str | None = None
    previous_reputation: str | None = None  # HEALTHY / AT_RISK / CRITICAL
    new_reputation: str | None = None


@dataclass(frozen=True, slots=True)
class InventoryChange:
    """``phone_number.assigned`` / ``phone_number.released``: the account's inventory
    changed (``data: {phone_number, changed_at}``; no line id, no reputation)."""

    phone_number: str
    changed_at: datetime
    assigned: bool


@dataclass(frozen=True, slots=True)
class ForwardingChange:
    """``phone_number.forwarding_updated`` (an account event: ``data.change`` from → to)."""

    phone_number: str | None
    occurred_at: datetime | None
    before: str | None
    after: str | None


EventData = StatusUpdate | InventoryChange | ForwardingChange


@dataclass(frozen=True, slots=True)
class Envelope:
    event_type: str
    event_id: str | None
    data: EventData | None = None  # None: an event type we do not act on

    @property
    def update(self) -> StatusUpdate | None:
        return self.data if isinstance(self.data, StatusUpdate) else None

    @property
    def phone_number(self) -> str | None:
        return None if self.data is None else self.data.phone_number


def parse_envelope(body: bytes) -> Envelope:
    """Parse a webhook body. Raises WebhookMalformed (answered 400) when it is unusable."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookMalformed(f"body is not JSON ({exc.msg})") from None
    if not isinstance(document, dict):
        raise WebhookMalformed("body is not a JSON object")
    event_type = _text(document.get("event_type"), limit=100)
    if event_type is None:
        raise WebhookMalformed("no 'event_type'")
    event_id = _text(document.get("event_id"))
    parser = PARSERS.get(event_type)
    if parser is None:
        return Envelope(event_type, event_id)
    data = document.get("data")
    if not isinstance(data, dict):
        raise WebhookMalformed("no 'data' object")
    return Envelope(event_type, event_id, parser(document, data))


def _status_update(document: dict[str, Any], data: dict[str, Any]) -> StatusUpdate:
    phone, changed_at = _phone_and_time(document, data)
    return StatusUpdate(
        phone_number=phone,
        changed_at=changed_at,
        previous_status=_text(data.get("previous_status")),
        new_status=_text(data.get("new_status")),
        previous_reputation=_first(data, "previous_reputation", "previous_health_status"),
        new_reputation=_first(data, "new_reputation", "new_health_status"),
    )


def _assigned(document: dict[str, Any], data: dict[str, Any]) -> InventoryChange:
    return InventoryChange(*_phone_and_time(document, data), assigned=True)


def _released(document: dict[str, Any], data: dict[str, Any]) -> InventoryChange:
    return InventoryChange(*_phone_and_time(document, data), assigned=False)


def _forwarding(document: dict[str, Any], data: dict[str, Any]) -> ForwardingChange:
    change = data.get("change")
    change = change if isinstance(change, dict) else {}
    return ForwardingChange(
        phone_number=_text(data.get("phone_number")),
        occurred_at=_time(data.get("occurred_at")) or _time(document.get("created_at")),
        before=_text(change.get("from")), after=_text(change.get("to")))


PARSERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], EventData]] = {
    STATUS_UPDATED: _status_update,
    ASSIGNED: _assigned,
    RELEASED: _released,
    FORWARDING_UPDATED: _forwarding,
}
# Types applied to the account's lines (by the holder of its lease); the other parsed
# types are only recorded and logged when received.
APPLIED = frozenset({STATUS_UPDATED, ASSIGNED, RELEASED})


def _phone_and_time(document: dict[str, Any], data: dict[str, Any]) -> tuple[str, datetime]:
    phone = _text(data.get("phone_number"))
    if phone is None:
        raise WebhookMalformed("no 'data.phone_number'")
    changed_at = _time(data.get("changed_at")) or _time(document.get("created_at"))
    if changed_at is None:
        raise WebhookMalformed("neither 'data.changed_at' nor 'created_at' is a timestamp")
    return phone, changed_at

def _first(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        if (value := _text(data.get(key))) is not None:
            return value
    return None


def _text(value: object, *, limit: int = 255) -> str | None:
    """A usable identifier: a non-empty printable string that fits its column."""
    if isinstance(value, str) and value and len(value) <= limit and value.isprintable():
        return value
    return None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
