"""The webhook envelope and the ``phone_number.status_updated`` event, parsed tolerantly.

Only what we act on is required: an event type, and for a status update the phone number
and when it changed. Everything else may be missing (Linq's payloads drift): the older
``*_health_status`` keys stand in for ``*_reputation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.errors import WebhookMalformed

STATUS_UPDATED = "phone_number.status_updated"


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    phone_number: str
    changed_at: datetime
    previous_status: str | None = None  # service status: ACTIVE / FLAGGED
    new_status: str | None = None
    previous_reputation: str | None = None  # HEALTHY / AT_RISK / CRITICAL
    new_reputation: str | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    event_type: str
    event_id: str | None
    update: StatusUpdate | None  # set for phone_number.status_updated only


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
    if event_type != STATUS_UPDATED:
        return Envelope(event_type, event_id, None)
    data = document.get("data")
    if not isinstance(data, dict):
        raise WebhookMalformed("no 'data' object")
    phone = _text(data.get("phone_number"))
    if phone is None:
        raise WebhookMalformed("no 'data.phone_number'")
    changed_at = _time(data.get("changed_at")) or _time(document.get("created_at"))
    if changed_at is None:
        raise WebhookMalformed("neither 'data.changed_at' nor 'created_at' is a timestamp")
    update = StatusUpdate(
        phone_number=phone,
        changed_at=changed_at,
        previous_status=_text(data.get("previous_status")),
        new_status=_text(data.get("new_status")),
        previous_reputation=_first(data, "previous_reputation", "previous_health_status"),
        new_reputation=_first(data, "new_reputation", "new_health_status"),
    )
    return Envelope(event_type, event_id, update)


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
